"""The user's function, and running it over one shard of the table.

A ``ShardProgram`` is what a Ray task (or a Spark Python worker, without Ray)
executes: it takes one shard as Arrow data, calls the user's function the way
its ``kind`` says, and returns Arrow data of the output schema. It is pickled
once per job and cached by job id where it runs.
"""

from __future__ import annotations

import contextlib
import linecache
import os
import sys
import sysconfig
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from .convert import conform_table, pandas_to_table, rows_to_batch
from .errors import ResultSchemaError, UserCodeError

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


@dataclass
class UserFunction:
    """A user function with what we need to report on it.

    Attributes:
        fn: the callable itself.
        kind: "row", "rows", "arrow" or "pandas".
        label: how errors name it, e.g. "function echo (<ray_transform code>, line 7)".
        source, filename: the code string it came from, if any, so that
            tracebacks in remote processes can show its lines.
    """

    fn: Callable[..., Any]
    kind: str
    label: str
    source: str | None = None
    filename: str | None = None

    @classmethod
    def from_callable(cls, fn: Callable[..., Any], kind: str) -> UserFunction:
        if not callable(fn):
            raise TypeError(f"code must be a callable or a string of Python source, got {type(fn).__name__}")
        return cls(fn=fn, kind=kind, label=describe_callable(fn))

    def register_source(self) -> None:
        if self.source is not None and self.filename is not None:
            register_source(self.filename, self.source)


def register_source(filename: str, source: str) -> None:
    """Let traceback and linecache show the lines of a code string in this process."""
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)


def describe_callable(fn: Callable[..., Any]) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    code = getattr(fn, "__code__", None)
    if code is None:
        return f"function {name}"
    return f"function {name} ({code.co_filename}, line {code.co_firstlineno})"


def user_traceback(error: BaseException) -> str:
    """The traceback of ``error`` without our own frames, ending with the error line."""
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if not os.path.abspath(frame.filename).startswith(_PACKAGE_DIR + os.sep)
    ]
    text = "Traceback (most recent call last):\n" + "".join(traceback.format_list(frames))
    return text + "".join(traceback.format_exception_only(type(error), error))


def _is_users_own_module(module_name: str) -> bool:
    """A module imported from the user's files rather than an installed package.

    Ray and Spark workers may not have those files on their path, so
    functions from them must travel by value, like functions from __main__.
    """
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    if module is None or path is None or module_name.split(".")[0] in ("spark_ray", "sql_ext"):
        return False
    installed = {sysconfig.get_paths()[key] for key in ("purelib", "platlib", "stdlib", "platstdlib")}
    return not any(os.path.abspath(path).startswith(os.path.abspath(root) + os.sep) for root in installed)


def pickle_with_user_module(obj: Any, fn: Any) -> bytes:
    """cloudpickle ``obj``, taking the module that defines ``fn`` by value if it is the user's own."""
    import cloudpickle

    module_name = getattr(fn, "__module__", None) or ""
    by_value = _is_users_own_module(module_name)
    if by_value:
        cloudpickle.register_pickle_by_value(sys.modules[module_name])
    try:
        return cloudpickle.dumps(obj)
    finally:
        if by_value:
            cloudpickle.unregister_pickle_by_value(sys.modules[module_name])


# Rows converted to and from Python objects at a time, inside one shard.
ROWS_PER_CHUNK = 50_000


def rows_of(table: pa.Table) -> Iterator[dict[str, Any]]:
    """A shard's rows as dicts, one Arrow batch at a time; maps become dicts too.

    maps_as_pydicts costs about 2.5x on every column, so it is asked for only
    when the schema has a map somewhere.
    """
    maps = "strict" if _has_map(table.schema) else None
    for batch in table.to_batches():
        yield from batch.to_pylist(maps_as_pydicts=maps)


def _has_map(schema: pa.Schema) -> bool:
    def has_map(t: pa.DataType) -> bool:
        if pa.types.is_map(t):
            return True
        if pa.types.is_struct(t):
            return any(has_map(f.type) for f in t)
        if pa.types.is_list(t) or pa.types.is_large_list(t):
            return has_map(t.value_type)
        return False

    return any(has_map(f.type) for f in schema)


@contextlib.contextmanager
def job_environment(env: dict[str, str]) -> Iterator[None]:
    """Set a job's environment variables around its code, then put the old ones back.

    Ray and Spark reuse worker processes across jobs; variables left behind
    would leak into the next job (Byzer's stale-settings bug).
    """
    if not env:
        yield
        return
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass
class ShardProgram:
    """One job's work on one shard: the user function plus the output schema."""

    user: UserFunction
    schema: pa.Schema
    env: dict[str, str] = field(default_factory=dict)  # PYTHON_ENV's exports, for the user code
    _ready: bool = field(default=False, repr=False, compare=False)

    def run(self, data: pa.Table | pa.RecordBatch) -> pa.Table:
        if not self._ready:
            self.user.register_source()
            self._ready = True
        table = pa.Table.from_batches([data]) if isinstance(data, pa.RecordBatch) else data
        kind = self.user.kind
        try:
            with job_environment(self.env):
                return self._run_kind(kind, table)
        except (UserCodeError, ResultSchemaError):
            raise
        except Exception as error:  # the user's own failure: keep their traceback, not ours
            raise UserCodeError(
                f"{self.user.label} raised {type(error).__name__}: {error}", user_traceback(error)
            ) from None

    def _run_kind(self, kind: str, table: pa.Table) -> pa.Table:
        if kind == "row":
            return self._run_rows(self._each_row, table)
        if kind == "rows":
            return self._run_rows(self._whole_shard, table)
        if kind == "arrow":
            return self._run_arrow(table)
        return self._run_pandas(table)

    def _each_row(self, rows: Iterable[dict[str, Any]]) -> Iterator[Any]:
        fn = self.user.fn
        for row in rows:
            result = fn(row)
            if isinstance(result, (dict, tuple)):
                yield result
            elif result is not None:
                yield from result

    def _whole_shard(self, rows: Iterable[dict[str, Any]]) -> Iterable[Any]:
        produced = self.user.fn(iter(rows))
        return () if produced is None else produced

    def _run_rows(self, produce: Callable[[Iterable[dict[str, Any]]], Iterable[Any]], table: pa.Table) -> pa.Table:
        """Rows in and out a chunk at a time: a shard as Python dicts is ~50x its Arrow size."""
        output: list[pa.RecordBatch] = []
        chunk: list[Any] = []
        for row in produce(rows_of(table)):
            if row is not None:
                chunk.append(row)
                if len(chunk) >= ROWS_PER_CHUNK:
                    output.append(rows_to_batch(chunk, self.schema, self.user.label))
                    chunk = []
        if chunk or not output:
            output.append(rows_to_batch(chunk, self.schema, self.user.label))
        return pa.Table.from_batches(output)

    def _run_arrow(self, table: pa.Table) -> pa.Table:
        # One call per incoming batch, as Spark's mapInArrow does: combining the
        # chunks first would copy the whole shard.
        batches = table.to_batches() or [pa.RecordBatch.from_pylist([], schema=table.schema)]
        results = []
        for batch in batches:
            result = self.user.fn(batch)
            if not isinstance(result, (pa.RecordBatch, pa.Table)):
                raise ResultSchemaError(
                    f"{self.user.label} must return a pyarrow RecordBatch or Table, got {type(result).__name__}"
                )
            results.append(conform_table(result, self.schema, self.user.label))
        return pa.concat_tables(results)

    def _run_pandas(self, table: pa.Table) -> pa.Table:
        return pandas_to_table(self.user.fn(table.to_pandas()), self.schema, self.user.label)
