"""How a memory cap's last resort reaches the caller: a note in Ray's key-value store, by task id.

The cap (``memory_cap``) raises ``MemoryLimitError`` inside the guarded code,
but code that holds its memory inside one C call (a model's inference, an
I/O wait, ``time.sleep``) runs no Python bytecode to raise it in; after
``memory_cap.HARD_EXIT_S`` the watchdog ends the process. Ray then reports a
dead worker, which by itself names neither the cap nor the function. So
before it exits, the watchdog leaves its message in Ray's key-value store
(the GCS), keyed by the task (or actor call) the guarded code was running;
the caller, which holds that task's ObjectRef, reads it when the task is
lost and raises the cap's error instead. The note is small and deleted when
read; a task retried to success after one leaves it behind until Ray stops.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

_NAMESPACE = "spark_ray_memory_cap"


def _key(task_id_hex: str) -> bytes:
    return f"exit:{task_id_hex}".encode()


def exit_reporter() -> Callable[[str], None] | None:
    """In the guarded thread of a Ray task or actor call: what records the watchdog's exit message for
    that task's caller; None outside Ray (the message then goes to stderr only)."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    task_id = ray.get_runtime_context().get_task_id()
    if task_id is None:
        return None

    def report(message: str) -> None:
        from ray.experimental.internal_kv import _internal_kv_put

        _internal_kv_put(_key(task_id), message.encode(), namespace=_NAMESPACE)

    return report


def exit_message_of(ref: Any) -> str | None:
    """The cap's message for the task behind ``ref`` if the cap ended its process, else None (and the
    note is removed once read)."""
    try:
        from ray.experimental.internal_kv import _internal_kv_del, _internal_kv_get

        key = _key(ref.task_id().hex())
        found = _internal_kv_get(key, namespace=_NAMESPACE)
        if found:
            _internal_kv_del(key, namespace=_NAMESPACE)
    except Exception:  # noqa: BLE001 - no note to read (a Ray without the store, a lost GCS): Ray's error stands
        return None
    return found.decode() if found else None
