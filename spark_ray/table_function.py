"""``ray_transform`` as a Spark SQL table function, for people who write SQL.

After ``register(spark)``::

    SELECT * FROM ray_transform(TABLE(t), '<code>', '<schema>'[, '<options>'])

runs ``<code>`` (a pyjava-style code string, as ``ray_transform`` takes) over
table ``t`` on Ray and returns rows of ``<schema>`` (``st(...)``, JSON or DDL).
``<options>`` are ``ray_transform`` options as ``k=v;k=v`` (Byzer names work:
``runIn=driver;num_gpus=1``) or a JSON object.

How it runs, and why:

* ``analyze`` runs in a Python process the JVM starts on the driver, where no
  SparkSession exists; it parses the schema with spark_ray's pure-Python
  parser, checks the options and runs the code string once to see that it
  declares a function, so a mistake fails at analysis rather than in a task.
* ``eval`` runs in Spark's Python workers, once per input row. It buffers
  rows into Arrow batches of ``ROW_BATCH_ROWS`` and pushes them into the
  call's pipeline, the same as every door's (``pipeline.ShardFlow.push``):
  shards, a window of Ray tasks (or the actor pool of a callable class, opened
  from the first partition with the driver's pool registry, so a class loads
  once per actor here too), results in order. Reading rows overlaps the Ray
  work, and ``terminate`` drains the window at the end of the partition.
  Memory stays bounded by a few shards per partition.
* ``runIn=executor`` (the default) gives one function instance per input
  partition, like ``ray_transform``'s executor path. ``runIn=driver`` asks
  Spark for a single partition, so one instance streams the whole table to
  Ray, which is the nearest a table function comes to the driver path.
* The Ray to use is fixed when ``register`` runs: it resolves the session and
  Spark settings then (starting the embedded Ray unless ``pythonMode=python``)
  and bakes them into the function. Register again after changing them; a
  ``rayAddress=...`` option points a single query elsewhere.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from pyspark.sql import SparkSession
from pyspark.sql.functions import udtf
from pyspark.sql.types import StructType
from pyspark.sql.udtf import UserDefinedTableFunction

from .call_plan import build_program, check_user_options, plan_runner, ray_cpus, shard_flow, window_size
from .cluster import RaySpec, ensure_driver_ray, query_ray_spec
from .code_string import user_function
from .conf import RayTransformConf, canonical_name, resolve_conf
from .convert import has_map
from .doors import SQL, check_door
from .errors import ConfigError, InternalError, reported_first
from .jobs import new_job_id
from .pipeline import ShardStream
from .schema import parse_schema, to_arrow_schema
from .spark_compat import HAS_UDTF_ANALYZE, AnalyzeArgument, AnalyzeResult, require, row_type_of
from .spark_session_kind import checked_table_function, kind_of

__all__ = ["FUNCTION_NAME", "parse_options", "register"]

FUNCTION_NAME = "ray_transform"

# The row protocol's rows go to Arrow this many at a time (Spark's own Arrow batch size), and its shards
# stop at ROW_SHARD_ROWS: Spark hands a Python UDTF about a row per 8 us, so a shard of 50,000 rows takes
# 0.4 s to gather, and the Ray work on it (a per-row function: about 1 us a row) overlaps the next one.
ROW_BATCH_ROWS = 10_000
ROW_SHARD_ROWS = 50_000
# Result rows that leave per eval call, and the most that may wait (see PacedRows).
ROWS_PER_EVAL = 16
MAX_WAITING_ROWS = 4 * ROW_SHARD_ROWS


def parse_options(text: str | None) -> dict[str, str]:
    """The options argument: ``k=v;k=v`` or a JSON object, keyed by conf field name.

    Raises:
        ConfigError: a malformed pair, or an unknown key (with a did-you-mean).

    Example:
        >>> parse_options("runIn=driver; num_gpus=1")
        {'run_in': 'driver', 'num_gpus': '1'}
    """
    if text is None or not text.strip():
        return {}
    if text.lstrip().startswith("{"):
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"the options argument is not valid JSON: {error}") from None
        if not isinstance(loaded, dict):
            raise ConfigError("the options argument must be a JSON object or k=v;k=v pairs")
        pairs = [(str(key), value if isinstance(value, str) else json.dumps(value)) for key, value in loaded.items()]
    else:
        pairs = []
        for item in text.replace("\n", ";").split(";"):
            if not item.strip():
                continue
            key, equals, value = item.partition("=")
            if not equals or not key.strip():
                raise ConfigError(f"the options argument takes k=v pairs separated by ';', got {item.strip()!r}")
            pairs.append((key.strip(), value.strip()))
    return {canonical_name(key): value for key, value in pairs}


@dataclass(frozen=True)
class Registration:
    """What ``register`` fixes for every query: the session's settings then, and the driver's Ray.

    Attributes:
        settings: the resolved options at registration (session and Spark conf), the queries' defaults.
        ray_spec: the Ray the function's tasks join (None: python_mode="python").
        registry: (name, namespace) of the driver's actor pool registry: a class's pool belongs to the
            driver, never to the Spark worker that opens it.
        slots, ray_cpus: Spark's task slots and the Ray cluster's CPUs, for the window's default.
    """

    settings: dict[str, Any] = field(default_factory=dict)
    ray_spec: RaySpec | None = None
    registry: tuple[str, str] | None = None
    slots: int = 2
    ray_cpus: float = 2.0


@dataclass
class _Plan(AnalyzeResult):
    """What ``analyze`` decided, handed by Spark to every instance of the function.

    Attributes:
        code: the code string.
        input_schema: the TABLE argument's schema (rows arrive as Python values).
        settings: the query's own options (the registration's settings are their defaults).
        job_id: one per query, shared by its partitions (Ray workers cache the program by it).
    """

    code: str = ""
    input_schema: StructType = field(default_factory=StructType)
    settings: dict[str, Any] = field(default_factory=dict)
    job_id: str = ""


def _constant_string(argument: AnalyzeArgument | None, what: str, required: bool) -> str | None:
    if argument is None:
        if required:
            raise ConfigError(f"ray_transform needs {what}")
        return None
    if argument.isTable or not argument.isConstantExpression:
        raise ConfigError(f"{what} must be a constant string: a literal or a :parameter of spark.sql(..., args=...)")
    if argument.value is None:
        if required:
            raise ConfigError(f"{what} cannot be NULL")
        return None
    if not isinstance(argument.value, str):
        raise ConfigError(f"{what} must be a string, got {type(argument.value).__name__}")
    return argument.value


def _analyze(
    base: dict[str, Any],
    table: AnalyzeArgument,
    code: AnalyzeArgument,
    schema: AnalyzeArgument | None,
    options: AnalyzeArgument | None,
) -> _Plan:
    if table is None or not table.isTable:
        raise ConfigError("the first argument of ray_transform must be a table: ray_transform(TABLE(t), ...)")
    code_text = _constant_string(code, "the code argument", required=True)
    if code_text is None:
        raise InternalError("a required argument came back as None")
    query_options = parse_options(_constant_string(options, "the options argument", required=False))
    check_door(query_options, SQL)
    conf = resolve_conf(None, query_options, base=base)
    if conf.mode != "data":
        raise ConfigError(f"the ray_transform table function runs dataMode=data only; got {conf.mode!r}")
    schema_text = _constant_string(schema, "the schema argument", required=False) or conf.schema
    if not schema_text:
        raise ConfigError("no output schema: pass it as the third argument, or set the schema option for the session")
    struct = parse_schema(schema_text)
    user, conf = user_function(code_text, conf)  # fail now, not in a task
    check_user_options(user, conf)
    if not isinstance(table.dataType, StructType):
        raise InternalError(f"Spark described the TABLE argument as {table.dataType!r}, not a struct")
    return _Plan(
        schema=struct,
        withSinglePartition=conf.run_in == "driver",
        code=code_text,
        input_schema=table.dataType,
        settings=query_options,
        job_id=new_job_id(),
    )


class RowBatcher:
    """Spark's rows (tuples in schema order) into Arrow batches, and Arrow results back into rows.

    The row protocol already costs a Python object per value; this adds as
    little as it can on top. Rows go to Arrow in one call, as the values of a
    struct array (a pyspark ``Row`` is a tuple in schema order); results come
    back column by column, asking Arrow for map dicts only where there are
    maps (that option costs several times the conversion on every column).
    """

    def __init__(self, input_schema: pa.Schema | None, rows_per_batch: int) -> None:
        self.row_type = pa.struct(list(input_schema)) if input_schema is not None else None
        self.rows_per_batch = rows_per_batch
        self.rows: list[tuple[Any, ...]] = []

    def add(self, row: tuple[Any, ...]) -> pa.RecordBatch | None:
        self.rows.append(row)
        return self.take() if len(self.rows) >= self.rows_per_batch else None

    def take(self) -> pa.RecordBatch | None:
        if not self.rows:
            return None
        rows, self.rows = self.rows, []
        # No declared schema (the row protocol without analyze): the types are read from the values.
        row_type = self.row_type if self.row_type is not None else row_type_of(rows)
        return pa.RecordBatch.from_struct_array(pa.array(rows, type=row_type))

    @staticmethod
    def rows_of(tables: Iterable[pa.Table]) -> Iterator[tuple[Any, ...]]:
        for table in tables:
            columns = [
                column.to_pylist(maps_as_pydicts="strict" if has_map(column.type) else None) for column in table.columns
            ]
            yield from zip(*columns)


class PacedRows:
    """Result rows waiting to leave a row-protocol table function, a few per ``eval`` call.

    Spark's JVM reads what each ``eval`` call yields as one pickle, with a memo
    map that keeps the capacity of the biggest pickle it has read and is
    cleared on every read after. One call yielding a shard's 50,000 rows made
    every later call cost a scan of that map: 1M rows took 5x the time of the
    same work yielded at ``terminate``. So rows leave ``ROWS_PER_EVAL`` per call
    (more than the one row a call takes in, so they keep up with an identity),
    unless more than ``MAX_WAITING_ROWS`` wait (a function that returns many
    rows per row): then the excess leaves at once, and memory stays bounded.
    """

    def __init__(self) -> None:
        self.rows: collections.deque[tuple[Any, ...]] = collections.deque()

    def __len__(self) -> int:
        return len(self.rows)

    def extend(self, rows: Iterable[tuple[Any, ...]]) -> None:
        self.rows.extend(rows)

    def release(self) -> Iterator[tuple[Any, ...]]:
        rows = self.rows
        count = min(len(rows), ROWS_PER_EVAL) + max(0, len(rows) - MAX_WAITING_ROWS)
        for _ in range(count):
            yield rows.popleft()

    def release_all(self) -> Iterator[tuple[Any, ...]]:
        rows = self.rows
        while rows:
            yield rows.popleft()


def query_stream(
    conf: RayTransformConf, code: str, output: StructType, job_id: str, registration: Registration
) -> ShardStream:
    """One partition's pipeline in a Spark worker: the query's program, runner and window, as every door
    makes them (``call_plan``), pushed into a row at a time (shards stop at ``ROW_SHARD_ROWS``)."""
    from .cluster import ensure_worker_ray

    user, conf = user_function(code, conf)
    ray_spec = query_ray_spec(conf, registration.ray_spec) if conf.uses_ray else None
    if ray_spec is not None:
        ensure_worker_ray(ray_spec)  # first: Ray reads its auth settings when it is imported
    if user.is_class and ray_spec is not None and registration.registry is None:
        raise ConfigError(
            f"{user.label} is a callable class, which runs in an actor pool the driver owns; this function was "
            "registered without Ray (python_mode='python'): register it again with Ray"
        )
    blob = build_program(user, output, conf)
    runner = plan_runner(user, blob, conf, ray_spec, job_id, registry=registration.registry)
    window = window_size(conf, registration.slots, registration.ray_cpus, runner.pool)
    flow = shard_flow(conf, window, ray=ray_spec is not None)
    return flow.push(runner.runner(join_ray=False), max_rows=ROW_SHARD_ROWS)  # joined above


class _Shards:
    """One partition of the generic function: rows in, rows out, through the query's ShardStream.

    ``pending`` is the batcher's row list itself, so that the handler's
    ``eval``, called once per row, appends to it without a call of its own.
    """

    def __init__(self, plan: _Plan, registration: Registration) -> None:
        conf = resolve_conf(None, plan.settings, base=registration.settings)
        self.stream = query_stream(conf, plan.code, plan.schema, plan.job_id, registration)
        self.batcher = RowBatcher(to_arrow_schema(plan.input_schema), min(ROW_BATCH_ROWS, conf.batch_rows))
        self.rows_per_batch = self.batcher.rows_per_batch

    @property
    def pending(self) -> list[tuple[Any, ...]]:
        return self.batcher.rows

    def flush(self) -> Iterator[tuple[Any, ...]]:
        """The batch gathered so far into the stream, and whatever results that releases."""
        batch = self.batcher.take()
        return iter(()) if batch is None else RowBatcher.rows_of(self.stream.push(batch))

    def finish(self) -> Iterator[tuple[Any, ...]]:
        yield from self.flush()
        yield from RowBatcher.rows_of(self.stream.finish())


def _table_function_class(registration: Registration) -> type:
    """The UDTF handler class, with the registration baked in by closure.

    A closure rather than class attributes: ``analyze`` is a static method that
    Spark calls in another process, and cloudpickle carries closures along.
    """
    base = registration.settings

    class RayTransformTableFunction:
        def __init__(self, analyze_result: _Plan) -> None:
            self.plan = analyze_result
            self.shards: _Shards | None = None
            self.pending: list[tuple[Any, ...]] = []
            self.rows_per_batch = 0
            self.waiting = PacedRows()

        @staticmethod
        def analyze(
            table: AnalyzeArgument,
            code: AnalyzeArgument,
            schema: AnalyzeArgument | None = None,
            options: AnalyzeArgument | None = None,
        ) -> AnalyzeResult:
            return _analyze(base, table, code, schema, options)

        def eval(
            self, row: Any, code: str, schema: str | None = None, options: str | None = None
        ) -> Iterator[tuple[Any, ...]]:
            # Called once per row: as little work as possible until a batch is full. The row waits as a
            # plain tuple, which Python's garbage collector stops tracking; pyspark's Row (a tuple
            # subclass with a __dict__) stays tracked, and a batch of them waiting made every collection
            # walk them all: 1.76x the UDTF floor before, 1.21x after (BENCHMARKS.md, "Round 3").
            pending = self.pending
            pending.append(tuple(row))
            if len(pending) >= self.rows_per_batch:
                self._flush()
            if self.waiting:
                yield from self.waiting.release()

        def _flush(self) -> None:
            with reported_first():
                if self.shards is None:
                    self.shards = _Shards(self.plan, registration)
                    self.shards.pending.extend(self.pending)
                    self.pending, self.rows_per_batch = self.shards.pending, self.shards.rows_per_batch
                    if len(self.pending) < self.rows_per_batch:
                        return
                self.waiting.extend(self.shards.flush())
                self.pending = self.shards.pending  # flush started a new list

        def terminate(self) -> Iterator[tuple[Any, ...]]:
            with reported_first():
                yield from self.waiting.release_all()
                if self.shards is None:
                    if not self.pending:
                        return
                    self.shards = _Shards(self.plan, registration)
                    self.shards.pending.extend(self.pending)
                yield from self.shards.finish()

    return RayTransformTableFunction


def register(spark: SparkSession, name: str = FUNCTION_NAME) -> UserDefinedTableFunction:
    """Register the ``ray_transform`` table function in ``spark``, so plain ``spark.sql`` can call it.

    The session and Spark settings in force now (``set_session_conf``,
    ``--conf spark.ray.*``) become the function's defaults; unless they say
    ``pythonMode=python``, the driver connects to Ray now (starting the
    embedded one if no address is set), and the function's tasks join it.

    Args:
        spark: the session to register in.
        name: the SQL name of the function.

    Returns:
        The registered function (callable from Python too).

    Raises:
        SparkVersionError: pyspark before 4.0, whose table functions have no ``analyze``.

    Example:
        register(spark)
        spark.sql("SELECT * FROM ray_transform(TABLE(t), :code, 'id long')", args={"code": code})
    """
    require(
        HAS_UDTF_ANALYZE,
        "the ray_transform SQL table function (its schema is a query argument, read by a table function's analyze)",
        instead="On this pyspark, register_function(spark, name, code, schema) registers a function with a fixed schema.",
    )
    conf = resolve_conf(spark, {}, door=SQL)
    ray_spec = ensure_driver_ray(conf) if conf.uses_ray else None
    registry = None
    if ray_spec is not None:
        from .actor_pool import driver_registry

        registry = driver_registry()
    registration = Registration(
        settings=conf.settings(),
        ray_spec=ray_spec,
        registry=registry,
        slots=kind_of(spark).default_parallelism(),
        ray_cpus=ray_cpus() if ray_spec is not None else 1.0,
    )
    handler = _table_function_class(registration)
    # The row protocol: Spark's Arrow protocol for Python UDTFs was 6x slower for this shape of work
    # (identity over 1M rows, 52 s against 8.8 s here; BENCHMARKS.md).
    function = checked_table_function(udtf(handler, useArrow=False), "pyspark's udtf()")
    spark.udtf.register(name, function)
    return function
