"""The pyjava-style API that Byzer code strings are written against.

A code string sees ``context`` (a PythonContext, also bound as
``data_manager``) and can ``from pyjava.api.mlsql import RayContext``. In data
mode the code only declares the per-row or per-shard function
(``ray_context.foreach(fn)``, ``map_iter(fn)`` or ``setup(...)``); spark-ray
then runs that function over every shard.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

_UNSET: Any = object()


class PythonContext:
    """What ``context`` is inside a code string.

    Attributes:
        conf: the job's options as strings (Byzer's runnerConf).
        requested_address: the address the code passed to RayContext.connect,
            or _UNSET if it never connected.
        registered: (kind, fn) pairs the code declared, in order.
    """

    def __init__(self, conf: dict[str, str] | None = None) -> None:
        self.conf = dict(conf or {})
        self.requested_address: Any = _UNSET
        self.registered: list[tuple[str, Callable[..., Any]]] = []

    @property
    def connected(self) -> bool:
        return self.requested_address is not _UNSET


class RayContext:
    """pyjava's RayContext: declares how the table's shards are processed."""

    def __init__(self, context: PythonContext, address: str | None) -> None:
        self.context = context
        self.address = address

    @classmethod
    def connect(cls, context_or_globals: Any, address: str | None = None, **_ignored: Any) -> RayContext:
        """Accepts ``context`` or ``globals()`` as in pyjava; ``address`` None means no Ray."""
        context = context_or_globals
        if isinstance(context_or_globals, dict):
            context = context_or_globals.get("context")
        if not isinstance(context, PythonContext):
            raise TypeError(
                "RayContext.connect expects `context` or `globals()` of a spark-ray code string, "
                f"got {type(context_or_globals).__name__}"
            )
        context.requested_address = address
        return cls(context, address)

    def foreach(self, func_for_row: Callable[[dict[str, Any]], Any]) -> None:
        """Process the table row by row: ``func_for_row(row: dict)`` returns a row, rows or None."""
        self._register("row", func_for_row)

    def map_iter(self, func_for_rows: Callable[[Any], Any]) -> None:
        """Process the table shard by shard: ``func_for_rows(rows)`` yields rows."""
        self._register("rows", func_for_rows)

    def setup(self, func_for_row: Callable[..., Any] | None, func_for_rows: Callable[..., Any] | None = None) -> None:
        """The older form: a per-shard function wins over a per-row one."""
        if func_for_rows is not None:
            self._register("rows", func_for_rows)
        elif func_for_row is not None:
            self._register("row", func_for_row)
        else:
            raise TypeError("setup() needs a per-row or a per-shard function")

    def _register(self, kind: str, fn: Callable[..., Any]) -> None:
        if not callable(fn):
            raise TypeError(f"expected a function, got {type(fn).__name__}")
        self.context.registered.append((kind, fn))
