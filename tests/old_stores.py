"""Stores as older versions left them, for migration tests."""
import sqlite_utils

from lsc_core.store import MIGRATIONS

# A finished run and its one epoch, as every migration test of this round starts from.
OLD_RUN = {"id": 1, "name": "old", "status": "completed", "config": "{}", "created_at": "x"}
OLD_EPOCH = {"run_id": 1, "epoch": 1, "loss": 2.0, "accuracy": 0.3, "val_loss": 2.1, "val_accuracy": 0.25,
             "seconds": 30.0}


def write_migration_4_store(path, **rows) -> object:
    """A store at schema version 4 (before this round's migrations) holding `rows`
    (table name -> list of row dicts); returns its path."""
    old = sqlite_utils.Database(path)
    for step in MIGRATIONS[:4]:
        step(old)
    old.execute("PRAGMA user_version = 4")
    for table, records in rows.items():
        old[table].insert_all(records)
    old.conn.commit()
    old.conn.close()
    return path
