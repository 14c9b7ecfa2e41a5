"""Each store owns its artifacts folder; a stored model path is used only inside it; the saved
model's epoch is recorded. Real stores, real tiny Keras training."""
import os
import sqlite3
import subprocess
import sys

import pytest
from old_stores import OLD_RUN, write_migration_4_store
from test_hostile import small_mount  # noqa: F401  (a fixture: a small real file system)

from lsc_core import artifacts
from lsc_core.config import LayerSpec, RunConfig
from lsc_core.model import ModelUnavailable, load_run_model
from lsc_core.store import COMPLETED, RUNNING, Store, StoreError
from lsc_core.train import train_run

SMALL = (LayerSpec.make("conv2d", filters=8), LayerSpec.make("maxpool2d", pool_size=4),
         LayerSpec.make("flatten"), LayerSpec.make("dense", units=32))


def train_small(store, tiny_data, epochs=2):
    run_id = store.create_run(RunConfig(layers=SMALL, epochs=epochs, batch_size=32, learning_rate=3e-3),
                              status=RUNNING)
    return train_run(store, run_id, load_data=lambda: tiny_data)


def store_id(store) -> str:
    return store.db.execute("SELECT value FROM store_info WHERE key = 'store_id'").fetchone()[0]


def tamper_model_path(store, run_id, value) -> None:
    """Write a model path straight into the store, as an attacker with the file would."""
    conn = sqlite3.connect(store.path)
    with conn:
        conn.execute("UPDATE runs SET model_path = ? WHERE id = ?", [value, run_id])
    conn.close()


def dump(path) -> list[str]:
    """Everything a store holds, as SQL (the file's bytes change when SQLite checkpoints its WAL)."""
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


# -- whose folder -----------------------------------------------------------------------------
def test_a_new_store_gets_a_folder_of_its_own_under_the_root(tmp_path, monkeypatch):
    monkeypatch.delenv("LSC_ARTIFACTS", raising=False)
    store = Store(tmp_path / "my runs.sqlite")
    assert 32 == len(store_id(store))
    assert tmp_path.resolve() / "artifacts" / f"my_runs-{store_id(store)[:8]}" == store.artifacts
    monkeypatch.setenv("LSC_ARTIFACTS", str(tmp_path / "shared"))
    again = Store(tmp_path / "my runs.sqlite")  # the name is kept in the store; the root follows LSC_ARTIFACTS
    assert (store_id(store), tmp_path.resolve() / "shared" / store.artifacts.name) == (store_id(again),
                                                                                      again.artifacts)


def test_two_stores_in_one_folder_keep_their_own_models(tmp_path, tiny_data, monkeypatch):
    monkeypatch.delenv("LSC_ARTIFACTS", raising=False)
    first, second = Store(tmp_path / "runs.sqlite"), Store(tmp_path / "other.sqlite")
    one = train_small(first, tiny_data)
    before = one.model_path.read_bytes()
    two = train_small(second, tiny_data, epochs=1)
    assert (1, 1) == (one.id, two.id)  # the same run id in both stores...
    assert one.model_path != two.model_path  # ...and two files,
    assert before == first.get_run(1).model_path.read_bytes()  # neither overwritten
    assert first.artifacts.parent == second.artifacts.parent == tmp_path.resolve() / "artifacts"
    assert [one.params, two.params] == [load_run_model(run).count_params()
                                        for run in (first.get_run(1), second.get_run(1))]
    second.delete_run(1)  # removes its own run folder only
    assert (False, True) == ((second.artifacts / "1").exists(), first.get_run(1).model_path.is_file())


# -- which model paths are used ---------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_data):
    """A store with one really trained run: (store, run)."""
    store = Store(tmp_path_factory.mktemp("contained") / "runs.sqlite")
    return store, train_small(store, tiny_data)


def hostile_path(store, name, outside):
    """A model path an attacker could write into the store, and the end of the line that refuses it."""
    if name == "a link leading out":
        link = store.artifacts / "9" / "best.keras"
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(outside)
        return "9/best.keras", f"links outside this store's artifacts folder (to {outside}); not used"
    value = {"/etc/shadow": "/etc/shadow", "../../x": "../../x", "a real .keras file outside": str(outside)}[name]
    return value, "is outside this store's artifacts folder; not used"


