"""An enforced memory cap on user code: ``py_executor_memory`` (or ``memory`` with ``enforce_memory``).

Ray's ``memory`` option is only a scheduling reservation: a task that grows
past it keeps growing until the node runs out and Linux's OOM killer (or
Ray's memory monitor, at 95% of the node) kills some process, often not the
guilty one, with a message that names neither the limit nor the function.

Here a watchdog thread in the process that runs the user's code (a Ray
worker, an actor of a pool, or a Spark Python worker with
python_mode="python") reads the process's private memory, ``RssAnon`` in
``/proc/self/status`` (the object store's shared pages are not in it), every
``POLL_S`` seconds while a guarded call runs. Past the limit it raises
``MemoryLimitError`` inside the guarded thread (``PyThreadState_SetAsyncExc``:
at the next Python bytecode), naming the limit, what was measured and the
function, so the task or actor call fails within a fraction of a second.
Code stuck in one C call does not run bytecode; if the process is still over
the limit ``HARD_EXIT_S`` seconds later, it prints the same message to stderr
(Ray forwards it to the driver's log), leaves it for the caller
(``cap_reports``: the caller raises the same ``MemoryLimitError`` instead of
Ray's dead worker) and exits: late, but before the node's OOM killer picks a
victim.

Linux only (``/proc``); elsewhere the cap is reported once as not enforced.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .cap_reports import exit_reporter
from .errors import MemoryLimitError

log = logging.getLogger(__name__)

POLL_S = 0.05
HARD_EXIT_S = 5.0


def private_memory_bytes(pid: int | None = None) -> int | None:
    """The private resident memory (RssAnon) of a process (this one by default), or None where /proc has none."""
    try:
        with open(f"/proc/{'self' if pid is None else pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class _MemoryLimitExceeded(BaseException):
    """Raised asynchronously in the guarded thread; a BaseException so that ``except Exception`` in user code lets it through."""


@dataclass
class _Guard:
    thread_id: int
    limit_bytes: int
    label: str
    option: str
    tripped_at: float | None = None
    measured: int = 0
    report_exit: Callable[[str], None] | None = None

    def message(self) -> str:
        return (
            f"{self.label} exceeded the memory cap {self.option}: the private memory (RssAnon) of its "
            f"process (pid {os.getpid()}) reached {-(-self.measured // (1 << 20))} MB, over the limit of "
            f"{self.limit_bytes >> 20} MB. Give it more (py_executor_memory=<MB>) or make it use less."
        )


class _Watchdog:
    """One daemon thread per process, polling while any guard is active."""

    lock = threading.Lock()
    guards: dict[int, _Guard] = {}
    thread: threading.Thread | None = None
    wake = threading.Event()

    @classmethod
    def add(cls, guard: _Guard) -> None:
        with cls.lock:
            cls.guards[guard.thread_id] = guard
            if cls.thread is None or not cls.thread.is_alive():
                cls.thread = threading.Thread(target=cls._loop, name="spark-ray-memory-cap", daemon=True)
                cls.thread.start()
        cls.wake.set()

    @classmethod
    def remove(cls, guard: _Guard) -> None:
        with cls.lock:
            cls.guards.pop(guard.thread_id, None)

    @classmethod
    def _loop(cls) -> None:
        while True:
            with cls.lock:
                active = list(cls.guards.values())
            if not active:
                cls.wake.wait(1.0)
                cls.wake.clear()
                continue
            used = private_memory_bytes()
            if used is not None:
                for guard in active:
                    cls._check(guard, used)
            time.sleep(POLL_S)

    @classmethod
    def _check(cls, guard: _Guard, used: int) -> None:
        if used <= guard.limit_bytes:
            return
        with cls.lock:
            if cls.guards.get(guard.thread_id) is not guard:
                return  # the call ended meanwhile
            now = time.monotonic()
            guard.measured = max(guard.measured, used)
            if guard.tripped_at is None:
                guard.tripped_at = now
                _raise_in(guard.thread_id, _MemoryLimitExceeded)
                return
        if now - guard.tripped_at > HARD_EXIT_S:
            # The exception never landed (the thread is inside one C call) and the memory is still there.
            message = (
                f"{guard.message()} The code held the memory inside a call Python could not interrupt, "
                f"so its process (pid {os.getpid()}) was stopped."
            )
            sys.stderr.write(f"spark-ray: {message}\n")
            sys.stderr.flush()
            if guard.report_exit is not None:
                with contextlib.suppress(Exception):
                    guard.report_exit(message)
            os._exit(70)


def _raise_in(thread_id: int, exception: type[BaseException] | None) -> None:
    """Raise ``exception`` in thread ``thread_id`` at its next bytecode (None clears a pending one)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exception) if exception is not None else None
    )


_UNENFORCED_REPORTED = False


@contextlib.contextmanager
def memory_cap(limit_mb: int | None, label: str, option: str = "py_executor_memory") -> Iterator[None]:
    """Run the body under a cap of ``limit_mb`` MB of this process's private memory.

    Raises:
        MemoryLimitError: the process grew past the cap while the body ran.
    """
    global _UNENFORCED_REPORTED
    if limit_mb is None:
        yield
        return
    if private_memory_bytes() is None:
        if not _UNENFORCED_REPORTED:
            log.warning("%s=%s MB is not enforced here: this system has no /proc/self/status", option, limit_mb)
            _UNENFORCED_REPORTED = True
        yield
        return
    guard = _Guard(threading.get_ident(), limit_mb << 20, label, f"{option}={limit_mb} MB", report_exit=exit_reporter())
    _Watchdog.add(guard)
    tripped = False
    try:
        yield
    except _MemoryLimitExceeded:
        tripped = True
    finally:
        tripped = _disarm(guard) or tripped
    if tripped:
        gc.collect()  # the user's garbage is unreachable now; give it back before the next call
        _trim_malloc()
        raise MemoryLimitError(guard.message()) from None


def _disarm(guard: _Guard) -> bool:
    """Stop watching; True if the watchdog tripped. An exception raised just as the body ended is caught here."""
    while True:
        try:
            _Watchdog.remove(guard)
            if guard.tripped_at is not None:
                _raise_in(guard.thread_id, None)  # clear it if it has not landed yet
            return guard.tripped_at is not None
        except _MemoryLimitExceeded:
            continue


def _trim_malloc() -> None:
    """Return freed heap pages to the system (glibc keeps them otherwise, and RssAnon with them)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
