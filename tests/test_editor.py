"""The Build page's editor logic: config <-> editable state, layer edits, summary, starts."""
import pytest

from lsc_core import editor
from lsc_core.backbones import BACKBONES
from lsc_core.config import PRESETS, BackboneSpec, ConfigError, LayerSpec, RunConfig, analyze, preset


@pytest.mark.parametrize("name", list(PRESETS))
def test_a_preset_round_trips_through_the_editor(name):
    assert preset(name) == editor.from_preset(name).to_config()


def test_a_transfer_config_round_trips_and_switches_the_network():
    config = RunConfig(label_mode="fine", backbone=BackboneSpec(name="xception", image_size=71, weights="none",
                                                                fine_tune_epochs=2), epochs=3)
    state = editor.from_config(config)
    assert (editor.TRANSFER, config) == (state.network, state.to_config())
    state.set_network(editor.CUSTOM)
    assert (None, ()) == (state.to_config().backbone, state.to_config().layers)


def test_add_remove_and_move_keep_each_layers_uid_and_parameters():
    state = editor.scratch()
    conv = state.add_layer("conv2d")
    flat = state.add_layer("flatten")
    pool = state.add_layer("maxpool2d", position=2)  # between conv and flatten
    drop = state.add_layer("dropout", position=1)
    assert [drop, conv, pool, flat] == [layer["uid"] for layer in state.layers]
    state.set_param(conv, "filters", 16)
    state.move_layer(drop, +1)
    state.move_layer(flat, +1)  # already last: stays
    state.move_layer(drop, -5)  # past the top: first
    assert [drop, conv, pool, flat] == [layer["uid"] for layer in state.layers]
    state.move_layer(drop, 2)
    assert [conv, pool, drop, flat] == [layer["uid"] for layer in state.layers]
    state.remove_layer(pool)
    expected = (LayerSpec.make("conv2d", filters=16), LayerSpec.make("dropout"), LayerSpec.make("flatten"))
    assert expected == state.to_config().layers
    assert 2 == state.position(drop)
    with pytest.raises(ConfigError, match="unknown layer kind 'lstm'"):
        state.add_layer("lstm")


@pytest.mark.parametrize("name, raw, expected", [
    ("filters", "64", 64), ("filters", 64.0, 64), ("filters", 2.5, 2.5), ("filters", "abc", "abc"),
    ("kernel_size", 5, 5), ("activation", "gelu", "gelu"),
])
def test_set_param_coerces_to_the_defaults_type_and_keeps_what_it_cannot(name, raw, expected):
    state = editor.scratch()
    uid = state.add_layer("conv2d")
    state.set_param(uid, name, raw)
    assert expected == state.layers[0]["params"][name]
    assert type(expected) is type(state.layers[0]["params"][name])


def test_an_uncoercible_value_is_reported_at_its_layer():
    state = editor.from_preset("seed-part1")
    state.set_param(state.layers[2]["uid"], "filters", "lots")
    assert ["layer 3 (conv2d): filters must be a whole number of at least 1, got 'lots'"] == \
        analyze(state.to_config()).errors_at(3)


def test_rate_is_coerced_to_a_float():
    state = editor.scratch()
    uid = state.add_layer("dropout")
    state.set_param(uid, "rate", "0.4")
    assert 0.4 == state.layers[0]["params"]["rate"]


def test_settings_are_coerced_and_empty_means_none():
    state = editor.from_preset("seed-part2")
    for name, value in [("epochs", 3.0), ("learning_rate", "0.01"), ("limit", 500), ("name", "  mine "),
                        ("optimizer", "sgd"), ("momentum", 0.9), ("augment", ["crop", "flip"]), ("label_mode", "fine")]:
        state.set_setting(name, value)
    assert preset("seed-part2", epochs=3, learning_rate=0.01, limit=500, name="mine", optimizer="sgd",
                  momentum=0.9, augment=("flip", "crop"), label_mode="fine") == state.to_config()
    state.set_setting("limit", None)
    state.set_setting("name", "")
    assert (None, None) == (state.to_config().limit, state.to_config().name)
    with pytest.raises(KeyError):
        state.set_setting("layers", [])


def test_choosing_a_backbone_sets_its_default_image_size():
    state = editor.scratch()
    state.set_network(editor.TRANSFER)
    state.set_backbone("name", "xception")
    assert BackboneSpec(name="xception", image_size=BACKBONES["xception"].default_size) == state.to_config().backbone
    state.set_backbone("image_size", 50)  # below Xception's 71: kept, and reported
    assert ["backbone image_size: Xception needs an image size from 71 to 299, got 50"] == \
        editor.errors_for(analyze(state.to_config()), "image_size")
    assert (71, 299) == editor.image_size_range("xception")


