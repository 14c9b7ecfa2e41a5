"""System metrics while a run trains: CPU and memory of the training process, and the GPU's
utilisation and memory when there is an NVIDIA GPU.

A daemon thread samples every `SAMPLE_EVERY_S` through psutil and NVIDIA's NVML
(nvidia-ml-py) and hands each sample to a `record` function (the store). Sampling never
fails a run: a sample that cannot be taken or written is logged and skipped.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Callable

import psutil

logger = logging.getLogger(__name__)

SAMPLE_EVERY_S = 2.0  # often enough to see an epoch's phases, rare enough to cost nothing
MB = 1024 * 1024


class _Gpus:
    """NVML handles of every visible NVIDIA GPU; empty where there is none or no driver."""

    def __init__(self):
        self.handles = []
        try:
            import pynvml

            pynvml.nvmlInit()
            self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
            self._nvml = pynvml
        except Exception:  # no driver, no library, no GPU: CPU metrics only
            self.handles = []

    def sample(self) -> dict:
        """Mean utilisation (%) and total memory used (MB) over the GPUs, or {} without GPUs."""
        if not self.handles:
            return {}
        nvml = self._nvml
        rates = [nvml.nvmlDeviceGetUtilizationRates(h) for h in self.handles]
        memory = [nvml.nvmlDeviceGetMemoryInfo(h) for h in self.handles]
        return {"gpu_percent": sum(r.gpu for r in rates) / len(rates),
                "gpu_memory_mb": sum(m.used for m in memory) / MB}

    def close(self) -> None:
        if self.handles:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass


class SystemSampler:
    """Samples this process (and the GPUs) in the background between `start()` and `stop()`.

    `record(sample)` gets dicts with `seconds` (since start), `cpu_percent` (of one core:
    200 means two cores busy), `memory_mb` (resident set), `system_memory_percent`, and
    `gpu_percent` / `gpu_memory_mb` when there is an NVIDIA GPU.
    """

    def __init__(self, record: Callable[[dict], None], every_s: float = SAMPLE_EVERY_S):
        self._record = record
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._process = psutil.Process(os.getpid())
        self._started = 0.0

    def __enter__(self) -> "SystemSampler":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self._started = time.monotonic()
        self._process.cpu_percent(None)  # the first call only sets the reference point
        self._thread = threading.Thread(target=self._loop, name="lsc-sysmetrics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def sample(self, gpus: _Gpus) -> dict:
        memory = self._process.memory_info()
        return {"seconds": round(time.monotonic() - self._started, 2),
                "cpu_percent": self._process.cpu_percent(None),
                "memory_mb": memory.rss / MB,
                "system_memory_percent": psutil.virtual_memory().percent,
                **gpus.sample()}

    def _loop(self) -> None:
        gpus = _Gpus()
        try:
            while not self._stop.wait(self._every_s):
                self._take(gpus)
            self._take(gpus)  # a last sample at the end, so that even a short run has one
        finally:
            gpus.close()

    def _take(self, gpus: _Gpus) -> None:
        try:
            self._record(self.sample(gpus))
        except Exception as exc:  # a metric is never worth a run
            logger.warning("system metrics sample skipped: %s: %s", type(exc).__name__, exc)
