"""RunConfig: presets, JSON round trip, shape/parameter analysis and validation."""
import json

import pytest

from lsc_core.config import BackboneSpec, ConfigError, LayerSpec, RunConfig, analyze, preset, validate


@pytest.mark.parametrize("name, mode, expected", [
    ("seed-part1", "coarse", 2_119_252),
    ("seed-part2", "coarse", 2_165_428),
    ("seed-part2", "fine", 2_175_748),
    ("seed-part2-dropout", "coarse", 2_119_252),
])
def test_preset_parameter_counts_match_the_study(name, mode, expected):
    assert expected == analyze(preset(name, label_mode=mode)).total_params


def test_residual_presets_carry_their_recipe_and_no_invented_measurement():
    from lsc_core.config import PRESETS, measured_text

    fast = preset("resnet-fast", label_mode="fine")
    # No warm-up of its own: one-cycle rises over 30% of the epochs, so --epochs N needs nothing else.
    assert ("sgd", 0.9, True, 0.1, "onecycle", 0, 0.1, ("flip", "crop"), 128, 20) == (
        fast.optimizer, fast.momentum, fast.nesterov, fast.learning_rate, fast.schedule, fast.warmup_epochs,
        fast.label_smoothing, fast.augment, fast.batch_size, fast.epochs)
    assert fast == RunConfig.from_json(fast.to_json())
    assert [(4, 4, 256), (256,)] == [row.output_shape for row in analyze(fast).rows][-3:-1]
    nine = preset("resnet9")
    assert ["conv_bn", "conv_bn", "maxpool2d", "residual", "conv_bn", "maxpool2d", "conv_bn", "maxpool2d", "residual",
            "global_max_pool", "scale"] == [layer.kind for layer in nine.layers]
    assert [64, 128, 128, 256, 512, 512] == [layer.params["filters"] for layer in nine.layers if "filters" in layer.params]
    assert (512, 0.4, "onecycle", 5, 0.2, ("flip", "crop", "cutout"), 24) == (
        nine.batch_size, nine.learning_rate, nine.schedule, nine.warmup_epochs, nine.label_smoothing, nine.augment,
        nine.epochs)
    # A figure appears only once a benchmark has been recorded in the preset.
    assert all(measured_text(name) == "not measured yet" for name in PRESETS if not PRESETS[name].measured)
    assert preset("seed-part2") == RunConfig(layers=preset("seed-part2").layers, preset="seed-part2")


def test_seed_part2_shapes_layer_by_layer():
    rows = analyze(preset("seed-part2")).rows
    assert [(32, 32, 32), (32, 32, 32), (16, 16, 32), (16, 16, 32), (16, 16, 64), (16, 16, 64), (16384,),
            (16384,), (128,), (128,), (20,)] == [row.output_shape for row in rows]


def test_json_round_trip_keeps_everything():
    config = preset("seed-part2", label_mode="fine", optimizer="sgd", learning_rate=0.01, momentum=0.9,
                    batch_size=32, epochs=3, seed=7, validation="holdout", holdout_fraction=0.2, limit=500,
                    augment=("flip", "crop", "cutout", "mixup"), name="mine", nesterov=True, weight_decay=5e-4,
                    schedule="step", warmup_epochs=1, decay_every=2, decay_factor=0.2, label_smoothing=0.1,
                    early_stopping=2, plateau_patience=1, plateau_factor=0.3, tta=True)
    assert config == RunConfig.from_json(config.to_json())
    transfer = RunConfig(backbone=BackboneSpec(name="xception", image_size=71, weights="none"))
    assert transfer == RunConfig.from_json(transfer.to_json())


def test_unknown_settings_are_refused_by_name():
    data = preset("seed-part1").to_dict() | {"learning_rte": 0.1}
    with pytest.raises(ConfigError, match="unknown setting.*learning_rte"):
        RunConfig.from_dict(data)
    bad_layer = preset("seed-part1").to_dict()
    bad_layer["layers"][0]["filtres"] = 8
    with pytest.raises(ConfigError, match=r"layer 1 \(conv2d\): unknown parameter.*filtres"):
        validate(RunConfig.from_dict(bad_layer))
    with pytest.raises(ConfigError, match="not valid JSON"):
        RunConfig.from_json("{nope")


