"""mode="model": the code runs once, reads any shard, and sets the output.

The table is cut into shards, spilled to Arrow files in a scratch dir and
served by a ShardServer for the life of the program; the code (a pyjava code
string, or a callable taking the context) may read them itself, hand them to
Ray tasks or actors, or take the whole table as a Ray Dataset. What it sets
with ``set_output`` / ``build_result`` (or returns) becomes the output table.

It runs on the driver (run_in="driver", the table streamed there with
``toLocalIterator``, one partition at a time) or in one Spark task
(run_in="executor"); either way the server and the files are gone when it
ends, and the output is locally checkpointed so the program runs once.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType

from . import cluster
from .arrow_files import write_shard_file
from .checkpoint import checkpoint_surviving_an_executor
from .code_string import apply_code_address, code_conf, code_filename, execute_code, requested_address_in
from .conf import RayTransformConf
from .context import PythonContext
from .convert import spark_safe_input
from .data_server import server_host
from .environment import job_environment
from .errors import ResultSchemaError, UserCodeError, lead_worker_report, spark_ray_error_in
from .jobs import new_job_id, spark_job_group
from .pickling import pickle_with_user_module
from .runners import coalesce
from .schema import to_arrow_schema
from .shard_server import ShardServer, fetch_batches
from .spark_session_kind import kind_of
from .user_code import describe_callable, user_traceback


def run_model(df: DataFrame, struct: StructType, code: Callable[..., Any] | str, conf: RayTransformConf) -> DataFrame:
    """Run the model program once, on the driver or in one Spark task, and checkpoint its output."""
    if isinstance(code, str):
        conf = apply_code_address(requested_address_in(code), conf)
    elif not callable(code):
        raise TypeError(f"code must be a callable or a string of Python source, got {type(code).__name__}")
    ray_spec = cluster.ensure_driver_ray(conf) if conf.uses_ray else None
    if ray_spec is not None:
        from .actor_pool import make_way_for_a_new_call

        make_way_for_a_new_call()
    program = ModelProgram(
        code=code,
        schema=to_arrow_schema(struct),
        conf_strings=code_conf(conf),
        env=conf.env_vars(),
        server_host=conf.data_server_bind_host(),
        idle_timeout_s=conf.data_server_idle_timeout,
        max_bytes=conf.batch_bytes,
        max_rows=conf.batch_rows,
        spill_parent=conf.spill_dir,
    )
    input_schema = to_arrow_schema(df.schema)
    df, _ = spark_safe_input(df)  # the shards get their names back from input_schema (ModelProgram.run)
    spark = df.sparkSession
    description = f"spark-ray ray_transform[model] run_in={conf.run_in}"
    with spark_job_group(spark, conf, new_job_id(), description):
        if conf.run_in == "driver":
            batches = (b for table in stream_table(df, conf.batch_bytes, conf.batch_rows) for b in table.to_batches())
            return tables_to_dataframe(spark, enumerate(program.run(batches, input_schema)), struct, conf)
        blob = pickle_with_user_module(program, code)
        run_model_partition = model_partition_function(blob, input_schema, ray_spec)
        # Eager: the program runs once, now, in a single Spark task, not again on every action.
        model_output = df.coalesce(1).mapInArrow(run_model_partition, struct)
        try:
            return checkpoint_surviving_an_executor(model_output)
        except Exception as error:
            # Our own action: the caller gets the program's error as ours (as with run_in="driver"),
            # not Spark's PythonException around it. The Spark error stays reachable as __context__.
            found = spark_ray_error_in(error)
            if found is None:
                raise
            raise found from None


@dataclass
class ModelProgram:
    """One model-mode job: the code, the output schema and how to serve the table."""

    code: str | Callable[..., Any]
    schema: pa.Schema
    conf_strings: dict[str, str]
    env: dict[str, str] = field(default_factory=dict)
    server_host: str | None = None  # None: this node's address as Ray sees it
    idle_timeout_s: float = 300.0
    max_bytes: int = 32 << 20
    max_rows: int = 1_000_000
    spill_parent: str | None = None

    def run(self, batches: Iterable[pa.RecordBatch], input_schema: pa.Schema) -> list[pa.Table]:
        """Serve the batches as shards, run the code once, and return its output tables."""
        names = input_schema.names
        batches = (batch if batch.schema.names == names else batch.rename_columns(names) for batch in batches)
        with tempfile.TemporaryDirectory(prefix="spark-ray-shards-", dir=self.spill_parent) as shard_dir:
            with ShardServer(self._host(), self.idle_timeout_s) as server:
                shards = coalesce(batches, self.max_bytes, self.max_rows)
                handles = [
                    server.add_shard(index, write_shard_file(shard_dir, index, shard))
                    for index, shard in enumerate(shards)
                ]
                context = PythonContext(
                    self.conf_strings, shards=handles, schema=self.schema, input_schema=input_schema
                )
                with job_environment(self.env):
                    self._run_code(context)
        if not context.outputs:
            raise UserCodeError(
                "model-mode code set no output: call context.set_output([[pd.Series, ...]]) or "
                "context.build_result(rows), or return a pandas DataFrame or Arrow table from your function "
                f"({self._label()} did none of these)"
            )
        return context.outputs

    def _label(self) -> str:
        """How errors name the code: the code string by the file name its tracebacks show, else the callable."""
        if isinstance(self.code, str):
            return f"code string {code_filename(self.code)}"
        return describe_callable(self.code)

    def _run_code(self, context: PythonContext) -> None:
        if isinstance(self.code, str):
            execute_code(self.code, context)
            return
        try:
            result = self.code(context)
        except (UserCodeError, ResultSchemaError):
            raise
        except Exception as error:
            label = describe_callable(self.code)
            raise UserCodeError(f"{label} raised {type(error).__name__}: {error}", user_traceback(error)) from None
        if result is not None:
            context.set_output(result)

    def _host(self) -> str:
        if self.server_host:
            return self.server_host
        import ray

        return cluster.node_ip_address() if ray.is_initialized() else "127.0.0.1"


def model_partition_function(
    program_blob: bytes, input_schema: pa.Schema, ray_spec: cluster.RaySpec | None
) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The mapInArrow function that runs a model program inside one Spark task."""

    def run_model_partition(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import cloudpickle

        if ray_spec is not None:
            cluster.ensure_worker_ray(ray_spec)
        try:
            program: ModelProgram = cloudpickle.loads(program_blob)
            for table in program.run(batches, input_schema):
                yield from table.to_batches()
        except Exception as error:
            lead_worker_report(error)  # the driver rebuilds our error from the report's first line
            raise

    run_model_partition.__name__ = run_model_partition.__qualname__ = "ray_transform[model]"
    return run_model_partition


# --------------------------------------------------------------------------- the table to the driver

_IPC_COLUMN = "arrow_ipc"


def _to_ipc_chunks(max_bytes: int, max_rows: int) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """A mapInArrow function turning each partition into a few Arrow IPC blobs."""

    def to_ipc(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for table in coalesce(batches, max_bytes, max_rows):
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
            blob = sink.getvalue()
            offsets = pa.array([0, blob.size], pa.int32()).buffers()[1]
            column = pa.Array.from_buffers(pa.binary(), 1, [None, offsets, blob])  # no copy of the blob
            yield pa.RecordBatch.from_arrays([column], names=[_IPC_COLUMN])

    return to_ipc


def stream_table(df: DataFrame, max_bytes: int, max_rows: int) -> Iterator[pa.Table]:
    """The table's shards on the driver, one partition's worth in memory at a time."""
    chunks = df.mapInArrow(_to_ipc_chunks(max_bytes, max_rows), f"{_IPC_COLUMN} binary")
    for row in chunks.toLocalIterator(prefetchPartitions=True):
        yield pa.ipc.open_stream(pa.py_buffer(row[_IPC_COLUMN])).read_all()


# --------------------------------------------------------------------------- the output back to Spark


class SpillDirectory:
    """Result shards as Arrow files in the driver's local scratch dir, each with the key that orders
    the output; removed by cleanup()."""

    def __init__(self, parent: str | None) -> None:
        if parent:
            os.makedirs(parent, exist_ok=True)
        self.path = tempfile.mkdtemp(prefix="spark-ray-results-", dir=parent)
        self.written: list[tuple[Any, str]] = []

    @property
    def count(self) -> int:
        return len(self.written)

    def write(self, key: Any, table: pa.Table) -> None:
        self.written.append((key, write_shard_file(self.path, self.count, table)))

    def paths_in_order(self) -> list[str]:
        return [path for _, path in sorted(self.written, key=lambda item: item[0])]

    def cleanup(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _read_spilled(spark: SparkSession, spill: SpillDirectory, schema: StructType, conf: RayTransformConf) -> DataFrame:
    """Serve the spilled shards from the driver and have the executors read them back, in order, into a
    checkpoint, so the files can go. Over the network, never by path: executors on other hosts cannot
    read the driver's disk."""
    shard_paths = spill.paths_in_order()
    session = kind_of(spark)
    partitions = min(len(shard_paths), max(1, session.default_parallelism() * 2))
    host = server_host(conf, session.executors_on_this_host())
    with ShardServer(host, conf.data_server_idle_timeout) as server:
        handles = [server.add_shard(index, path) for index, path in enumerate(shard_paths)]

        def read_shards(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            for batch in batches:
                for index in batch.column(0).to_pylist():
                    yield from fetch_batches(handles[index])

        indices = spark.range(0, len(shard_paths), numPartitions=partitions)
        return checkpoint_surviving_an_executor(indices.mapInArrow(read_shards, schema))


def tables_to_dataframe(
    spark: SparkSession, keyed_tables: Iterable[tuple[Any, pa.Table]], schema: StructType, conf: RayTransformConf
) -> DataFrame:
    """Result tables, as they arrive, into a checkpointed DataFrame ordered by their keys."""
    spill = SpillDirectory(conf.spill_dir)
    try:
        for key, table in keyed_tables:
            if table.num_rows:
                spill.write(key, table)
        if spill.count == 0:
            return spark.createDataFrame([], schema)
        return _read_spilled(spark, spill, schema, conf)
    finally:
        spill.cleanup()
