"""The processes this driver started, read from ``/proc``.

A failed ``ray.init`` leaves behind what it had already started (the GCS server, the monitors, perhaps a
raylet): Ray only records a node once it is up, so ``ray.shutdown()`` cannot stop them, and they would
live as long as the driver. Comparing this process's descendants before and after the attempt finds them.
On a system without ``/proc`` nothing is found, and nothing is stopped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

_PROC = "/proc"


def descendants(root: int | None = None) -> set[int]:
    """Pids of every live process below ``root`` (this process by default)."""
    root = os.getpid() if root is None else root
    parents = _parent_of_each()
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def command_line(pid: int) -> str:
    """The process's arguments joined by spaces ("" once it is gone)."""
    try:
        with open(os.path.join(_PROC, str(pid), "cmdline"), "rb") as source:
            return source.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def stop(pids: set[int], timeout_s: float = 10.0) -> set[int]:
    """SIGKILL ``pids`` and wait for them to go; the pids still alive after ``timeout_s``."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout_s
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        for pid in list(alive):
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)  # reap our own children, or they linger as zombies
        alive = {pid for pid in alive if _running(pid)}
        if alive:
            time.sleep(0.1)
    return alive


def _parent_of_each() -> dict[int, int]:
    parents: dict[int, int] = {}
    try:
        entries = os.listdir(_PROC)
    except OSError:
        return parents
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(os.path.join(_PROC, entry, "stat")) as source:
                stat = source.read()
        except OSError:
            continue  # it ended while we looked
        # "pid (name) state ppid ...": the name may hold spaces and parentheses, so split after the last ')'.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1:
            parents[int(entry)] = int(fields[1])
    return parents


def _running(pid: int) -> bool:
    try:
        with open(os.path.join(_PROC, str(pid), "stat")) as source:
            stat = source.read()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :][:1] not in ("Z", "X")
