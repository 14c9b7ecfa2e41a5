"""Is the process that owns a running run still alive? Judged without guessing.

A pid alone says nothing across machines, containers (PID namespaces) or time (pids are
reused), so a process is identified by its host, the kernel's boot id, its PID
namespace, its pid and its start time. The verdict on a run:

- heartbeat fresh (younger than FRESH_HEARTBEAT_S): alive, always. The trainer beats
  every second through the whole run, so a fresh beat is proof of life whatever the pid.
- stale, and the owner ran on this very kernel and PID namespace: ask the process table
  whether that pid still exists with the recorded start time. Gone, or a pid reused by
  another process (another start time): dead. Same process: alive but silent (a long
  save, a store lock wait).
- stale, and the owner cannot be asked (another boot, namespace or host, or a row written
  before owners were recorded): dead only after STALE_HEARTBEAT_S of silence.

Pure: no store, no Streamlit; the store applies the verdict.
"""
from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass

import psutil

# The trainer's pulse beats every second; a heartbeat younger than this (5 beats) is proof of
# life. Older ones are judged by the process table where it can be read, so a beat delayed
# by a store lock (up to store.BUSY_TIMEOUT_S) never kills a live run on this machine.
FRESH_HEARTBEAT_S = 5.0
# An owner this machine cannot ask (another host, boot or PID namespace) is dead only after
# this long without a heartbeat: longer than any silent phase of a healthy run (a model save
# or a store lock wait is seconds to tens of seconds), short enough to requeue a crashed
# machine's runs within minutes.
STALE_HEARTBEAT_S = 300.0
# psutil derives a process's start time from the boot time, which the kernel reports in
# whole seconds and which can move by one as the clock is adjusted; a reused pid with a start
# time within this of the original would have to be recycled within a second of its birth.
START_TIME_TOLERANCE_S = 1.0
BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"


@dataclass(frozen=True)
class Identity:
    """Who a process is, across machines, containers and pid reuse."""

    host: str
    boot_id: str  # the kernel's boot id (changes at every boot)
    pid_ns: str | None  # e.g. 'pid:[4026531836]'; None off Linux
    pid: int
    started: float  # the process's start time, POSIX seconds

    @property
    def token(self) -> str:
        """The owner token a run's guarded writes are checked against: one per process."""
        return f"{self.host}/{self.boot_id}/{self.pid_ns or '-'}/{self.pid}/{self.started:.3f}"


_IDENTITIES: dict[int, Identity] = {}  # by pid: a forked child is another process


def this_process() -> Identity:
    """This process's identity (read once: none of it changes while the process lives)."""
    pid = os.getpid()
    if pid not in _IDENTITIES:
        _IDENTITIES[pid] = Identity(host=socket.gethostname(), boot_id=boot_id(), pid_ns=_pid_namespace(),
                                    pid=pid, started=psutil.Process(pid).create_time())
    return _IDENTITIES[pid]


def boot_id() -> str:
    """The kernel's boot id; where there is none (not Linux), the boot time stands in for it."""
    try:
        with open(BOOT_ID_FILE) as file:
            return file.read().strip()
    except OSError:
        return f"boot-{int(psutil.boot_time())}"


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:  # not Linux, or /proc hidden
        return None


def process_matches(pid: int | None, started: float | None) -> bool:
    """Whether `pid` (in this PID namespace) is still the process that started at `started`."""
    if not pid or started is None:
        return False
    try:
        process = psutil.Process(pid)
        return (abs(process.create_time() - started) <= START_TIME_TOLERANCE_S
                and process.status() != psutil.STATUS_ZOMBIE)  # a zombie has exited, only not been reaped
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # it exists but cannot be inspected (a hardened /proc): not provably dead
        return True


def is_dead(owner: Identity | None, heartbeat_at: float | None, *, now: float | None = None,
            me: Identity | None = None) -> bool:
    """The verdict on a running run owned by `owner` (None: not recorded) whose last heartbeat
    was at `heartbeat_at` (POSIX seconds). See the module's docstring."""
    silence = (now if now is not None else time.time()) - (heartbeat_at or 0.0)
    if silence < FRESH_HEARTBEAT_S:
        return False
    me = me or this_process()
    # The same kernel (host and boot) and PID namespace (None on both sides off Linux, which has none).
    if owner is not None and (owner.host, owner.boot_id, owner.pid_ns) == (me.host, me.boot_id, me.pid_ns):
        return not process_matches(owner.pid, owner.started)
    return silence > STALE_HEARTBEAT_S
