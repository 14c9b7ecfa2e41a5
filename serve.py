"""Start the dashboard with its training worker: `python serve.py [streamlit options]`.

`streamlit run app.py` has no start-up hook, so there the worker starts at the first page
view: runs queued while nobody looks wait. This launcher starts the worker first (it
finds the device, loads the data and trains queued runs at once, page or no page), then
runs Streamlit's own `streamlit run app.py` in the same process, so that pages share that
worker. Options after `serve.py` go to Streamlit (e.g. `--server.port 8501`);
.streamlit/config.toml beside app.py binds it to 127.0.0.1.

SIGTERM and SIGINT: Streamlit's handlers stop the server; then the current run is
stopped after its current batch, its best model saved (status `stopped`), and the
process exits. A second signal while it stops exits at once (the run
is then marked interrupted by the next store that looks at it).
"""
import os
import signal
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter

from streamlit.web import cli as streamlit_cli  # noqa: E402

from lsc_core.jobs import dashboard_manager  # noqa: E402

APP = Path(__file__).resolve().with_name("app.py")


def main(streamlit_args: list[str]) -> int:
    manager = dashboard_manager()  # the worker starts now
    # Until Streamlit installs its own handlers (once its server runs), a signal ends the start-up.
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, _exit_now)
    try:
        streamlit_cli.main(["run", str(APP), *streamlit_args], prog_name="streamlit", standalone_mode=False)
    finally:
        # The server has stopped (Streamlit's handler): stop the run cleanly; a second signal exits at once.
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, _exit_now)
        if manager.current_run_id is not None:
            print(f"stopping run {manager.current_run_id} after its current batch (a second Ctrl-C exits at once)",
                  file=sys.stderr, flush=True)
        manager.exit_cleanly()
    return 0


def _exit_now(number, frame) -> None:
    raise SystemExit(128 + number)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
