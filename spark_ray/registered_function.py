"""Named SQL table functions with a fixed schema, on Spark's vectorized table function protocol.

``register_function(spark, "tag_rows", code, "id long, tag string")`` makes
``SELECT * FROM tag_rows(TABLE(t))`` run ``code`` on Ray over ``t``. Unlike
the generic ``ray_transform`` table function, whose schema is an argument of
each query and so needs ``analyze`` (and with it Spark's row-at-a-time
protocol), a registered function knows its schema when it is registered. That
lets it use pyspark's vectorized ``arrow_udtf`` (pyspark 4.1+): Arrow batches in
and out, the same ``ShardStream`` as the other paths, no Python object per
value. ``arrow_udtf`` cannot have ``analyze`` yet (SPARK-53286), which is why
the generic function cannot use it. On a pyspark without ``arrow_udtf`` the
function falls back to the row protocol, with one warning.

Everything is fixed at registration: the code, the schema, the options and the
Ray to use (the driver connects now). Register again to change any of them.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from pyspark.sql import SparkSession
from pyspark.sql.types import StructType
from pyspark.sql.udtf import UserDefinedTableFunction

from .call_plan import build_program, plan_runner, ray_cpus, shard_flow, window_size
from .cluster import ensure_driver_ray
from .code_string import user_function
from .conf import door_options, resolve_conf
from .doors import REGISTERED
from .errors import ConfigError, reported_first
from .jobs import new_job_id
from .pipeline import RunnerPlan, ShardFlow, ShardStream
from .schema import parse_schema
from .spark_compat import arrow_udtf
from .spark_session_kind import checked_table_function, kind_of
from .table_function import ROW_BATCH_ROWS, ROW_SHARD_ROWS, PacedRows, RowBatcher


@dataclass(frozen=True)
class RegisteredFunction:
    """What one ``register_function`` call registered, for listings (a script's ``!show functions``).

    Attributes:
        name: the SQL name.
        schema: the output schema.
        code_label: how errors name the code ("function tag (<file>, line 3)").
        options: the options given at registration (not the resolved defaults).
        protocol: "arrow" (vectorized) or "rows" (the fallback).
    """

    name: str
    schema: StructType
    code_label: str
    options: dict[str, Any] = field(default_factory=dict)
    protocol: str = "arrow"


_REGISTERED: weakref.WeakKeyDictionary[Any, dict[str, RegisteredFunction]] = weakref.WeakKeyDictionary()
_WARNED_FALLBACK: list[bool] = []


def registered_functions(spark: SparkSession) -> list[RegisteredFunction]:
    """The functions ``register_function`` registered in this session, by name."""
    return [entry for _, entry in sorted(_REGISTERED.get(spark, {}).items())]


# register_function's parameters that are not option knobs.
_NOT_KNOBS = ("spark", "name", "code", "schema", "ray_remote_args")


def register_function(
    spark: SparkSession,
    name: str,
    code: Callable[..., Any] | str,
    schema: str | StructType | None = None,
    *,
    kind: str | None = None,
    batch_format: str | None = None,
    batch_size: int | None = None,
    concurrency: int | tuple[int, int] | None = None,
    tasks_per_partition: int | None = None,
    fn_constructor_args: tuple[Any, ...] | list[Any] | None = None,
    fn_constructor_kwargs: dict[str, Any] | None = None,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    memory: int | None = None,
    resources: dict[str, float] | None = None,
    max_retries: int | None = None,
    py_executor_memory: int | None = None,
    runtime_env: dict[str, Any] | None = None,
    ray_address: str | None = None,
    python_mode: str | None = None,
    batch_bytes: int | None = None,
    batch_rows: int | None = None,
    **ray_remote_args: Any,
) -> UserDefinedTableFunction:
    """Register ``code`` as the SQL table function ``name``: ``SELECT * FROM name(TABLE(t))``.

    Args:
        spark: the session to register in.
        name: the SQL name of the function.
        code: a callable (see ``kind``), a callable class (an actor pool: ``__init__`` once per
            actor, with ``fn_constructor_args`` / ``fn_constructor_kwargs``), or a pyjava-style
            code string, as ``ray_transform`` takes.
        schema: the output schema (any form ``ray_transform`` takes); None takes the session's
            ``schema`` option.
        kind ... batch_rows: the options of ``ray_transform``, with the same meaning, fixed for
            every query.
        **ray_remote_args: any other ``ray_transform`` option, or option of ``ray.remote``.
            ``mode="model"`` and ``run_in="driver"`` are refused: use ``ray_transform`` for those.

    Returns:
        The registered function (callable from Python too: ``fn(df.asTable())``).

    Raises:
        ConfigError: an option that cannot apply to a table function, or no schema was given.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigError(f"a registered function needs a SQL name made of letters, digits and _, got {name!r}")
    arguments = dict(locals())
    knobs = {key: value for key, value in arguments.items() if key not in _NOT_KNOBS}
    options = door_options(knobs, ray_remote_args)
    conf = resolve_conf(spark, options, door=REGISTERED)
    if conf.mode != "data":
        raise ConfigError(f"registered functions run dataMode=data only; got mode={conf.mode!r} (use ray_transform)")
    if conf.run_in != "executor":
        raise ConfigError(
            "registered functions run in the executors; run_in='driver' is for ray_transform(df, ...) "
            "or the generic ray_transform table function"
        )
    if schema is None:
        if conf.schema is None:
            raise ConfigError(f"register_function({name!r}, ...) needs a schema, or the session's schema option")
        schema = conf.schema
    struct = parse_schema(schema)
    user, conf = user_function(code, conf)
    blob = build_program(user, struct, conf)
    ray_spec = ensure_driver_ray(conf) if conf.uses_ray else None
    runner = plan_runner(user, blob, conf, ray_spec, new_job_id(), start_pool=False)  # queries start it
    slots = kind_of(spark).default_parallelism()
    window = window_size(conf, slots, ray_cpus() if ray_spec is not None else 1.0, runner.pool)
    flow = shard_flow(conf, window, ray=ray_spec is not None)
    function, protocol = _vectorized(runner, flow, struct)
    spark.udtf.register(name, function)
    entry = RegisteredFunction(name, struct, user.label, options, protocol)
    _REGISTERED.setdefault(spark, {})[name] = entry
    return function


def _vectorized(runner: RunnerPlan, flow: ShardFlow, struct: StructType) -> tuple[UserDefinedTableFunction, str]:
    """The arrow_udtf of this function, or the row-protocol fallback on an older pyspark."""
    vectorized = arrow_udtf()
    if vectorized is None:
        if not _WARNED_FALLBACK:
            _WARNED_FALLBACK.append(True)
            warnings.warn(
                "this pyspark has no arrow_udtf (pyspark 4.1+): registered functions use the slower row protocol",
                stacklevel=3,
            )
        from pyspark.sql.functions import udtf

        function = udtf(_row_handler(runner, flow), returnType=struct, useArrow=False)
        protocol = "rows"
    else:
        function = vectorized(_arrow_handler(runner, flow), returnType=struct)
        protocol = "arrow"
    return checked_table_function(function, f"pyspark's {'arrow_udtf' if protocol == 'arrow' else 'udtf'}()"), protocol


def _arrow_handler(runner: RunnerPlan, flow: ShardFlow) -> type:
    """The handler class, its pipeline baked in by closure (cloudpickle ships it to the workers)."""

    class RegisteredArrowFunction:
        def __init__(self) -> None:
            self.stream: ShardStream | None = None

        def eval(self, batch: pa.RecordBatch) -> Iterator[pa.Table]:
            with reported_first():
                if self.stream is None:
                    self.stream = flow.push(runner.runner())
                yield from self.stream.push(batch)

        def terminate(self) -> Iterator[pa.Table]:
            with reported_first():
                if self.stream is not None:
                    yield from self.stream.finish()

    return RegisteredArrowFunction


def _row_handler(runner: RunnerPlan, flow: ShardFlow) -> type:
    """The fallback handler: rows in, rows out, the same pipeline in between."""

    class RegisteredRowFunction:
        def __init__(self) -> None:
            self.stream: ShardStream | None = None
            self.batcher: RowBatcher | None = None
            self.waiting = PacedRows()  # results leave a few per call: see PacedRows for the JVM's reason

        def eval(self, row: Any) -> Iterator[tuple[Any, ...]]:
            with reported_first():
                if self.stream is None or self.batcher is None:
                    self.stream = flow.push(runner.runner(), max_rows=ROW_SHARD_ROWS)
                    # Without analyze the input's Spark types are unknown here: Arrow infers them from the values.
                    self.batcher = RowBatcher(None, min(ROW_BATCH_ROWS, flow.max_rows))
                batch = self.batcher.add(row)
                if batch is not None:
                    self.waiting.extend(RowBatcher.rows_of(self.stream.push(batch)))
                if self.waiting:
                    yield from self.waiting.release()

        def terminate(self) -> Iterator[tuple[Any, ...]]:
            with reported_first():
                yield from self.waiting.release_all()
                if self.stream is None or self.batcher is None:
                    return
                last = self.batcher.take()
                if last is not None:
                    yield from RowBatcher.rows_of(self.stream.push(last))
                yield from RowBatcher.rows_of(self.stream.finish())

    return RegisteredRowFunction