def test_summary_frame_has_every_layer_with_its_problem():
    state = editor.from_preset("seed-part2")
    state.set_param(state.layers[3]["uid"], "rate", 1.0)
    frame = editor.summary_frame(analyze(state.to_config()))
    assert list(editor.SUMMARY_COLUMNS) == list(frame.columns)
    assert list(range(1, 12)) == list(frame["position"])
    assert ["32x32x32", "32x32x32", "16x16x32", "-", "-", "-", "-", "-", "-", "-", "-"] == list(frame["output"])
    assert [4] == list(frame[frame["layer"].str.startswith(editor.PROBLEM_MARK)]["position"])
    valid = editor.summary_frame(analyze(preset("seed-part2")))
    assert 2_165_428 == valid["params"].sum()
    assert "16384" == valid.loc[6, "output"]
    assert not valid["layer"].str.startswith(editor.PROBLEM_MARK).any()


def test_too_many_pools_are_reported_at_the_pool_that_empties_the_map():
    state = editor.scratch()
    for _ in range(6):
        state.add_layer("maxpool2d")
    state.add_layer("flatten")
    analysis = analyze(state.to_config())
    assert [6] == [e.position for e in analysis.errors]
    assert [] == editor.general_errors(analysis, ())


def test_scratch_has_no_layers_and_says_so():
    analysis = analyze(editor.scratch().to_config())
    assert ["the network has no layers; add at least one"] == editor.errors_for(analysis, "layers")
    assert [] == editor.general_errors(analysis, ("layers",))


def test_a_cloned_run_config_loads_without_its_name():
    config = preset("seed-part1", label_mode="fine", optimizer="sgd", learning_rate=0.01, batch_size=32,
                    name="mine", seed=3)
    assert config.replace(name=None) == editor.from_run_config(config.to_dict()).to_config()
    with pytest.raises(ConfigError, match="unknown setting"):
        editor.from_run_config({**config.to_dict(), "colour": "red"})
    with pytest.raises(ConfigError):
        editor.from_run_config("not a dict")


def test_each_start_gets_its_own_widget_token():
    assert editor.from_preset("seed-part2").token != editor.from_preset("seed-part2").token


def test_default_run_name_follows_the_store():
    assert "seed-part2-<run id>" == editor.default_run_name(preset("seed-part2", name="x"))
    assert "vgg19-<run id>" == editor.default_run_name(RunConfig(backbone=BackboneSpec(name="vgg19")))
    assert "custom-<run id>" == editor.default_run_name(editor.scratch().to_config())


def test_every_layer_parameter_has_a_form_field_and_every_field_is_used():
    from lsc_core.layers import KINDS, PARAMS

    for kind in editor.LAYER_KINDS:
        assert set(KINDS[kind].defaults) == {name for name, _ in editor.layer_fields(kind)}
    assert set(PARAMS) == {name for kind in KINDS.values() for name in kind.defaults}


def test_a_residual_block_is_added_edited_and_analysed_like_any_layer():
    state = editor.from_preset("seed-part2")
    uid = state.add_layer("residual", position=3)
    assert {"filters": 64, "strides": 1, "activation": "relu", "l2": 0.0} == state.layers[2]["params"]
    state.set_param(uid, "l2", "5e-4")
    state.set_param(uid, "strides", 2.0)
    assert (5e-4, 2) == (state.layers[2]["params"]["l2"], state.layers[2]["params"]["strides"])
    row = analyze(state.to_config()).rows[2]
    assert ("residual 64 /2 relu l2 0.0005", (16, 16, 64)) == (row.label, row.output_shape)
    assert ["filters", "strides", "activation", "l2"] == [name for name, _ in editor.layer_fields("residual")]
    assert "residual: two 3x3 conv-BN plus a shortcut (1x1 when the shape changes)" == editor.kind_label("residual")


def test_a_draft_restores_the_whole_form_with_fresh_widget_keys():
    state = editor.from_preset("seed-part2")
    state.set_setting("epochs", 7)
    state.add_layer("dropout", 2)
    state.set_network(editor.TRANSFER)
    restored = editor.from_draft(editor.to_draft(state))
    assert (state.to_config(), state.network, state.next_uid) == (restored.to_config(), restored.network,
                                                                  restored.next_uid)
    assert restored.token != state.token
    with pytest.raises(ConfigError, match="the saved draft cannot be read"):
        editor.from_draft('{"layers": []}')
