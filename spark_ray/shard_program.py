"""Running the user's function over one shard of the table.

A ``ShardProgram`` is what a Ray task, an actor of a pool (or a Spark Python
worker, without Ray) executes: it takes one shard as Arrow data, calls the
user's function the way its ``kind`` says, and returns Arrow data of the
output schema. It is pickled once per job and cached by job id where it runs.

The user's code may be a callable class (Ray Data's convention): its
``__init__`` runs once where the program lives (``instantiate``; an actor of a
pool calls it in its own ``__init__``) and the instance is called per row or
per batch. With a memory cap, every call runs under ``memory_cap``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from .convert import (
    ROWS_PER_CHUNK,
    conform_table,
    pandas_to_table,
    rows_of,
    rows_to_batch,
    to_pandas,
    with_complete_offsets,
)
from .environment import job_environment
from .errors import MemoryLimitError, ResultSchemaError, UserCodeError
from .memory_cap import memory_cap
from .user_code import UserFunction, user_traceback


@dataclass
class ShardProgram:
    """One job's work on one shard: the user function plus the output schema.

    Attributes:
        user: the function or callable class.
        schema: the output schema (Arrow).
        env: PYTHON_ENV's exports, set around the user code.
        constructor_args, constructor_kwargs: a callable class's ``__init__`` arguments.
        memory_limit_mb: the enforced cap on the process's private memory, or None.
        memory_limit_option: the option that set it, for the error message.
        input_names: the input's column names, when Spark hands the shards over under placeholder
            names (``convert.spark_safe_input``); None when the shards carry their own.
        batch_size: rows per call of a batch function (kinds rows, arrow, pandas); None: one call per
            incoming batch (arrow) or per shard (rows, pandas).
    """

    user: UserFunction
    schema: pa.Schema
    env: dict[str, str] = field(default_factory=dict)
    constructor_args: tuple[Any, ...] = ()
    constructor_kwargs: dict[str, Any] = field(default_factory=dict)
    memory_limit_mb: int | None = None
    memory_limit_option: str = "py_executor_memory"
    input_names: list[str] | None = None
    batch_size: int | None = None
    _ready: bool = field(default=False, repr=False, compare=False)
    _instance: Any = field(default=None, repr=False, compare=False)

    def instantiate(self) -> None:
        """Build the callable class's instance, once; nothing for a plain function.

        Raises:
            UserCodeError: ``__init__`` raised (with the user's traceback).
            MemoryLimitError: ``__init__`` grew past the memory cap.
        """
        self._prepare()
        if not self.user.is_class or self._instance is not None:
            return
        try:
            with (
                memory_cap(self.memory_limit_mb, f"{self.user.label} in __init__", self.memory_limit_option),
                job_environment(self.env),
            ):
                self._instance = self.user.fn(*self.constructor_args, **self.constructor_kwargs)
        except (UserCodeError, ResultSchemaError, MemoryLimitError):
            raise
        except Exception as error:
            raise UserCodeError(
                f"{self.user.label} raised {type(error).__name__} in __init__: {error}", user_traceback(error)
            ) from None

    def _prepare(self) -> None:
        if not self._ready:
            self.user.register_source()
            self._ready = True

    @property
    def _fn(self) -> Callable[..., Any]:
        return self._instance if self.user.is_class else self.user.fn

    def run(self, data: pa.Table | pa.RecordBatch) -> pa.Table:
        self.instantiate()
        table = pa.Table.from_batches([data]) if isinstance(data, pa.RecordBatch) else data
        if self.input_names is not None and table.column_names != self.input_names:
            table = table.rename_columns(self.input_names)
        kind = self.user.kind
        try:
            with memory_cap(self.memory_limit_mb, self.user.label, self.memory_limit_option), job_environment(self.env):
                # Complete offsets: an arrow function may hand back Spark's own buffers, which Ray's
                # serializer cannot always take (convert.with_complete_offsets).
                return with_complete_offsets(self._run_kind(kind, table))
        except (UserCodeError, ResultSchemaError, MemoryLimitError):
            raise
        except Exception as error:  # the user's own failure: keep their traceback, not ours
            raise UserCodeError(
                f"{self.user.label} raised {type(error).__name__}: {error}", user_traceback(error)
            ) from None

    def _run_kind(self, kind: str, table: pa.Table) -> pa.Table:
        if kind == "row":
            return self._run_rows(self._each_row, table)
        if self.batch_size is not None:
            return pa.concat_tables([self._run_batch(kind, piece) for piece in _pieces(table, self.batch_size)])
        return self._run_batch(kind, table)

    def _run_batch(self, kind: str, table: pa.Table) -> pa.Table:
        if kind == "rows":
            return self._run_rows(self._whole_shard, table)
        if kind == "arrow":
            return self._run_arrow(table)
        return self._run_pandas(table)

    def _each_row(self, rows: Iterable[dict[str, Any]]) -> Iterator[Any]:
        fn = self._fn
        for row in rows:
            result = fn(row)
            if isinstance(result, (dict, tuple)):
                yield result
            elif result is None:
                continue
            elif isinstance(result, (str, bytes, bytearray)) or not hasattr(result, "__iter__"):
                # A string is iterable, but its characters are not rows; say what came back, not "'i' (str)".
                raise ResultSchemaError(
                    f"{self.user.label} returned {_shown(result)} ({type(result).__name__}) for a row; "
                    "return a dict, a tuple, None, or an iterable of those"
                )
            else:
                yield from result

    def _whole_shard(self, rows: Iterable[dict[str, Any]]) -> Iterable[Any]:
        produced = self._fn(iter(rows))
        if produced is None:
            return ()
        if isinstance(produced, (str, bytes, bytearray, dict)) or not hasattr(produced, "__iter__"):
            raise ResultSchemaError(
                f"{self.user.label} (kind='rows') must return an iterable of rows (a generator, or a list of "
                f"dicts or tuples), got {_shown(produced)} ({type(produced).__name__})"
            )
        return produced

    def _run_rows(self, produce: Callable[[Iterable[dict[str, Any]]], Iterable[Any]], table: pa.Table) -> pa.Table:
        """Rows in and out a chunk at a time: a shard as Python dicts is ~50x its Arrow size.

        Keys that are the input's columns may be left out of the schema (a row returned whole);
        any other key the schema lacks is an error (``rows_to_batch``).
        """
        output: list[pa.RecordBatch] = []
        chunk: list[Any] = []
        inputs = table.column_names
        for row in produce(rows_of(table)):
            if row is not None:
                chunk.append(row)
                if len(chunk) >= ROWS_PER_CHUNK:
                    output.append(rows_to_batch(chunk, self.schema, self.user.label, inputs))
                    chunk = []
        if chunk or not output:
            output.append(rows_to_batch(chunk, self.schema, self.user.label, inputs))
        return pa.Table.from_batches(output)

    def _run_arrow(self, table: pa.Table) -> pa.Table:
        # One call per incoming batch, as Spark's mapInArrow does: combining the
        # chunks first would copy the whole shard.
        batches = table.to_batches() or [pa.RecordBatch.from_pylist([], schema=table.schema)]
        results = []
        for batch in batches:
            result = self._fn(batch)
            if not isinstance(result, (pa.RecordBatch, pa.Table)):
                raise ResultSchemaError(
                    f"{self.user.label} must return a pyarrow RecordBatch or Table, got {type(result).__name__}"
                )
            results.append(conform_table(result, self.schema, self.user.label))
        return pa.concat_tables(results)

    def _run_pandas(self, table: pa.Table) -> pa.Table:
        return pandas_to_table(self._fn(to_pandas(table)), self.schema, self.user.label)


def _pieces(table: pa.Table, size: int) -> Iterator[pa.Table]:
    """``table`` in pieces of ``size`` rows (the last may be shorter), each one chunk per column, so that
    an arrow function gets one RecordBatch of exactly ``size`` rows (a copy only where a piece spans chunks)."""
    if table.num_rows == 0:
        yield table
        return
    for start in range(0, table.num_rows, size):
        yield table.slice(start, size).combine_chunks()


def _shown(value: Any, limit: int = 200) -> str:
    """``repr(value)``, cut to ``limit`` characters: an error names the value, it need not hold 50 MB of it."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"