@pytest.mark.parametrize("name", ["/etc/shadow", "../../x", "a link leading out", "a real .keras file outside"])
def test_a_stored_model_path_outside_the_stores_folder_is_not_used(trained, tmp_path, name):
    store, run = trained
    outside = tmp_path.resolve() / "elsewhere.keras"
    outside.write_bytes(run.model_path.read_bytes())  # a usable model: only where it lies is wrong
    value, why = hostile_path(store, name, outside)
    good = store.db.execute("SELECT model_path FROM runs WHERE id = ?", [run.id]).fetchone()[0]
    tamper_model_path(store, run.id, value)
    try:
        refused = store.get_run(run.id)
        assert (None, f"stored model path {value} {why}") == (refused.model_path, refused.model_problem)
        with pytest.raises(ModelUnavailable, match="outside this store's artifacts folder"):
            load_run_model(refused)
        assert refused.model_problem == artifacts.describe_model(refused)
        with pytest.raises(StoreError, match="not recorded"):
            store.set_model_path(run.id, value)
    finally:
        tamper_model_path(store, run.id, good)
    assert store.get_run(run.id).model_path == run.model_path


def test_a_stored_model_path_that_is_not_text_is_not_used(trained):
    store, run = trained
    good = store.db.execute("SELECT model_path FROM runs WHERE id = ?", [run.id]).fetchone()[0]
    tamper_model_path(store, run.id, b"\x00/etc/shadow")
    try:
        assert (None, "stored model path b'\\x00/etc/shadow' is not a path; not used") == (
            store.get_run(run.id).model_path, store.get_run(run.id).model_problem)
    finally:
        tamper_model_path(store, run.id, good)


def test_a_tampered_folder_name_is_one_line_and_changes_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("LSC_ARTIFACTS", raising=False)
    path = Store(tmp_path / "runs.sqlite").path
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE store_info SET value = '../..' WHERE key = 'artifacts_folder'")
    conn.close()
    before = dump(path)
    with pytest.raises(StoreError, match=r"names its artifacts folder \.\./\.\., which is not a plain folder name"):
        Store(path)
    result = subprocess.run([sys.executable, "-m", "lsc_core", "runs", "--db", str(path)], capture_output=True,
                            text=True, timeout=120)
    assert (1, ["error: the store names its artifacts folder ../.., which is not a plain folder name; the store "
                "was left as it is"]) == (result.returncode, result.stderr.splitlines())
    assert before == dump(path)


# -- the saved model's epoch ------------------------------------------------------------------
def test_the_saved_models_epoch_is_recorded_and_is_the_best(trained):
    store, run = trained
    assert (COMPLETED, run.best_epoch) == (run.status, run.model_epoch)
    assert run.model_path.is_relative_to(store.artifacts)
    assert f"best model: epoch {run.best_epoch} of 2, test acc {run.best_val_accuracy:.3f}" == \
        artifacts.describe_model(run)


def test_a_model_older_than_the_best_is_said_plainly(trained):
    from dataclasses import replace

    store, run = trained
    behind = replace(run, model_epoch=1, best_epoch=2, error="the best model could not be saved to x: disk full")
    assert (f"saved model is epoch 1; the store's best is epoch 2 of 2, test acc {run.best_val_accuracy:.3f} "
            "(the best model could not be saved to x: disk full)") == artifacts.describe_model(behind)
    unknown = replace(run, model_epoch=None)
    assert artifacts.describe_model(unknown).startswith("saved model: its epoch is not recorded (saved by an older")


