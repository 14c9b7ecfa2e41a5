"""The TensorFlow runtime of this process: importing it safely, and the device it uses.

TensorFlow's first import is not safe to run in two threads at once (it deadlocks or
registers its ops twice), and the dashboard has several: the training worker and one
per browser session. Every first use of TensorFlow goes through `import_tensorflow`.
"""
from __future__ import annotations

import os
import platform
import threading

_IMPORT_LOCK = threading.Lock()


def import_tensorflow():
    """Import TensorFlow and Keras, one thread at a time; returns the keras module."""
    with _IMPORT_LOCK:
        import keras
        import tensorflow  # noqa: F401
    return keras


def configure_device() -> str:
    """Let TensorFlow grow GPU memory as needed; describe the device training will use."""
    import_tensorflow()
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised (a second run in this process): keep its setting
            pass
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"GPU: {details.get('device_name', gpus[0].name)}" + (f" (x{len(gpus)})" if len(gpus) > 1 else "")
    return f"CPU: {platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def library_versions() -> dict:
    keras = import_tensorflow()
    import numpy
    import tensorflow as tf

    return {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": numpy.__version__}
