"""The dashboard's script runs leave Keras alone: its worker trains in the same process.

Streamlit ends every script run (a fragment's refresh too) with keras.backend.clear_session()
unless app.py leaves it out; that reset Keras's global state under the trainer and held the
GIL for a full garbage collection every time a page refreshed (a Stop's run ended 5-7 s
after the click).
"""
from pathlib import Path

from streamlit.testing.v1 import AppTest

from lsc_core.runtime import import_tensorflow

APP = Path(__file__).resolve().parent.parent / "app.py"


def test_running_the_app_keeps_keras_global_state(app_env):
    keras = import_tensorflow()
    keras.backend.get_uid("lsc-probe")
    before = keras.backend.get_uid("lsc-probe")  # >= 2: a clear_session would restart the count at 1
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception
    at.run()  # a rerun, as a fragment's refresh or a click makes
    assert before + 1 == keras.backend.get_uid("lsc-probe")
