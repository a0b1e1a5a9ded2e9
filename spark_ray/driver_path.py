"""run_in="driver": the driver hands the table to Ray and rebuilds a DataFrame.

Data mode: every executor uploads its partitions, in parallel, to a data
server (Arrow Flight) on the driver, which writes them to disk as they arrive;
each shard goes to a Ray task as soon as it is complete, the task reads it
from the server, and the result is spilled to an Arrow file. Spark reads the
result files back, in input order, into a locally checkpointed DataFrame, and
every file is deleted. Driver memory holds only the shards in flight.

Model mode streams the table with ``toLocalIterator`` (one partition at a
time), since its program needs every shard served before it starts.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pyarrow as pa
from pyspark import InheritableThread
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType

from .arrow_files import read_shard_file, write_shard_file
from .data_server import DataServer, ShardHandle
from .runners import BatchRunner, coalesce

_IPC_COLUMN = "arrow_ipc"


def _to_ipc_chunks(max_bytes: int, max_rows: int):
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
    """The table's shards on the driver, one partition's worth in memory at a time (model mode)."""
    chunks = df.mapInArrow(_to_ipc_chunks(max_bytes, max_rows), f"{_IPC_COLUMN} binary")
    for row in chunks.toLocalIterator(prefetchPartitions=True):
        yield pa.ipc.open_stream(pa.py_buffer(row[_IPC_COLUMN])).read_all()


class SpillDirectory:
    """Result shards as Arrow files, each with the key that orders the output; removed by cleanup()."""

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


def _read_spilled(spark: SparkSession, spill: SpillDirectory, schema: StructType) -> DataFrame:
    """Read the spilled shards back in order and checkpoint them, so the files can go."""
    shard_paths = spill.paths_in_order()
    partitions = min(len(shard_paths), max(1, spark.sparkContext.defaultParallelism * 2))

    def read_shards(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for index in batch.column(0).to_pylist():
                yield from read_shard_file(shard_paths[index]).to_batches()

    indices = spark.range(0, len(shard_paths), numPartitions=partitions)
    return indices.mapInArrow(read_shards, schema).localCheckpoint(eager=True)


def tables_to_dataframe(
    spark: SparkSession, keyed_tables: Iterable[tuple[Any, pa.Table]], schema: StructType, spill_dir: str | None
) -> DataFrame:
    """Result tables, as they arrive, into a checkpointed DataFrame ordered by their keys."""
    spill = SpillDirectory(spill_dir)
    try:
        for key, table in keyed_tables:
            if table.num_rows:
                spill.write(key, table)
        if spill.count == 0:
            return spark.createDataFrame([], schema)
        return _read_spilled(spark, spill, schema)
    finally:
        spill.cleanup()


def _push_partitions(intake: ShardHandle, max_bytes: int, max_rows: int) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """A mapInArrow function that uploads each partition's shards to the driver's data server."""

    def push(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        from .data_server import push_tables

        context = TaskContext.get()
        partition = context.partitionId() if context is not None else 0
        rows = push_tables(intake, partition, coalesce(batches, max_bytes, max_rows))
        yield pa.RecordBatch.from_arrays([pa.array([rows], pa.int64())], names=["rows"])

    return push


def run_on_driver(
    df: DataFrame,
    schema: StructType,
    runner: BatchRunner,
    server: DataServer,
    *,
    max_bytes: int,
    max_rows: int,
    spill_dir: str | None,
) -> DataFrame:
    """Data mode from the driver: executors upload their partitions to the driver's data server,
    all at once, and Ray tasks read each shard from there as soon as it has arrived.

    Uploads go to disk (the server's intake directory), so driver memory holds
    only the shards in flight, whatever the table's size. Output order is the
    input's: results are keyed by (partition, chunk) and read back sorted.
    """
    spark = df.sparkSession
    failures: list[BaseException] = []

    def upload_every_partition() -> None:
        try:
            df.mapInArrow(_push_partitions(server.handle(-1), max_bytes, max_rows), "rows long").collect()
        except BaseException as error:  # handed to the consuming thread below
            failures.append(error)
        finally:
            server.uploads.put(None)

    uploader = InheritableThread(target=upload_every_partition, name="spark-ray-upload", daemon=True)
    uploader.start()
    arrived: list[tuple[tuple[int, int], str]] = []

    def arrivals() -> Iterator[ShardHandle]:
        seen: set[tuple[int, int]] = set()
        while (item := server.uploads.get()) is not None:
            key, path = item
            if key not in seen:  # a retried Spark task uploads its chunks again
                seen.add(key)
                arrived.append((key, path))
                yield server.add_shard(len(arrived) - 1, path)
        uploader.join()
        if failures:
            raise failures[0]

    def results() -> Iterator[tuple[tuple[int, int], pa.Table]]:
        for index, table in enumerate(runner.map_shards(arrivals())):
            server.drop_shard(index)
            os.remove(arrived[index][1])
            yield arrived[index][0], table

    try:
        return tables_to_dataframe(spark, results(), schema, spill_dir)
    except BaseException:
        group = spark.sparkContext.getLocalProperty("spark.jobGroup.id")
        if group and uploader.is_alive():
            spark.sparkContext.cancelJobGroup(group)
        raise