# -- stores from before stores had their own folder -------------------------------------------
def test_an_old_store_keeps_the_root_and_its_models_stay_usable(tmp_path, trained, monkeypatch):
    monkeypatch.delenv("LSC_ARTIFACTS", raising=False)
    _, run = trained
    path = write_migration_4_store(tmp_path / "runs.sqlite", runs=[{**OLD_RUN, "model_path": "1/best.keras",
                                                                     "label_mode": "coarse"}])
    model = tmp_path / "artifacts" / "1" / "best.keras"
    model.parent.mkdir(parents=True)
    model.write_bytes(run.model_path.read_bytes())
    old = Store(path)
    assert (tmp_path.resolve() / "artifacts", model.resolve(), None) == (old.artifacts, old.get_run(1).model_path,
                                                                         old.get_run(1).model_epoch)
    assert load_run_model(old.get_run(1)).count_params() == run.params
    # A new store beside it gets a folder inside that root; the old store never uses it.
    new = Store(tmp_path / "new.sqlite")
    assert new.artifacts.parent == old.artifacts
    tamper_model_path(old, 1, f"{new.artifacts.name}/1/best.keras")
    assert "outside this store's artifacts folder" in old.get_run(1).model_problem


def test_migration_is_safe_to_run_twice(tmp_path):
    import sqlite_utils

    from lsc_core import store as store_module

    path = write_migration_4_store(tmp_path / "v4.sqlite", runs=[OLD_RUN])
    db = sqlite_utils.Database(path)
    for step in store_module.MIGRATIONS[4:]:
        step(db)
    made = dict(db.execute("SELECT key, value FROM store_info").fetchall())
    store_module._migration_store_info(db)  # e.g. two processes racing: the first one's identity stays
    store_module._migration_model_epoch(db)
    assert made == dict(db.execute("SELECT key, value FROM store_info").fetchall())
    assert artifacts.SHARED_ROOT == made[artifacts.FOLDER]  # it had a run: it keeps the root
    db.conn.close()


def test_an_imported_run_lands_in_the_importing_stores_folder_with_its_epoch(trained, tmp_path, monkeypatch):
    from lsc_core.archive import export_run, import_run

    monkeypatch.delenv("LSC_ARTIFACTS", raising=False)
    source, run = trained
    export_run(source, run.id, tmp_path / "run.zip")
    target = Store(tmp_path / "target.sqlite")
    imported = target.get_run(import_run(target, tmp_path / "run.zip"))
    assert (target.artifacts / str(imported.id) / "best.keras", run.model_epoch) == (imported.model_path,
                                                                                      imported.model_epoch)
    assert os.path.samefile(target.artifacts.parent, tmp_path / "artifacts")


def test_a_store_without_store_info_is_read_with_the_shared_root_rule(tmp_path, monkeypatch):
    monkeypatch.delenv("LSC_ARTIFACTS", raising=False)
    # What a read-only store older than store_info gets (it cannot be migrated).
    folder = artifacts.StoreFolder.of(tmp_path / "old.sqlite", None)
    assert (tmp_path.resolve() / "artifacts", True) == (folder.path, folder.shared_root)
    assert (folder.path / "3" / "best.keras", None) == folder.model_path("3/best.keras")
    assert folder.model_path("old-0123abcd/3/best.keras")[1].endswith("is outside this store's artifacts folder; "
                                                                      "not used")


def test_export_run_of_a_refused_model_path_says_the_archive_has_no_model(trained, tmp_path, capsys):
    import zipfile

    from lsc_core.cli import main

    store, run = trained
    good = store.db.execute("SELECT model_path FROM runs WHERE id = ?", [run.id]).fetchone()[0]
    tamper_model_path(store, run.id, "/etc/hostname")
    try:
        assert 0 == main(["export-run", str(run.id), str(tmp_path / "run.zip"), "--db", str(store.path)])
    finally:
        tamper_model_path(store, run.id, good)
    assert (f"run {run.id}: stored model path /etc/hostname is outside this store's artifacts folder; not used; "
            "the archive has no model") == capsys.readouterr().out.splitlines()[-1]
    assert "model.keras" not in zipfile.ZipFile(tmp_path / "run.zip").namelist()


