"""run_in="driver": the driver streams the table to Ray and rebuilds a DataFrame.

The table reaches the driver one partition at a time (``toLocalIterator``
over Arrow IPC chunks made in the executors), so driver memory holds at most a
partition or two plus the shards in flight, never the whole table. A data
server (Arrow Flight) on the driver serves each shard to the Ray task that
processes it; each result is spilled to an Arrow file as it arrives, and
Spark reads the files back, in order, into a locally checkpointed DataFrame,
after which the files are deleted.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType

from .data_server import DataServer
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
    """The table's shards on the driver, one partition's worth in memory at a time."""
    chunks = df.mapInArrow(_to_ipc_chunks(max_bytes, max_rows), f"{_IPC_COLUMN} binary")
    for row in chunks.toLocalIterator(prefetchPartitions=True):
        yield pa.ipc.open_stream(pa.py_buffer(row[_IPC_COLUMN])).read_all()


class SpillDirectory:
    """Result shards as Arrow files, numbered in output order; removed by cleanup()."""

    def __init__(self, parent: str | None) -> None:
        if parent:
            os.makedirs(parent, exist_ok=True)
        self.path = tempfile.mkdtemp(prefix="spark-ray-results-", dir=parent)
        self.count = 0

    def shard_path(self, index: int) -> str:
        return os.path.join(self.path, f"shard-{index:06d}.arrow")

    def write(self, table: pa.Table) -> None:
        with pa.OSFile(self.shard_path(self.count), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        self.count += 1

    def cleanup(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _read_spilled(spark: SparkSession, spill: SpillDirectory, schema: StructType) -> DataFrame:
    """Read the spilled shards back in order and checkpoint them, so the files can go."""
    shard_paths = [spill.shard_path(i) for i in range(spill.count)]
    partitions = min(len(shard_paths), max(1, spark.sparkContext.defaultParallelism * 2))

    def read_shards(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for index in batch.column(0).to_pylist():
                with pa.memory_map(shard_paths[index]) as source:
                    yield from pa.ipc.open_file(source).read_all().to_batches()

    indices = spark.range(0, len(shard_paths), numPartitions=partitions)
    return indices.mapInArrow(read_shards, schema).localCheckpoint(eager=True)


def tables_to_dataframe(
    spark: SparkSession, tables: Iterable[pa.Table], schema: StructType, spill_dir: str | None
) -> DataFrame:
    """Result tables, as they arrive, into a checkpointed DataFrame in the same order."""
    spill = SpillDirectory(spill_dir)
    try:
        for table in tables:
            if table.num_rows:
                spill.write(table)
        if spill.count == 0:
            return spark.createDataFrame([], schema)
        return _read_spilled(spark, spill, schema)
    finally:
        spill.cleanup()


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
    """Data mode from the driver: serve each shard, let a Ray task read and process it.

    A shard stays on the data server only until its result is back (a retried
    task can read it again), so the driver holds about ``window`` shards.
    """
    # Coalesce again across partitions: many small partitions make few Ray tasks.
    batches = (batch for table in stream_table(df, max_bytes, max_rows) for batch in table.to_batches())
    handles = (server.add_shard(index, shard) for index, shard in enumerate(coalesce(batches, max_bytes, max_rows)))

    def results() -> Iterator[pa.Table]:
        for index, table in enumerate(runner.map_shards(handles)):
            server.drop_shard(index)
            yield table

    return tables_to_dataframe(df.sparkSession, results(), schema, spill_dir)
