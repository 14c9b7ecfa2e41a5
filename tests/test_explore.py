"""The Data page's helpers on tiny CIFAR-100-format data."""
import numpy as np
import pytest

from cifar_files import SUPERCLASSES
from lsc_core import charts, explore


def test_upscale_turns_each_pixel_into_a_sharp_block():
    image = np.arange(2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 3)
    big = explore.upscale(image, 3)
    assert (6, 6, 3) == big.shape
    for row in range(2):
        for col in range(2):
            block = big[row * 3:(row + 1) * 3, col * 3:(col + 1) * 3]
            assert (block == image[row, col]).all()
    assert (5, 64, 64, 3) == explore.upscale(np.zeros((5, 32, 32, 3), np.uint8), 2).shape
    with pytest.raises(ValueError):
        explore.upscale(image, 0)


def test_sample_grid_of_a_superclass_shows_its_fine_classes_with_names(tiny_data):
    fish = tiny_data.coarse_names.index("fish")
    samples = explore.sample_grid(tiny_data, "coarse", fish, count=12, seed=1, scale=2)
    assert 12 == len(samples.indices) == len(samples.captions)
    assert (12, 64, 64, 3) == samples.images.shape
    assert (tiny_data.y_train_coarse[samples.indices] == fish).all()
    names = {caption.split(" #")[0] for caption in samples.captions}
    assert names <= set(dict(SUPERCLASSES)["fish"])
    assert [f"{tiny_data.fine_names[tiny_data.y_train_fine[i]]} #{i}" for i in samples.indices] == samples.captions
    np.testing.assert_array_equal(explore.upscale(tiny_data.x_train[samples.indices], 2), samples.images)


def test_sample_grid_is_seeded(tiny_data):
    def indices(seed):
        return explore.sample_grid(tiny_data, "coarse", 0, count=5, seed=seed).indices.tolist()

    assert indices(0) == indices(0)
    assert indices(0) != indices(1)


def test_sample_grid_of_a_fine_class_and_the_test_split(tiny_data):
    apple = tiny_data.fine_names.index("apple")
    samples = explore.sample_grid(tiny_data, "fine", apple, count=24, split="test")
    assert 1 == len(samples.indices)  # the tiny test set has one image per fine class
    assert samples.captions[0].startswith("apple #")


def test_superclass_table_lists_the_twenty_with_their_five(tiny_data):
    table = explore.superclass_table(tiny_data)
    assert ["label", "superclass", "fine classes"] == list(table.columns)
    assert [(coarse, ", ".join(fines)) for coarse, fines in SUPERCLASSES] == \
        list(zip(table["superclass"], table["fine classes"]))
    assert list(range(20)) == list(table["label"])


def test_class_counts_tables(tiny_data):
    fine = explore.class_counts_table(tiny_data, "fine")
    assert ["label", "class", "superclass", "train", "test"] == list(fine.columns)
    assert ([4] * 100, [1] * 100) == (list(fine["train"]), list(fine["test"]))
    assert ("apple", "fruit_and_vegetables") == tuple(fine.loc[0, ["class", "superclass"]])
    coarse = explore.class_counts_table(tiny_data, "coarse")
    assert ["label", "class", "train", "test"] == list(coarse.columns)
    assert ([20] * 20, [5] * 20) == (list(coarse["train"]), list(coarse["test"]))


def test_class_counts_chart_has_a_bar_per_class_and_split(tiny_data):
    spec = charts.class_counts_chart(explore.class_counts_table(tiny_data, "coarse")).to_dict()
    values = next(iter(spec["datasets"].values()))
    assert 40 == len(values)
    assert {("train", 20), ("test", 5)} == {(v["split"], v["images"]) for v in values}
    assert ("class", "images", "split") == (spec["encoding"]["x"]["field"], spec["encoding"]["y"]["field"],
                                            spec["encoding"]["color"]["field"])
    assert list(tiny_data.coarse_names) == spec["encoding"]["x"]["sort"]