def test_a_save_that_failed_after_an_earlier_one_is_said_plainly(small_mount, store, tiny_data, monkeypatch, capsys):
    """The artifacts' file system turns read-only after epoch 1 (a real mount, no mock): the file
    stays epoch 1's while the store's best moves on, and every place that shows the model says so."""
    import keras

    from lsc_core.cli import main
    from lsc_core.model import build_model, compile_model
    from lsc_core.train import make_callback

    folder, remount = small_mount
    monkeypatch.setenv("LSC_ARTIFACTS", str(folder))
    config = RunConfig(layers=SMALL, epochs=6, batch_size=32, learning_rate=1e-2)  # improves more than once
    run_id = store.create_run(config, status=RUNNING)
    model = build_model(config)
    compile_model(model, config)
    saver = make_callback(store, run_id, store.artifacts / str(run_id) / "best.keras", config.epochs)

    class ReadOnlyAfterEpochOne(keras.callbacks.Callback):  # after the store's callback has saved epoch 1
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                remount("ro")

    x, y = tiny_data.x_train.astype("float32"), tiny_data.labels("train", "coarse")
    validation = (tiny_data.x_test.astype("float32"), tiny_data.labels("test", "coarse"))
    try:
        model.fit(x, y, batch_size=32, epochs=config.epochs, validation_data=validation, verbose=0,
                  callbacks=[saver, ReadOnlyAfterEpochOne()])
        saver.save_best()  # as train_run does when fit ends: one more try
    finally:
        remount("rw")
    store.finish_run(run_id, COMPLETED, saver.save_error)
    run = store.get_run(run_id)
    assert 1 == run.model_epoch < run.best_epoch
    assert "Read-only file system" in run.error
    line = (f"saved model is epoch 1; the store's best is epoch {run.best_epoch} of 6, test acc "
            f"{run.best_val_accuracy:.3f} ({run.error})")
    assert line == artifacts.describe_model(run)
    assert 0 == main(["runs", "--db", str(store.path)])
    assert f"run {run_id}: {line}" == capsys.readouterr().out.splitlines()[-1]


def test_paths_inside_the_folder_are_used_as_they_resolve(tmp_path, monkeypatch):
    monkeypatch.delenv("LSC_ARTIFACTS", raising=False)
    folder = artifacts.StoreFolder.of(tmp_path / "runs.sqlite", "runs-0123abcd")
    (folder.path / "1").mkdir(parents=True)
    (folder.path / "1" / "best.keras").write_bytes(b"model")
    (folder.path / "2").symlink_to(folder.path / "1")  # a link that stays inside is fine
    inside = ["1/best.keras", "2/best.keras", "./1/best.keras", "1//best.keras", "3/not-yet.keras",
              "held.keras", str(folder.path / "1" / "best.keras"), "1/../1/best.keras"]
    assert [((folder.path / value).resolve(), None) for value in inside] == [folder.model_path(v) for v in inside]
    assert (None, None) == folder.model_path(None)
    assert folder.model_path(".")[1].endswith("is outside this store's artifacts folder; not used")


@pytest.mark.parametrize("swapped", ["the file", "its folder"])
def test_a_model_swapped_for_a_link_after_its_run_was_read_is_not_served(tmp_path, monkeypatch, swapped):
    from lsc_core import views
    from lsc_core.config import preset

    monkeypatch.delenv("LSC_ARTIFACTS", raising=False)
    store = Store(tmp_path / "runs.sqlite")
    run_id = store.create_run(preset("seed-part1"))
    model = store.artifacts / str(run_id) / "shadow"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"model bytes")
    store.set_model_path(run_id, model)
    run = store.get_run(run_id)  # what the page drew, the button's reader with it
    read, _ = views.model_download(run)
    assert b"model bytes" == read()
    secret = tmp_path / "etc" / "shadow"
    secret.parent.mkdir()
    secret.write_bytes(b"secret")
    if swapped == "the file":  # then swapped before the click
        model.unlink()
        model.symlink_to(secret)
    else:
        model.parent.rename(tmp_path / "moved")
        model.parent.symlink_to(secret.parent)
    with pytest.raises(OSError, match=f"the model file {model} cannot be read without following a link"):
        read()
