"""The layer registry: every kind's pure-Python shapes and parameter counts equal Keras's,
its checks, its weight decay, and what the editor and search get from it."""
import numpy as np
import pytest

from lsc_core import layers
from lsc_core.config import ConfigError, LayerSpec, RunConfig, analyze, validate
from lsc_core.model import build_model, compile_model, layer_outputs

# One network with every kind, each used in a way that exercises its shape rules:
# stride 2, 'valid' padding, a residual block with and without its projection, L2 set.
EVERY_KIND = (
    LayerSpec.make("conv2d", filters=6, kernel_size=5, padding="valid", strides=2, l2=1e-3),  # 14x14x6
    LayerSpec.make("conv_bn", filters=8, l2=5e-4),
    LayerSpec.make("residual", filters=8),  # same shape: identity shortcut
    LayerSpec.make("residual", filters=12, strides=2, l2=1e-4),  # projection shortcut, 7x7x12
    LayerSpec.make("separable_conv2d", filters=10, kernel_size=3, strides=2, activation="gelu", l2=1e-4),  # 4x4
    LayerSpec.make("batchnorm"),
    LayerSpec.make("maxpool2d", pool_size=1),
    LayerSpec.make("avgpool2d", pool_size=2),
    LayerSpec.make("dropout", rate=0.1),
    LayerSpec.make("global_avg_pool"),
    LayerSpec.make("dense", units=16, l2=1e-3),
    LayerSpec.make("scale", factor=0.5),
)
# The other ways a network ends: a global max pool, a flattened map.
MAX_POOLED = (LayerSpec.make("conv_bn", filters=4), LayerSpec.make("global_max_pool"))
FLATTENED = (LayerSpec.make("conv_bn", filters=4, strides=4, padding="valid"), LayerSpec.make("flatten"))


def keras_params_by_position(model, config: RunConfig) -> list[int]:
    """Parameters of each layer spec's Keras layers, found by their names (kind_position[_part])."""
    counts = []
    for position, spec in enumerate(config.layers, start=1):
        name = f"{spec.kind}_{position}"
        counts.append(sum(layer.count_params() for layer in model.layers
                          if layer.name == name or layer.name.startswith(name + "_")))
    return counts


def test_the_network_uses_every_kind():
    assert set(layers.KINDS) == {spec.kind for spec in EVERY_KIND + MAX_POOLED + FLATTENED}


@pytest.mark.parametrize("stack", [EVERY_KIND, MAX_POOLED, FLATTENED], ids=["every-kind", "max-pooled", "flattened"])
@pytest.mark.parametrize("mode", ["coarse", "fine"])
def test_analysis_equals_keras_layer_by_layer_and_in_total(stack, mode):
    config = RunConfig(layers=stack, label_mode=mode)
    analysis = analyze(config)
    assert analysis.ok, analysis.errors
    model = build_model(config)
    _, outputs = layer_outputs(config)
    keras_shapes = [tuple(output.shape[1:]) for output in outputs] + [tuple(model.output_shape[1:])]
    assert keras_shapes == [row.output_shape for row in analysis.rows]
    head = model.get_layer("head").count_params()
    assert keras_params_by_position(model, config) + [head] == [row.params for row in analysis.rows]
    assert model.count_params() == analysis.total_params


def test_a_projection_appears_only_when_the_shape_changes():
    model = build_model(RunConfig(layers=EVERY_KIND))
    names = {layer.name for layer in model.layers}
    assert "residual_4_projection" in names and "residual_3_projection" not in names


def test_block_batch_norms_follow_recent_batches_and_the_plain_kind_keeps_kerass_default():
    model = build_model(RunConfig(layers=EVERY_KIND))
    momenta = {layer.name: layer.momentum for layer in model.layers if type(layer).__name__ == "BatchNormalization"}
    assert {"conv_bn_2_bn": 0.9, "residual_3_conv1_bn": 0.9, "residual_3_conv2_bn": 0.9, "residual_4_conv1_bn": 0.9,
            "residual_4_conv2_bn": 0.9, "residual_4_projection_bn": 0.9, "batchnorm_6": 0.99} == momenta


def test_l2_adds_weight_decay_to_the_loss_and_zero_adds_none():
    decayed = build_model(RunConfig(layers=EVERY_KIND))
    decayed(np.zeros((1, 32, 32, 3), "float32"), training=True)
    # conv2d, conv_bn, residual (2 convs + projection), separable (depthwise + pointwise), dense
    assert 1 + 1 + 3 + 2 + 1 == len(decayed.losses)
    plain = build_model(RunConfig(layers=tuple(LayerSpec(s.kind, {**s.params, "l2": 0.0})
                                              if "l2" in s.params else s for s in EVERY_KIND)))
    plain(np.zeros((1, 32, 32, 3), "float32"), training=True)
    assert [] == plain.losses


def test_every_kind_trains_a_step(tiny_data):
    config = RunConfig(layers=EVERY_KIND, label_mode="fine", optimizer="sgd", momentum=0.9, learning_rate=0.01)
    model = build_model(config)
    compile_model(model, config)
    history = model.fit(tiny_data.x_train[:32].astype("float32"), tiny_data.labels("train", "fine")[:32],
                        batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize("spec, message", [
    (LayerSpec.make("residual", filters=0), "filters must be a whole number of at least 1"),
    (LayerSpec.make("conv2d", l2=-0.1), r"l2 must be in \[0, 1\), got -0.1"),
    (LayerSpec.make("dense", l2="lots"), "l2 must be in"),
    (LayerSpec.make("separable_conv2d", activation="wiggle"), "activation must be one of"),
    (LayerSpec.make("scale", factor=-1), r"factor must be in \[0, 1000\]"),
    (LayerSpec.make("residual", kernel_size=5), "unknown parameter.*kernel_size"),
])
def test_bad_parameters_of_the_new_kinds_are_refused_at_their_layer(spec, message):
    with pytest.raises(ConfigError, match=message) as caught:
        validate(RunConfig(layers=(spec, LayerSpec.make("flatten"))))
    assert 1 == caught.value.position


def test_residual_and_pooling_below_one_pixel_name_the_layer():
    stack = (LayerSpec.make("residual", filters=4, strides=2),) * 6 + (LayerSpec.make("maxpool2d"),
                                                                      LayerSpec.make("flatten"))
    analysis = analyze(RunConfig(layers=stack))
    assert [(1, 1, 4)] == [row.output_shape for row in analysis.rows][5:6]  # 32 halves to 1, never to 0
    assert [7] == [error.position for error in analysis.errors]


def test_labels_say_what_differs_from_the_defaults():
    assert ["conv2d 32 3x3 relu", "residual 128 /2 relu l2 0.0005", "separable_conv2d 64 3x3 relu",
            "scale x0.125", "dense 128 relu"] == [
        LayerSpec.make(kind, **params).describe() for kind, params in (
            ("conv2d", {}), ("residual", {"filters": 128, "strides": 2, "l2": 5e-4}),
            ("separable_conv2d", {}), ("scale", {}), ("dense", {}))]
