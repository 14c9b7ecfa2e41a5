"""System metrics: the sampler on this process, a real run's samples in the store, the chart."""
import time

from lsc_core import charts, views
from lsc_core.config import LayerSpec, RunConfig
from lsc_core.store import RUNNING
from lsc_core.sysmetrics import SystemSampler
from lsc_core.train import train_run

SMALL = (LayerSpec.make("conv2d", filters=8), LayerSpec.make("maxpool2d", pool_size=4),
         LayerSpec.make("flatten"), LayerSpec.make("dense", units=32))


def test_sampler_sees_this_process_working():
    samples = []
    with SystemSampler(samples.append, every_s=0.1):
        end = time.monotonic() + 0.8
        while time.monotonic() < end:  # keep one core busy...
            sum(i * i for i in range(10_000))
        busy = len(samples)
        time.sleep(0.8)  # ...then rest
    assert busy >= 4 and len(samples) >= busy + 4
    assert samples == sorted(samples, key=lambda s: s["seconds"])
    # Relative, not absolute: other processes may share the cores.
    assert max(s["cpu_percent"] for s in samples[1:busy]) > max(s["cpu_percent"] for s in samples[busy + 1:])
    assert all(s["memory_mb"] > 10 and 0 < s["system_memory_percent"] <= 100 for s in samples)


def test_sampler_survives_a_failing_recorder():
    calls = []

    def record(sample):
        calls.append(sample)
        raise OSError("disk full")

    with SystemSampler(record, every_s=0.05):
        time.sleep(0.3)
    assert len(calls) >= 3  # it went on after the first failure


def test_a_run_stores_its_samples_and_the_runs_page_chart_draws_them(store, tiny_data):
    run_id = store.create_run(RunConfig(layers=SMALL, epochs=1, batch_size=32, name="tiny"), status=RUNNING)
    train_run(store, run_id, load_data=lambda: tiny_data)
    samples = store.system_metrics(run_id)
    assert samples, "even a run shorter than the sampling period gets its last sample"
    assert all(s["memory_mb"] > 10 and s["cpu_percent"] is not None for s in samples)
    assert all(s["gpu_percent"] is None for s in samples)  # no NVIDIA GPU on this machine
    frame = views.system_frame(store, run_id)
    assert {"CPU (training process)", "Memory (training process)"} == set(frame["resource"])
    spec = charts.system_chart(frame).to_dict()
    assert ["CPU (training process)", "Memory (training process)"] == [p["title"] for p in spec["hconcat"]]
