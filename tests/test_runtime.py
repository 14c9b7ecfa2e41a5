"""TensorFlow's first import from two threads at once (the worker and a page) must work."""
import subprocess
import sys
import textwrap

from conftest import REPO


def test_first_use_of_tensorflow_from_two_threads_at_once():
    # A fresh process: TensorFlow is not imported yet. Unguarded, this deadlocks or
    # half-imports TensorFlow in one of the threads.
    code = textwrap.dedent("""
        import threading
        from lsc_core.config import preset
        from lsc_core.model import build_model
        from lsc_core.runtime import configure_device
        errors, results = [], []
        def worker():
            try:
                results.append(configure_device())
            except Exception as exc:
                errors.append(repr(exc))
        def page():
            try:
                results.append(build_model(preset("seed-part1")).count_params())
            except Exception as exc:
                errors.append(repr(exc))
        threads = [threading.Thread(target=worker), threading.Thread(target=page)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        print("ERRORS", errors)
        print("RESULTS", sorted(map(str, results)))
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=180)
    assert "ERRORS []" in result.stdout, result.stdout + result.stderr[-2000:]
    assert "2119252" in result.stdout