@pytest.mark.parametrize("layers, position, message", [
    ([LayerSpec.make("maxpool2d", pool_size=2)] * 6 + [LayerSpec.make("flatten")], 6, "makes the 1x1 feature map empty"),
    ([LayerSpec.make("conv2d"), LayerSpec.make("dropout", rate=1.0), LayerSpec.make("flatten")], 2, r"rate must be in \[0, 1\)"),
    ([LayerSpec.make("conv2d", filters=0), LayerSpec.make("flatten")], 1, "filters must be a whole number of at least 1"),
    ([LayerSpec.make("dense", units=64)], 1, "unflattened 32x32x3 feature map"),
    ([LayerSpec.make("conv2d")], 2, "ends in a 32x32x32 feature map"),
    ([LayerSpec.make("flatten"), LayerSpec.make("conv2d")], 2, "needs a feature map"),
    ([LayerSpec.make("maxpool2d", pool_size=8), LayerSpec.make("conv2d", kernel_size=5, padding="valid"),
      LayerSpec.make("flatten")], 2, "does not fit"),
    ([LayerSpec("pool3d", {})], 1, "unknown layer kind 'pool3d'"),
])
def test_impossible_networks_name_the_layer_and_reason(layers, position, message):
    analysis = analyze(RunConfig(layers=tuple(layers)))
    assert not analysis.ok
    assert position == analysis.errors[0].position
    assert f"layer {position}" in str(analysis.errors[0]) or "ends in" in str(analysis.errors[0])
    with pytest.raises(ConfigError, match=message):
        validate(RunConfig(layers=tuple(layers)))


@pytest.mark.parametrize("changes, message", [
    ({"learning_rate": 0}, "learning_rate"), ({"batch_size": 0}, "batch_size"), ({"epochs": -1}, "epochs"),
    ({"label_mode": "medium"}, "label_mode"), ({"optimizer": "lion"}, "optimizer"),
    ({"validation": "val"}, "validation"), ({"holdout_fraction": 1.5}, "holdout_fraction"),
    ({"limit": 0}, "limit"), ({"layers": ()}, "no layers"),
])
def test_bad_hyperparameters_are_refused(changes, message):
    with pytest.raises(ConfigError, match=message):
        validate(preset("seed-part1").replace(**changes))


def test_every_problem_is_reported_not_only_the_first():
    layers = (LayerSpec.make("conv2d", filters=-1), LayerSpec.make("dropout", rate=2), LayerSpec.make("flatten"))
    analysis = analyze(RunConfig(layers=layers, learning_rate=-1))
    assert {None, 1, 2} <= {error.position for error in analysis.errors}


def test_backbone_minimum_size_enforced():
    with pytest.raises(ConfigError, match="Xception needs an image size from 71"):
        validate(RunConfig(backbone=BackboneSpec(name="xception", image_size=64)))
    rows = analyze(RunConfig(backbone=BackboneSpec(name="vgg16", image_size=32, head_units=0))).rows
    assert 14_714_688 + 512 * 20 + 20 == sum(row.params for row in rows)


def test_config_json_is_plain_json():
    assert json.loads(preset("seed-part1").to_json())["layers"][0] == {
        "kind": "conv2d", "filters": 32, "kernel_size": 3, "activation": "relu", "padding": "same", "strides": 1,
        "l2": 0.0}


def test_a_config_from_before_the_augmentation_menu_reads_its_switch():
    old = preset("seed-part1").to_dict()
    assert ("flip", "crop") == RunConfig.from_dict(old | {"augment": True}).augment
    assert () == RunConfig.from_dict(old | {"augment": False}).augment


@pytest.mark.parametrize("changes, expected", [
    ({"schedule": "linear"}, "schedule: must be one of constant, step, cosine, onecycle, got 'linear'"),
    ({"weight_decay": -0.1}, "weight_decay: must be a number in [0, 1), got -0.1"),
    ({"warmup_epochs": 3, "epochs": 3}, "warmup_epochs: the warm-up (3 epochs) must be shorter than the run (3 epochs)"),
    ({"augment": ("flip", "blur")}, "augment: unknown augmentation 'blur'; choose from flip, crop, rotate, zoom, "
                                    "jitter, cutout, mixup, cutmix (or none, standard)"),
    ({"nesterov": True}, "nesterov: Nesterov momentum applies to SGD only, not adam"),
    ({"label_smoothing": 1.0}, "label_smoothing: must be a number in [0, 1), got 1.0"),
    ({"early_stopping": -1}, "early_stopping: must be a whole number of epochs >= 0 (0 is off), got -1"),
    ({"plateau_factor": 1.5}, "plateau_factor: must be in (0, 1), got 1.5"),
    ({"decay_factor": 0}, "decay_factor: must be in (0, 1], got 0"),
])
def test_recipe_settings_that_cannot_be_used_get_one_clear_message(changes, expected):
    assert [expected] == [str(e) for e in analyze(preset("seed-part1", **changes)).errors]
