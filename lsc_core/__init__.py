"""LSC dashboard core: CIFAR-100 data, networks from configs, training runs in SQLite.

Pure logic, importable without Streamlit; TensorFlow is imported only by the modules
that build or run models, and only when they do.
"""
__version__ = "0.1.0"
