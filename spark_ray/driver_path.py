"""run_in="driver": the driver hands the table to Ray and rebuilds a DataFrame.

Data mode is one Spark pass through a relay on the driver: each Spark task
cuts its partition into chunks and uploads them to the driver's data server
(Arrow Flight, to disk), the driver starts a Ray task per chunk that reads the
chunk from the server, and the Spark task fetches each result back, in order,
with a few chunks in flight. The output is locally checkpointed, so the Ray
work runs once. Only the driver talks to Ray; it holds only chunks in flight.

Model mode streams the table with ``toLocalIterator`` (one partition at a
time), since its program needs every shard served before it starts; its
output is spilled to Arrow files and read back in order.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.flight as flight
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType

from .arrow_files import read_shard_file, write_shard_file
from .data_server import ChunkKey, DataServer, ShardHandle
from .runners import RayRunner, coalesce, task_result

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


@dataclass
class _Chunk:
    """One uploaded chunk on the driver: its Ray task, and how often it was uploaded and fetched."""

    ref: Any
    shard_index: int
    path: str
    uploads: int = 1
    fetches: int = 0


class DriverRelay:
    """The driver's half of data mode: a Ray task per uploaded chunk, its result served back.

    Called from the data server's threads. A chunk uploaded again (a retried
    or speculative Spark task) reuses the running task, or starts a new one if
    every earlier upload has had its result; a chunk is forgotten, and its file
    deleted, once each upload has been matched by a fetch. The first failure
    is kept for the driver to raise and stops the job through ``on_failure``.
    """

    def __init__(self, server: DataServer, runner: RayRunner, on_failure: Callable[[], None]) -> None:
        self.server = server
        self.runner = runner
        self.on_failure = on_failure
        self.error: BaseException | None = None
        self._chunks: dict[ChunkKey, _Chunk] = {}
        self._shard_indices = itertools.count()
        self._lock = threading.Lock()
        self._closed = threading.Event()

    def accept(self, key: ChunkKey, path: str) -> None:
        with self._lock:
            if self.error is not None:
                raise flight.FlightServerError(f"spark-ray: the job has already failed: {self.error}")
            if self._closed.is_set():
                raise flight.FlightServerError("spark-ray: the job has ended; no more uploads")
            chunk = self._chunks.get(key)
            if chunk is not None:
                chunk.uploads += 1
                return
            index = next(self._shard_indices)
            ref = self.runner.submit(self.server.add_shard(index, path))
            self._chunks[key] = _Chunk(ref, index, path)

    def result(self, key: ChunkKey) -> pa.Table:
        import ray

        with self._lock:
            chunk = self._chunks.get(key)
        if chunk is None:
            raise flight.FlightServerError(f"spark-ray: no chunk {key} was uploaded (partition, chunk)")
        # Wait in slices, so that a closing relay never leaves a server thread
        # blocked (the server's shutdown waits for its calls to return).
        while not ray.wait([chunk.ref], timeout=1.0)[0]:
            if self._closed.is_set():
                raise flight.FlightServerError(f"spark-ray: the job ended before chunk {key} had its result")
        try:
            return task_result(chunk.ref)
        except BaseException as error:
            self.fail(error)
            raise flight.FlightServerError(f"spark-ray: the Ray task of chunk {key} failed: {error}") from None

    def result_sent(self, key: ChunkKey) -> None:
        with self._lock:
            chunk = self._chunks.get(key)
            if chunk is None:
                return
            chunk.fetches += 1
            if chunk.fetches < chunk.uploads:
                return
            del self._chunks[key]
        self.server.drop_shard(chunk.shard_index)
        with contextlib.suppress(FileNotFoundError):
            os.remove(chunk.path)

    def fail(self, error: BaseException) -> None:
        with self._lock:
            first = self.error is None
            if first:
                self.error = error
        if first:
            self.on_failure()

    def close(self) -> None:
        """Cancel the Ray tasks nobody fetched (the job failed or stopped early)."""
        import ray

        self._closed.set()
        with self._lock:
            leftovers, self._chunks = list(self._chunks.values()), {}
        for chunk in leftovers:
            ray.cancel(chunk.ref, force=False)


def relay_partition_function(
    intake: ShardHandle, window: int, max_bytes: int, max_rows: int, label: str
) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The mapInArrow function of driver data mode: each chunk goes to the driver and its result comes back."""

    def relay_partition(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        from .data_server import RelayClient
        from .runners import coalesce, in_order

        context = TaskContext.get()
        partition = context.partitionId() if context is not None else 0
        with RelayClient(intake) as relay:

            def upload(numbered: tuple[int, pa.Table]) -> ChunkKey:
                key = (partition, numbered[0])
                relay.push(key, numbered[1])
                return key

            chunks = enumerate(coalesce(batches, max_bytes, max_rows))
            for table in in_order(chunks, upload, relay.fetch, window):
                yield from table.to_batches()

    relay_partition.__name__ = relay_partition.__qualname__ = f"ray_transform[{label}] via driver"
    return relay_partition


def run_on_driver(
    df: DataFrame,
    schema: StructType,
    runner: RayRunner,
    server: DataServer,
    *,
    window: int,
    max_bytes: int,
    max_rows: int,
    label: str,
) -> DataFrame:
    """Data mode from the driver, in one Spark pass: every Spark task uploads its chunks to the
    driver's data server and fetches their results back from it, while the driver runs a Ray task
    per chunk. The executors never talk to Ray; the driver holds only the chunks in flight.

    Eager, like every driver-mode call: the pass runs now and its output is
    locally checkpointed, so later actions do not run the Ray work again.
    """
    sc = df.sparkSession.sparkContext
    group = sc.getLocalProperty("spark.jobGroup.id")

    def stop_the_job() -> None:
        if group:
            sc.cancelJobGroup(group)

    relay = DriverRelay(server, runner, on_failure=stop_the_job)
    server.relay = relay
    try:
        through_ray = df.mapInArrow(
            relay_partition_function(server.handle(-1), window, max_bytes, max_rows, label), schema
        )
        return through_ray.localCheckpoint(eager=True)
    except BaseException:
        if relay.error is not None:  # the cause, rather than the Spark task failure it led to
            raise relay.error from None
        raise
    finally:
        relay.close()
