"""Run archives: export-run then import-run into an empty store gives the same run; hostile
archives are refused in one line with nothing stored."""
import io
import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from lsc_core.archive import ArchiveError, export_run, import_run
from lsc_core.cli import main
from lsc_core.config import LayerSpec, RunConfig
from lsc_core.evaluate import store_predictions
from lsc_core.model import load_run_model
from lsc_core.store import RUNNING, Store
from lsc_core.train import train_run

SMALL = (LayerSpec.make("conv2d", filters=8), LayerSpec.make("maxpool2d", pool_size=4),
         LayerSpec.make("flatten"), LayerSpec.make("dense", units=32))
# What is the same run in another store: everything but where it lives.
PER_STORE = {"id", "pid", "host", "heartbeat_at", "progress", "model_path", "search_id", "stop_requested"}


@pytest.fixture(scope="module")
def archived(tmp_path_factory, tiny_data):
    """A really trained fine run with predictions, exported; (source store, run id, archive path)."""
    folder = tmp_path_factory.mktemp("archive")
    store = Store(folder / "source.sqlite")
    run_id = store.create_run(RunConfig(layers=SMALL, epochs=2, batch_size=32, label_mode="fine", name="shared"),
                              status=RUNNING)
    train_run(store, run_id, load_data=lambda: tiny_data, after_training=store_predictions)
    assert 0 == main(["export-run", str(run_id), str(folder / "run.zip"), "--db", str(store.path)])
    return store, run_id, folder / "run.zip"


def same_run(run) -> dict:
    return {k: v for k, v in vars(run).items() if k not in PER_STORE}


def test_import_into_an_empty_store_gives_the_same_run(archived, tmp_path, tiny_data, capsys):
    source, run_id, archive = archived
    target = Store(tmp_path / "other" / "target.sqlite")
    assert 0 == main(["import-run", str(archive), "--db", str(target.path)])
    assert "imported" in capsys.readouterr().out
    (imported,) = target.list_runs()
    assert same_run(source.get_run(run_id)) == same_run(imported)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "run_id"} for r in rows]  # noqa: E731
    assert strip(source.epochs(run_id)) == strip(target.epochs(imported.id))
    assert strip(source.system_metrics(run_id)) == strip(target.system_metrics(imported.id))
    ours, theirs = source.load_predictions(run_id), target.load_predictions(imported.id)
    for key in ("probabilities", "fine", "coarse"):
        assert np.array_equal(ours[key], theirs[key])
    # The model travelled into the new store's own artifacts, and predicts as before.
    assert imported.model_path.is_relative_to(target.artifacts)
    images = tiny_data.x_test[:20].astype("float32")
    assert np.allclose(load_run_model(source.get_run(run_id)).predict(images, verbose=0),
                       load_run_model(imported).predict(images, verbose=0))


def test_a_run_exported_while_running_arrives_interrupted(tmp_path):
    source = Store(tmp_path / "a.sqlite")
    live = source.create_run(RunConfig(layers=SMALL, epochs=3), status=RUNNING)
    source.log_epoch(live, 1, {"loss": 3.0, "accuracy": 0.1, "val_loss": 3.1, "val_accuracy": 0.1}, 2.0)
    export_run(source, live, tmp_path / "live.zip")
    target = Store(tmp_path / "b.sqlite")
    imported = target.get_run(import_run(target, tmp_path / "live.zip"))
    assert ("interrupted", 1) == (imported.status, len(target.epochs(imported.id)))


def rewrite(archive, tmp_path, name, change=None, extra=None):
    """A copy of `archive` with its manifest changed by `change(manifest)` and/or extra members."""
    out = tmp_path / name
    with zipfile.ZipFile(archive) as original, zipfile.ZipFile(out, "w") as copy:
        for info in original.infolist():
            data = original.read(info)
            if info.filename == "manifest.json" and change is not None:
                manifest = json.loads(data)
                change(manifest)
                data = json.dumps(manifest).encode()
            copy.writestr(info.filename, data)
        for member, data in (extra or {}).items():
            copy.writestr(member, data)
    return out


def hostile_archives(archive, tmp_path):
    bad_npz = io.BytesIO()
    np.savez(bad_npz, probabilities=np.zeros((3, 7), dtype=np.float16), fine=np.zeros(3), coarse=np.zeros(3))
    pickled = io.BytesIO()
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return {
        "not a zip": (tmp_path / "junk.zip").write_bytes(b"not a zip") and tmp_path / "junk.zip",
        "path traversal": rewrite(archive, tmp_path, "slip.zip", extra={"../../evil.txt": b"x"}),
        "bad config": rewrite(archive, tmp_path, "cfg.zip",
                              lambda m: m["run"]["config"]["layers"].append({"kind": "dropout", "rate": 1.5})),
        "config of the wrong type": rewrite(archive, tmp_path, "type.zip",
                                            lambda m: m["run"].__setitem__("config", ["not", "a", "config"])),
        "other format": rewrite(archive, tmp_path, "fmt.zip", lambda m: m.__setitem__("format", "x")),
        "newer version": rewrite(archive, tmp_path, "ver.zip", lambda m: m.__setitem__("version", 99)),
        "epoch row with text": rewrite(archive, tmp_path, "ep.zip",
                                       lambda m: m["epochs"][0].__setitem__("loss", "DROP TABLE runs")),
        "label mode mismatch": rewrite(archive, tmp_path, "mode.zip",
                                       lambda m: m["run"].__setitem__("label_mode", "coarse")),
    }, {"wrong prediction shape": (bad_npz.getvalue(), "predictions.npz"),
        "pickled predictions": (pickled.getvalue(), "predictions.npz")}


def test_hostile_archives_are_refused_with_one_line_and_store_nothing(archived, tmp_path):
    _, _, archive = archived
    archives, members = hostile_archives(archive, tmp_path)
    for case, (data, member) in members.items():
        path = tmp_path / f"{case.replace(' ', '-')}.zip"
        with zipfile.ZipFile(archive) as original, zipfile.ZipFile(path, "w") as copy:
            for info in original.infolist():
                copy.writestr(info.filename, data if info.filename == member else original.read(info))
        archives[case] = path
    target = Store(tmp_path / "target.sqlite")
    for case, path in archives.items():
        with pytest.raises(ArchiveError):
            import_run(target, path)
        assert [] == target.list_runs(), case
    # The command line says it in one line, without a traceback.
    result = subprocess.run([sys.executable, "-m", "lsc_core", "import-run", str(archives["path traversal"]),
                             "--db", str(target.path)], capture_output=True, text=True, timeout=120)
    assert 1 == result.returncode
    assert ["error: unexpected file(s) in the archive: ../../evil.txt"] == \
        [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "Traceback" not in result.stderr
    assert not (tmp_path.parent / "evil.txt").exists()


def test_export_refuses_an_unknown_run_and_an_existing_file(archived, tmp_path):
    source, run_id, archive = archived
    with pytest.raises(ArchiveError, match="no run 999"):
        export_run(source, 999, tmp_path / "x.zip")
    with pytest.raises(ArchiveError, match="already exists"):
        export_run(source, run_id, archive)
