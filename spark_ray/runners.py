"""One narrow door to the engines: a stream of Arrow shards in, a stream out.

Both data paths (executor and driver) cut the table into shards with
``coalesce``. ``InlineRunner`` runs the shard program in this process
(python_mode="python"); ``RayRunner`` runs each shard in a Ray task, keeps a
bounded window of tasks in flight and yields results in input order. That
window is ``in_order``, which the driver path's Spark tasks also use, with
the driver's relay where the executor path has Ray. The same tests run
through each.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar

import pyarrow as pa

from .data_server import ShardHandle, fetch_table
from .errors import ResultSchemaError, UserCodeError
from .user_code import ShardProgram


def coalesce(batches: Iterable[pa.RecordBatch], max_bytes: int, max_rows: int) -> Iterator[pa.Table]:
    """Group small Arrow batches into shards worth a Ray task, without copying.

    A shard closes once it reaches ``max_bytes`` or ``max_rows``; a small
    partition therefore becomes a single shard, and empty batches are dropped.
    """
    pending: list[pa.RecordBatch] = []
    size = rows = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        size += batch.nbytes
        rows += batch.num_rows
        if size >= max_bytes or rows >= max_rows:
            yield pa.Table.from_batches(pending)
            pending, size, rows = [], 0, 0
    if pending:
        yield pa.Table.from_batches(pending)


Shard = TypeVar("Shard")
Pending = TypeVar("Pending")


def in_order(
    shards: Iterable[Shard],
    submit: Callable[[Shard], Pending],
    collect: Callable[[Pending], pa.Table],
    window: int,
    abandon: Callable[[Pending], None] | None = None,
) -> Iterator[pa.Table]:
    """Keep ``window`` shards submitted ahead of the one being collected; results in input order.

    The caller reads the next shard and writes the previous result while the
    engine works on the ones in between, which is where the overlap comes from.
    On failure or early close (e.g. a ``limit()``), ``abandon`` gets the work
    nobody will collect.
    """
    in_flight: collections.deque[Pending] = collections.deque()
    try:
        for shard in shards:
            in_flight.append(submit(shard))
            if len(in_flight) >= window:
                yield collect(in_flight.popleft())
        while in_flight:
            yield collect(in_flight.popleft())
    finally:
        if abandon is not None:
            for pending in in_flight:
                abandon(pending)


class BatchRunner(Protocol):
    """What the executor path needs of a runner: shards in, results out, in order."""

    def map_shards(self, shards: Iterable[Any]) -> Iterator[pa.Table]: ...


class InlineRunner:
    """Runs the shard program here, in this process: no Ray at all."""

    def __init__(self, program: ShardProgram) -> None:
        self.program = program

    def map_shards(self, shards: Iterable[pa.Table]) -> Iterator[pa.Table]:
        for shard in shards:
            yield self.program.run(shard)


class _Recent(collections.OrderedDict):  # type: ignore[type-arg]
    """A small per-process cache by job id: a job's tasks reuse one entry, old jobs fall out."""

    def __init__(self, size: int = 8) -> None:
        super().__init__()
        self.size = size

    def remember(self, key: str, value: Any) -> Any:
        self[key] = value
        while len(self) > self.size:
            self.popitem(last=False)
        return value


# Programs unpickled in this Ray worker process.
_PROGRAMS = _Recent()


def run_shard_task(job_id: str, program_blob: bytes, shard: pa.Table | ShardHandle) -> pa.Table:
    """The body of every Ray task: fetch this job's program (cached) and run one shard.

    The shard comes by value (executor path) or as a handle to read from the
    driver's data server (driver path).
    """
    if isinstance(shard, ShardHandle):
        shard = fetch_table(shard)
    program = _PROGRAMS.get(job_id)
    if program is None:
        import cloudpickle

        program = _PROGRAMS.remember(job_id, cloudpickle.loads(program_blob))
    return program.run(shard)


_REMOTE_RUN_SHARD: Any = None


def _remote_run_shard() -> Any:
    global _REMOTE_RUN_SHARD
    if _REMOTE_RUN_SHARD is None:
        import ray

        _REMOTE_RUN_SHARD = ray.remote(run_shard_task)
    return _REMOTE_RUN_SHARD


# The program's ObjectRef per job in this process: put once, reused by every partition.
_PROGRAM_REFS = _Recent()


def program_ref(job_id: str, program_blob: bytes) -> Any:
    import ray

    ref = _PROGRAM_REFS.get(job_id)
    return ref if ref is not None else _PROGRAM_REFS.remember(job_id, ray.put(program_blob))


class RayRunner:
    """Runs each shard as a Ray task, ``window`` at a time, results in input order."""

    def __init__(self, job_id: str, program_blob: bytes, task_options: dict[str, Any], window: int) -> None:
        self.job_id = job_id
        self.program_ref = program_ref(job_id, program_blob)
        self.remote = _remote_run_shard().options(**task_options)
        self.window = window

    def submit(self, shard: pa.Table | ShardHandle) -> Any:
        """Start the shard's Ray task; returns its ObjectRef."""
        return self.remote.remote(self.job_id, self.program_ref, shard)

    def map_shards(self, shards: Iterable[pa.Table | ShardHandle]) -> Iterator[pa.Table]:
        import ray

        return in_order(shards, self.submit, task_result, self.window, abandon=lambda ref: ray.cancel(ref, force=False))


def task_result(ref: Any) -> pa.Table:
    """A shard task's result; the user's own error (with their traceback) if their code failed."""
    import ray

    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as error:
        cause = error.cause
        if isinstance(cause, (UserCodeError, ResultSchemaError)):
            raise cause from None
        raise
