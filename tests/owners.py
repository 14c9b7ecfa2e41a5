"""Runs owned by other processes, as the store records owners: for the liveness tests."""
import subprocess
import time
from dataclasses import replace

import psutil

from lsc_core import liveness


def identity_of(pid: int) -> liveness.Identity:
    """The identity of a live process of this machine and PID namespace, as its own trainer records it."""
    return replace(liveness.this_process(), pid=pid, started=psutil.Process(pid).create_time())


def dead_identity() -> liveness.Identity:
    """The identity a real process had before it exited (and was reaped)."""
    process = subprocess.Popen(["sleep", "30"])
    identity = identity_of(process.pid)
    process.kill()
    process.wait()
    return identity


def hand_over(store, run_id: int, owner: liveness.Identity, heartbeat_age_s: float = 0.0) -> None:
    """Make `owner` the running run's owner, its last heartbeat `heartbeat_age_s` seconds ago."""
    store.db.execute("UPDATE runs SET status = 'running', owner = ?, pid = ?, host = ?, boot_id = ?, pid_ns = ?, "
                     "process_started = ?, heartbeat_at = ? WHERE id = ?",
                     [owner.token, owner.pid, owner.host, owner.boot_id, owner.pid_ns, owner.started,
                      time.time() - heartbeat_age_s, run_id])
