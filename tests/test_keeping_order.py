"""Keeping runs in order: tags, notes, archive and delete, in the store and on the command line."""
import subprocess
import sys

import pytest

from lsc_core.cli import main
from lsc_core.config import LayerSpec, RunConfig, preset
from lsc_core.evaluate import store_predictions
from lsc_core.store import COMPLETED, RUNNING, Store, StoreError
from lsc_core.train import train_run

SMALL = (LayerSpec.make("conv2d", filters=8), LayerSpec.make("maxpool2d", pool_size=4),
         LayerSpec.make("flatten"), LayerSpec.make("dense", units=32))


def finished_run(store, name):
    run_id = store.create_run(preset("seed-part1", name=name), status=RUNNING)
    store.log_epoch(run_id, 1, {"loss": 3.0, "accuracy": 0.1, "val_loss": 3.1, "val_accuracy": 0.1}, 5.0)
    store.finish_run(run_id, COMPLETED)
    return run_id


def test_tags_filter_runs_and_are_checked(store):
    a, b, c = (finished_run(store, name) for name in "abc")
    assert ["baseline", "lr sweep"] == store.set_tags(a, ["lr sweep", " baseline ", "baseline"])
    store.set_tags(b, ["baseline"])
    assert [b, a] == [run.id for run in store.list_runs(tag="baseline")]
    assert [a] == [run.id for run in store.list_runs(tag="lr sweep")]
    assert ["baseline", "lr sweep"] == store.all_tags()
    assert [] == store.get_run(c).tags
    for bad in ("", "   ", "a,b", "x" * 41):
        with pytest.raises(StoreError, match="a tag must be"):
            store.set_tags(c, [bad])
    assert [] == store.get_run(c).tags  # a refused tag changes nothing


def test_archived_runs_are_hidden_until_asked_for(store):
    kept, archived = finished_run(store, "kept"), finished_run(store, "old")
    store.set_archived(archived, True)
    assert [kept] == [run.id for run in store.list_runs(archived=False)]
    assert [archived] == [run.id for run in store.list_runs(archived=True)]
    assert {kept, archived} == {run.id for run in store.list_runs()}
    store.set_archived(archived, False)
    assert {kept, archived} == {run.id for run in store.list_runs(archived=False)}


def test_delete_removes_everything_of_the_run_and_nothing_else(store, tiny_data):
    ids = []
    for name in ("gone", "stays"):
        run_id = store.create_run(RunConfig(layers=SMALL, epochs=1, batch_size=32, name=name), status=RUNNING)
        train_run(store, run_id, load_data=lambda: tiny_data, after_training=store_predictions)
        ids.append(run_id)
    gone, stays = ids
    suite = store.create_suite("study", "{}", {"part1": gone, "part2": stays})
    assert (store.artifacts / str(gone)).is_dir() and store.system_metrics(gone)
    store.delete_run(gone)
    assert None is store.get_run(gone)
    assert ([], None, []) == (store.epochs(gone), store.load_predictions(gone), store.system_metrics(gone))
    assert not (store.artifacts / str(gone)).exists()
    assert {"part2": stays} == next(s for s in store.list_suites() if s["id"] == suite)["runs"]
    assert store.epochs(stays) and store.load_predictions(stays) is not None
    assert (store.artifacts / str(stays) / "best.keras").is_file()


def test_a_running_run_must_be_stopped_before_it_is_deleted(store):
    live = store.create_run(preset("seed-part1"), status=RUNNING)
    with pytest.raises(StoreError, match="stop it first"):
        store.delete_run(live)
    assert store.get_run(live) is not None


def test_command_line_tag_note_archive_delete(tmp_path, capsys):
    db = tmp_path / "runs.sqlite"
    store = Store(db)
    first, second = finished_run(store, "first"), finished_run(store, "second")
    assert 0 == main(["tag", str(first), "baseline", "keep", "--db", str(db)])
    assert 0 == main(["tag", str(first), "keep", "--remove", "--db", str(db)])
    assert 0 == main(["note", str(first), "Adam", "beats", "**SGD**", "here", "--db", str(db)])
    assert (["baseline"], "Adam beats **SGD** here") == (store.get_run(first).tags, store.get_run(first).note)
    capsys.readouterr()
    assert 0 == main(["runs", "--tag", "baseline", "--db", str(db)])
    listed = capsys.readouterr().out
    assert "first" in listed and "second" not in listed and "[baseline]" in listed
    assert 0 == main(["archive", str(second), "--db", str(db)])
    assert 0 == main(["runs", "--db", str(db)])
    assert "second" not in capsys.readouterr().out
    assert 0 == main(["runs", "--archived", "--db", str(db)])
    assert "second" in capsys.readouterr().out
    assert 0 == main(["delete", str(second), "--yes", "--db", str(db)])
    assert [first] == [run.id for run in store.list_runs()]


def test_command_line_delete_without_confirmation_deletes_nothing(tmp_path):
    db = tmp_path / "runs.sqlite"
    run_id = finished_run(Store(db), "precious")
    for args in (["delete", str(run_id)], ["tag", str(run_id), "a,b"], ["note", "999", "x"]):
        result = subprocess.run([sys.executable, "-m", "lsc_core", *args, "--db", str(db)], capture_output=True,
                                text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert 1 == result.returncode
        assert 1 == len([line for line in result.stderr.splitlines() if line.startswith("error:")]), result.stderr
        assert "Traceback" not in result.stderr
    assert [run_id] == [run.id for run in Store(db).list_runs()]
