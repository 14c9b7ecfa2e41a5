"""Measured speed and the estimates made from it: Launch's work and time, a run's time left."""
import time

import pytest

from lsc_core import estimates, views
from lsc_core.config import LayerSpec, analyze, preset
from lsc_core.store import COMPLETED, RUNNING


def measured_run(store, config, seconds, device="CPU: x86_64"):
    """A finished run of `config` on `device` whose epochs took `seconds` each."""
    run_id = store.create_run(config, status=RUNNING)
    store.start_run(run_id, params=analyze(config).total_params, versions={}, device=device)
    for epoch, took in enumerate(seconds, start=1):
        store.log_epoch(run_id, epoch, {"val_accuracy": 0.1 * epoch}, took)
    store.finish_run(run_id, COMPLETED)
    return run_id


def test_an_epochs_work_counts_validation_at_a_third_of_training():
    assert (50_000, 10_000) == estimates.epoch_images(preset("seed-part1"))
    assert (1_500, 500) == estimates.epoch_images(preset("seed-part1", limit=2_000, validation="holdout",
                                                     holdout_fraction=0.25))
    assert pytest.approx(2_000 + 10_000 / 3) == estimates.epoch_work(preset("seed-part1", limit=2_000))


def test_similar_runs_on_this_device_give_the_speed(store):
    config = preset("seed-part1", limit=2_000)
    first = measured_run(store, config, [10.0, 12.0, 11.0])  # 3 x 5,333 images in 33 s: 485 images/s
    assert None is estimates.similar_throughput(store, preset("seed-part1"), device="GPU: H100")  # not measured there
    small = preset("seed-part1").replace(layers=(LayerSpec.make("conv2d", filters=4), LayerSpec.make("flatten")))
    assert analyze(small).total_params * estimates.SIMILAR_PARAMS < analyze(config).total_params
    assert None is estimates.similar_throughput(store, small)  # a far smaller network: not similar
    measured = estimates.similar_throughput(store, preset("seed-part1", epochs=5), device="CPU: x86_64")
    assert (pytest.approx(3 * (2_000 + 10_000 / 3) / 33), f"run {first} on this device") == (
        measured.images_per_s, measured.basis)


def test_launch_estimate_from_measured_speed(store):
    config = preset("seed-part1", limit=2_000)
    assert ("1 run x 10 epochs x 2,000 images = 20,000 training images; no time estimate yet: no run of a size "
            "like its network has been measured on this device") == estimates.estimate(store, [config]).describe()
    measured_run(store, config, [10.0, 10.0])
    estimate = estimates.estimate(store, [preset("seed-part1", epochs=4, limit=2_000)] * 3)
    assert (3, 12, 24_000, pytest.approx(12 * 10.0), False) == (estimate.runs, estimate.epochs, estimate.images,
                                                               estimate.seconds, estimate.long)
    assert estimate.describe().startswith("3 runs x 4 epochs x 2,000 images = 24,000 training images; about 2m 00s")
    full = estimates.estimate(store, [preset("seed-part1", epochs=40)])  # 50,000 images: 40 epochs of 100 s
    assert (pytest.approx(40 * 10.0 * estimates.epoch_work(preset("seed-part1")) / estimates.epoch_work(config)), True) == (
        full.seconds, full.long)


def test_a_queued_twin_is_the_same_config_whatever_its_name(store):
    config = preset("seed-part1", epochs=3)
    assert estimates.queued_twin(store, config) is None
    queued = store.create_run(config.replace(name="first"))
    assert queued == estimates.queued_twin(store, config.replace(name="again")).id
    assert estimates.queued_twin(store, config.replace(epochs=4)) is None
    store.request_stop(queued)  # stopped: no longer waiting
    assert estimates.queued_twin(store, config) is None


def test_the_time_left_of_a_first_epoch_comes_from_similar_runs(store):
    measured_run(store, preset("seed-part1", limit=2_000), [10.0, 10.0])
    live = store.create_run(preset("seed-part1", epochs=4, limit=2_000), status=RUNNING)
    store.start_run(live, params=1, versions={}, device="CPU: x86_64")
    now = time.time()
    store.heartbeat(live, {"phase": "training", "epoch": 1, "batch": 2, "batches": 100, "epoch_started": now - 1})
    (running,) = views.running_now(store, now=now)
    assert pytest.approx(10.0 * 4 - 1) == running.progress.eta_s  # 10 s per epoch measured, not 50 s from 2 batches
    assert running.progress.describe().endswith(f"about 39s left (speed of run {live - 1} on this device)")


def test_recorded_phase_rates_are_used_where_epochs_have_them(store):
    config = preset("seed-part1", limit=2_000)
    run_id = store.create_run(config, status=RUNNING)
    store.start_run(run_id, params=analyze(config).total_params, versions={}, device="CPU")
    for epoch in (1, 2):  # 2,000 images at 400/s and 10,000 at 2,000/s: 5 s + 5 s
        store.log_epoch(run_id, epoch, {"val_accuracy": 0.1}, 11.0, train_images_per_s=400.0, val_images_per_s=2000.0)
    store.finish_run(run_id, COMPLETED)
    measured = estimates.similar_throughput(store, preset("seed-part1", limit=4_000))
    assert (400.0, 2000.0) == (measured.train_images_per_s, measured.val_images_per_s)
    assert pytest.approx(4_000 / 400 + 10_000 / 2_000) == measured.epoch_seconds(preset("seed-part1", limit=4_000))
    assert pytest.approx(3 * 10.0) == estimates.estimate(store, [preset("seed-part1", limit=2_000, epochs=3)]).seconds
