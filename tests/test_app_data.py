"""AppTest of the Data page on tiny CIFAR-100-format data."""
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cifar_files import SUPERCLASSES, synthetic_arrays, write_npz

PAGE = Path(__file__).resolve().parent.parent / "app_pages" / "data_explorer.py"
TIMEOUT_S = 60


@pytest.fixture
def page(tmp_path, monkeypatch, tiny_npz):
    monkeypatch.setenv("LSC_DB", str(tmp_path / "runs.sqlite"))
    monkeypatch.setenv("LSC_DATA", str(tiny_npz))
    monkeypatch.setenv("LSC_ARTIFACTS", str(tmp_path / "artifacts"))
    return AppTest.from_file(str(PAGE), default_timeout=TIMEOUT_S)


def captions(at) -> list[str]:
    [images] = at.get("image")
    return [image.caption for image in images.proto.imgs]


def test_data_page_shows_samples_hierarchy_counts_and_source(page, tiny_npz):
    at = page.run()
    assert [] == at.exception
    assert str(tiny_npz) in at.caption[0].value
    assert ["apple"] * 4 == [c.split(" #")[0] for c in captions(at)]  # 4 training images per fine class
    hierarchy, counts = at.dataframe
    assert [coarse for coarse, _ in SUPERCLASSES] == list(hierarchy.value["superclass"])
    assert ([20] * 20, [5] * 20) == (list(counts.value["train"]), list(counts.value["test"]))

    at.radio(key="data_mode").set_value("coarse").run()
    at.selectbox(key="data_class_coarse").set_value("flowers").run()
    assert set(dict(SUPERCLASSES)["flowers"]) == {c.split(" #")[0] for c in captions(at)}
    assert 20 == len(captions(at))

    at.radio(key="data_split").set_value("test").run()
    assert 5 == len(captions(at))
    at.radio(key="data_counts_mode").set_value("fine").run()
    assert [] == at.exception
    assert ([4] * 100, [1] * 100) == (list(at.dataframe[1].value["train"]), list(at.dataframe[1].value["test"]))


def test_shuffle_shows_another_repeatable_sample(tmp_path, monkeypatch):
    # 30 training images per class, more than the 24 shown, so a shuffle can differ.
    npz = write_npz(tmp_path / "thirty.npz", synthetic_arrays(n_train_per_class=30, n_test_per_class=1))
    monkeypatch.setenv("LSC_DB", str(tmp_path / "runs.sqlite"))
    monkeypatch.setenv("LSC_DATA", str(npz))
    at = AppTest.from_file(str(PAGE), default_timeout=TIMEOUT_S).run()
    first = captions(at)
    assert 24 == len(first)
    at.button[0].click().run()
    assert first != captions(at)
    assert 1 == at.session_state["data_sample_seed"]


def test_missing_data_gets_one_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("LSC_DB", str(tmp_path / "runs.sqlite"))
    monkeypatch.setenv("LSC_DATA", str(tmp_path / "nowhere.npz"))
    at = AppTest.from_file(str(PAGE), default_timeout=TIMEOUT_S).run()
    assert [] == at.exception
    assert 1 == len(at.error)
    assert "does not exist" in at.error[0].value
