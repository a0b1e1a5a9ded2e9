"""run_in="driver": the driver relays the table to Ray and hands the results back.

Data mode is one Spark pass through a relay on the driver: each Spark task
cuts its partition into chunks and uploads them to the driver's relay server
(Arrow Flight, to disk), the driver starts a Ray task per chunk that reads the
chunk from the same server, and the Spark task fetches each result back, in
order, with a few chunks in flight. The output is locally checkpointed, so
the Ray work runs once. Only the driver talks to Ray; it holds only chunks in
flight. (Model mode from the driver is in ``model_mode``.)
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.flight as flight
from pyspark.sql import DataFrame
from pyspark.sql.types import StructType

from .checkpoint import checkpoint_surviving_an_executor
from .conf import RayTransformConf
from .data_server import ServerAddress, server_host
from .jobs import JobGroup
from .pipeline import RunnerPlan, ShardFlow
from .ray_results import task_result, wait_for
from .relay_server import ChunkKey, RelayServer
from .runners import BatchRunner
from .shard_server import ShardHandle
from .spark_session_kind import kind_of


@dataclass
class _Chunk:
    """One uploaded chunk on the driver: its Ray task (once started), and how often it was uploaded and fetched."""

    ref: Any = None
    uploads: int = 1
    fetches: int = 0
    started: threading.Event = field(default_factory=threading.Event)


# The executors' side of a failure: the cause (the user's error, with its traceback) is raised once, by the
# driver (run_driver_path); Spark logs each failed task's message, so it does not repeat the cause.
_CAUSE_ON_DRIVER = "(the driver raises the cause)"


class DriverRelay:
    """The driver's half of data mode: a Ray task per uploaded chunk, its result served back.

    Called from the relay server's threads. A chunk uploaded again (a retried
    or speculative Spark task) reuses the running task, or starts a new one if
    every earlier upload has had its result; a chunk is forgotten (and the
    server deletes its upload) once each upload has been matched by a fetch.
    The first failure is kept for the driver to raise and stops the job
    through ``on_failure``.
    """

    def __init__(self, runner: BatchRunner, on_failure: Callable[[], None]) -> None:
        self.runner = runner
        self.on_failure = on_failure
        self.error: BaseException | None = None
        self._chunks: dict[ChunkKey, _Chunk] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()

    def accept(self, key: ChunkKey, path: str, shard: ShardHandle) -> None:
        with self._lock:
            if self.error is not None:
                raise flight.FlightServerError(f"spark-ray: the job has already failed {_CAUSE_ON_DRIVER}")
            if self._closed.is_set():
                raise flight.FlightServerError("spark-ray: the job has ended; no more uploads")
            chunk = self._chunks.get(key)
            if chunk is not None:
                chunk.uploads += 1
                return
            chunk = self._chunks[key] = _Chunk()
        # Outside the lock: with an actor pool, submit waits for a free slot.
        try:
            chunk.ref = self.runner.submit(shard)
        except BaseException as error:
            self.fail(error)
            raise flight.FlightServerError(f"spark-ray: chunk {key} could not start {_CAUSE_ON_DRIVER}") from None
        finally:
            chunk.started.set()

    def result(self, key: ChunkKey) -> pa.Table:
        with self._lock:
            chunk = self._chunks.get(key)
        if chunk is None:
            raise flight.FlightServerError(f"spark-ray: no chunk {key} was uploaded (partition, chunk)")
        # Wait in slices, so that a closing relay never leaves a server thread
        # blocked (the server's shutdown waits for its calls to return).
        while not chunk.started.wait(timeout=1.0) or chunk.ref is None:
            if self._closed.is_set() or (chunk.started.is_set() and chunk.ref is None):
                raise flight.FlightServerError(f"spark-ray: the job ended before chunk {key} had its result")
        where = f"chunk {key[1]} of Spark partition {key[0]}"
        demand = getattr(self.runner, "demand", None)  # a pool's actors are watched by the pool
        try:
            wait_for(chunk.ref, where, demand, stopped=self._closed.is_set)
            if self._closed.is_set():
                raise flight.FlightServerError(f"spark-ray: the job ended before chunk {key} had its result")
            return task_result(chunk.ref, where=where, retries=getattr(self.runner, "retries", None))
        except flight.FlightServerError:
            raise
        except BaseException as error:
            self.fail(error)
            raise flight.FlightServerError(
                f"spark-ray: the Ray task of chunk {key} failed {_CAUSE_ON_DRIVER}"
            ) from None

    def result_sent(self, key: ChunkKey) -> bool:
        with self._lock:
            chunk = self._chunks.get(key)
            if chunk is None:
                return False
            chunk.fetches += 1
            if chunk.fetches < chunk.uploads:
                return False
            del self._chunks[key]
            return True

    def fail(self, error: BaseException) -> None:
        with self._lock:
            first = self.error is None
            if first:
                self.error = error
        if first:
            self.on_failure()

    def close(self) -> None:
        """Cancel the Ray tasks nobody fetched (the job failed or stopped early)."""
        self._closed.set()
        with self._lock:
            leftovers, self._chunks = list(self._chunks.values()), {}
        for chunk in leftovers:
            if chunk.ref is not None:
                self.runner.abandon(chunk.ref)


class _RelayRunner:
    """A Spark task's runner in driver mode: a shard is uploaded to the driver's relay, its result fetched back."""

    def __init__(self, relay: Any, partition: int) -> None:
        self.relay = relay
        self.partition = partition
        self.chunks = 0

    def submit(self, shard: pa.Table) -> ChunkKey:
        key = (self.partition, self.chunks)
        self.chunks += 1
        self.relay.push(key, shard)
        return key

    def collect(self, key: ChunkKey) -> pa.Table:
        return self.relay.fetch(key)  # type: ignore[no-any-return]

    def abandon(self, key: ChunkKey) -> None:
        pass  # the driver cancels the Ray work nobody fetched when the call ends (DriverRelay.close)


def relay_partition_function(
    relay_address: ServerAddress, flow: ShardFlow, label: str
) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The mapInArrow function of driver data mode: the call's pipeline, with the driver's relay as its runner."""

    def relay_partition(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        from .relay_server import RelayClient

        context = TaskContext.get()
        partition = context.partitionId() if context is not None else 0
        with RelayClient(relay_address) as relay:
            for table in flow.pull(batches, _RelayRunner(relay, partition)):
                yield from table.to_batches()

    relay_partition.__name__ = relay_partition.__qualname__ = f"ray_transform[{label}] via driver"
    return relay_partition


def run_on_driver(
    df: DataFrame, schema: StructType, *, runner: RunnerPlan, flow: ShardFlow, conf: RayTransformConf, label: str
) -> DataFrame:
    """Data mode from the driver, in one Spark pass: every Spark task uploads its chunks to the
    driver's relay server and fetches their results back from it, while the driver runs each chunk
    with the call's runner (a Ray task, or a call on its actor pool). The executors never talk to
    Ray; the driver holds only the chunks in flight.

    Eager, like every driver-mode call: the pass runs now and its output is
    locally checkpointed, so later actions do not run the Ray work again.
    """

    description = f"spark-ray ray_transform[{label}] run_in=driver mode={conf.mode}"
    group = JobGroup.of(df.sparkSession, conf, runner.job_id, description)
    host = server_host(conf, kind_of(df.sparkSession).executors_on_this_host())
    relay = DriverRelay(runner.runner(join_ray=False), on_failure=group.cancel)
    with (
        group.active(),
        tempfile.TemporaryDirectory(prefix="spark-ray-intake-", dir=conf.spill_dir) as intake,
        RelayServer(relay, intake, host, conf.data_server_idle_timeout) as server,
    ):
        relay_partition = relay_partition_function(server.address, flow, label)
        try:
            return checkpoint_surviving_an_executor(df.mapInArrow(relay_partition, schema))
        except BaseException:
            if relay.error is not None:  # the cause, rather than the Spark task failure it led to
                raise relay.error from None
            raise
        finally:
            relay.close()
