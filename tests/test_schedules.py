"""Learning-rate schedules and optimizers: pure functions of the epoch, the same curve in Keras."""
import math

import numpy as np
import pytest

from lsc_core import schedules
from lsc_core.config import preset
from lsc_core.optimizers import OPTIMIZERS, make_optimizer


def test_constant_is_the_studys_rate_at_every_step():
    config = preset("seed-part1", epochs=4)
    assert [1e-3] * 4 == schedules.epoch_learning_rates(config, steps=10)


def test_step_decay_multiplies_by_the_factor_every_n_epochs():
    config = preset("seed-part1", epochs=6, schedule="step", decay_every=2, decay_factor=0.1, learning_rate=1.0)
    assert [1.0, 1.0, 0.1, 0.1, 0.01, 0.01] == pytest.approx(schedules.epoch_learning_rates(config, steps=5))
    # without decay_every: a third of the run
    assert 2 == schedules.decay_every(config.replace(decay_every=None))


def test_cosine_warms_up_linearly_then_falls_to_zero():
    config = preset("seed-part1", epochs=5, schedule="cosine", warmup_epochs=1, learning_rate=0.1)
    steps = 4
    warmup = [schedules.learning_rate_at(config, s / steps, steps) for s in range(steps)]
    assert [0.025, 0.05, 0.075, 0.1] == pytest.approx(warmup)  # no step at zero, the peak at the last
    assert 0.1 == pytest.approx(schedules.learning_rate_at(config, 1.0, steps))
    assert 0.05 == pytest.approx(schedules.learning_rate_at(config, 3.0, steps))  # half-way down
    last = schedules.learning_rate_at(config, 5 - 1 / steps, steps)
    assert 0 < last < 0.001


def test_onecycle_rises_from_a_25th_of_the_peak_then_falls():
    config = preset("seed-part1", epochs=10, schedule="onecycle", learning_rate=0.4)
    rates = schedules.epoch_learning_rates(config, steps=100)
    assert 0.4 / 25 == pytest.approx(rates[0])
    assert rates.index(max(rates)) == 3  # the peak after 30% of the run
    assert rates[3:] == sorted(rates[3:], reverse=True)


def test_curve_for_drawing_spans_the_run_and_matches_the_epoch_rates():
    config = preset("seed-part1", epochs=3, schedule="cosine", warmup_epochs=1, limit=640, batch_size=64)
    curve = schedules.schedule_curve(config, points_per_epoch=4)
    assert (1.0, 4.0) == (curve[0][0], curve[-1][0])
    assert 10 == schedules.steps_per_epoch(config)
    by_epoch = dict(curve)
    assert [by_epoch[1.0], by_epoch[2.0], by_epoch[3.0]] == schedules.epoch_learning_rates(config)


def test_plateau_scale_is_a_function_of_the_accuracies_so_far():
    assert 1.0 == schedules.plateau_scale([0.1, 0.1, 0.1], patience=0, factor=0.5)
    assert 1.0 == schedules.plateau_scale([0.1, 0.2, 0.3], patience=1, factor=0.5)
    assert 0.25 == schedules.plateau_scale([0.3, 0.2, 0.2], patience=1, factor=0.5)
    assert 0.5 == schedules.plateau_scale([0.3, 0.2, 0.2, 0.4], patience=2, factor=0.5)


def test_keras_schedule_follows_the_pure_function_and_resumes_at_an_epoch():
    config = preset("seed-part1", epochs=4, schedule="cosine", warmup_epochs=1, learning_rate=0.1)
    steps = 3
    schedule = schedules.keras_schedule(config, steps)
    expected = [schedules.learning_rate_at(config, s / steps, steps) for s in range(4 * steps)]
    assert expected == pytest.approx([float(schedule(s)) for s in range(4 * steps)], rel=1e-6)
    resumed = schedules.keras_schedule(config, steps, start_epoch=2)
    assert expected[2 * steps:] == pytest.approx([float(resumed(s)) for s in range(2 * steps)], rel=1e-6)
    schedule.scale.assign(0.5)
    assert expected[5] / 2 == pytest.approx(float(schedule(5)), rel=1e-6)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_optimizer_builds_with_its_settings(name):
    nesterov = name == "sgd"
    config = preset("seed-part1", optimizer=name, momentum=0.9, nesterov=nesterov, weight_decay=5e-4)
    optimizer = make_optimizer(config, 0.01)
    assert type(optimizer).__name__ == OPTIMIZERS[name].keras_class
    assert 5e-4 == pytest.approx(optimizer.weight_decay)
    if name == "sgd":
        assert (0.9, True) == (optimizer.momentum, optimizer.nesterov)
