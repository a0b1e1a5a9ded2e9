"""One narrow door to the engines: Arrow shards in, results out, in order.

Every data path cuts the table into shards with ``Coalescer`` and keeps a
bounded window of work in flight with ``SlidingWindow``:

* the executor path and the SQL table function run shards through a runner
  (``RayRunner``: a Ray task per shard; ``actor_pool.PoolRunner``: a call on
  the call's actor pool, for a callable class; ``InlineRunner``: in this
  process, for python_mode="python"), chosen once by ``runner_for``;
* the driver path's Spark tasks push chunks through the driver's relay with
  the same window, where the executor path has Ray.

The window is pull-driven in ``in_order`` (a generator over shards, as
``mapInArrow`` hands them) and push-driven in ``SlidingWindow.push`` (a table
function receives rows one call at a time); both are the same object.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, Protocol, TypeVar

import pyarrow as pa

from .convert import with_complete_offsets
from .errors import MemoryLimitError, RayWorkLostError, SparkRayError
from .shard_program import ShardProgram
from .shard_server import ShardHandle, fetch_table
from .shard_sizing import ShardSizer, stamp


class Coalescer:
    """Groups small Arrow batches into shards worth a Ray task, without copying.

    A shard closes once it reaches ``max_bytes`` or ``max_rows`` (or, with a
    ``sizer``, the row limit the shards' timings call for; see
    ``shard_sizing``); a small partition therefore becomes a single shard, and
    empty batches are dropped.

    Spark may send a nested string or list vector with an empty offsets
    buffer (see ``convert.with_complete_offsets``). Nothing here reads the
    offsets of the incoming batches: a batch is sized by its buffers'
    lengths, because ``RecordBatch.nbytes`` reads the first offset of every
    such vector, past the end of its empty buffer (pyarrow 26 crashed the
    Spark worker with a segfault when that buffer ended a page). Each shard
    leaves with complete offsets, so no later step meets the short ones.

    With ``batch_size`` (the exact rows per call the user's function sees), a
    shard closes at a multiple of it, slicing a batch where one crosses the
    line (no copy), so that no call but a partition's last sees fewer rows.
    """

    def __init__(
        self, max_bytes: int, max_rows: int, sizer: ShardSizer | None = None, batch_size: int | None = None
    ) -> None:
        self.max_bytes = max_bytes
        self.max_rows = max_rows
        self.sizer = sizer
        self.batch_size = batch_size
        self._pending: list[pa.RecordBatch] = []
        self._bytes = self._rows = 0

    def add(self, batch: pa.RecordBatch) -> list[pa.Table]:
        """Take a batch; return the shards this batch completes (none, usually one)."""
        if batch.num_rows == 0:
            return []
        self._pending.append(batch)
        self._bytes += batch.get_total_buffer_size()
        self._rows += batch.num_rows
        shards = []
        while self._pending:
            row_limit = self.sizer.row_limit() if self.sizer is not None else self.max_rows
            if self._bytes < self.max_bytes and self._rows < row_limit:
                break
            if self.batch_size is None:
                shards.append(self._take_all())
                break
            whole = min(self._rows, max(row_limit, self.batch_size)) // self.batch_size * self.batch_size
            if whole == 0:
                break  # not one batch's rows yet, however many bytes: wait for more
            shards.append(self._take(whole))
        return shards

    def flush(self) -> pa.Table | None:
        """The shard begun so far, if any."""
        return self._take_all() if self._pending else None

    def _take_all(self) -> pa.Table:
        shard = with_complete_offsets(pa.Table.from_batches(self._pending))
        self._pending, self._bytes, self._rows = [], 0, 0
        return shard

    def _take(self, rows: int) -> pa.Table:
        """The first ``rows`` pending rows as a shard; the rest stay (sized by their share of the bytes)."""
        if rows >= self._rows:
            return self._take_all()
        pending = pa.Table.from_batches(self._pending)
        rest = pending.slice(rows)
        self._bytes = self._bytes * rest.num_rows // self._rows
        self._rows = rest.num_rows
        self._pending = rest.to_batches()
        return with_complete_offsets(pending.slice(0, rows))


def coalesce(
    batches: Iterable[pa.RecordBatch],
    max_bytes: int,
    max_rows: int,
    sizer: ShardSizer | None = None,
    batch_size: int | None = None,
) -> Iterator[pa.Table]:
    """The shards of a stream of batches (see ``Coalescer``)."""
    coalescer = Coalescer(max_bytes, max_rows, sizer, batch_size)
    for batch in batches:
        yield from coalescer.add(batch)
    last = coalescer.flush()
    if last is not None:
        yield last


Shard = TypeVar("Shard")
Pending = TypeVar("Pending")


class SlidingWindow(Generic[Shard, Pending]):
    """Keeps ``window`` shards submitted ahead of the one being collected; results in input order.

    The caller reads the next shard and writes the previous result while the
    engine works on the ones in between, which is where the overlap comes from.
    ``abandon`` gets the work nobody will collect (a failure, or an early
    close such as a ``limit()``).
    """

    def __init__(
        self,
        submit: Callable[[Shard], Pending],
        collect: Callable[[Pending], pa.Table],
        window: int,
        abandon: Callable[[Pending], None] | None = None,
    ) -> None:
        self.submit = submit
        self.collect = collect
        self.window = window
        self.abandon = abandon
        self._in_flight: collections.deque[Pending] = collections.deque()

    def push(self, shard: Shard) -> Iterator[pa.Table]:
        """Submit ``shard`` now; the returned iterator yields the oldest results while the window is full."""
        self._in_flight.append(self.submit(shard))
        return self._collect_while_full()

    def _collect_while_full(self) -> Iterator[pa.Table]:
        while len(self._in_flight) >= self.window:
            yield self.collect(self._in_flight.popleft())

    def drain(self) -> Iterator[pa.Table]:
        """Every result still owed, in order."""
        while self._in_flight:
            yield self.collect(self._in_flight.popleft())

    def abandon_rest(self) -> None:
        in_flight, self._in_flight = self._in_flight, collections.deque()
        if self.abandon is not None:
            for pending in in_flight:
                self.abandon(pending)


def in_order(
    shards: Iterable[Shard],
    submit: Callable[[Shard], Pending],
    collect: Callable[[Pending], pa.Table],
    window: int,
    abandon: Callable[[Pending], None] | None = None,
) -> Iterator[pa.Table]:
    """Results of ``shards`` in input order, ``window`` in flight (see ``SlidingWindow``)."""
    sliding = SlidingWindow(submit, collect, window, abandon)
    try:
        for shard in shards:
            yield from sliding.push(shard)
        yield from sliding.drain()
    finally:
        sliding.abandon_rest()


class BatchRunner(Protocol):
    """What a data path needs of a runner: start a shard, get its result, give up on it."""

    def submit(self, shard: Any) -> Any: ...

    def collect(self, pending: Any) -> pa.Table: ...

    def abandon(self, pending: Any) -> None: ...


def map_shards(
    runner: BatchRunner, shards: Iterable[Any], window: int, collect: Callable[[Any], pa.Table] | None = None
) -> Iterator[pa.Table]:
    """Every shard through ``runner``, ``window`` at a time, results in input order.

    ``collect`` replaces ``runner.collect`` (e.g. one that also reads the shards' timings).
    """
    return in_order(shards, runner.submit, collect or runner.collect, window, abandon=runner.abandon)


class InlineRunner:
    """Runs the shard program here, in this process, when it is collected: no Ray at all.

    A callable class is built once per process and job (``runner_for`` caches the program).
    """

    def __init__(self, program: ShardProgram) -> None:
        self.program = program

    def submit(self, shard: pa.Table) -> pa.Table:
        return shard

    def collect(self, shard: pa.Table) -> pa.Table:
        return self.program.run(shard)

    def abandon(self, shard: pa.Table) -> None:
        pass


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


def cached_program(job_id: str, program_blob: bytes) -> ShardProgram:
    """This job's program in this process, unpickled once (a callable class is built once, too)."""
    program = _PROGRAMS.get(job_id)
    if program is None:
        import cloudpickle

        program = _PROGRAMS.remember(job_id, cloudpickle.loads(program_blob))
    return program  # type: ignore[no-any-return]


def run_timed(program: ShardProgram, shard: pa.Table | ShardHandle) -> pa.Table:
    """Run one shard (fetched first if it is a handle) and stamp how long the user's code took."""
    if isinstance(shard, ShardHandle):
        shard = fetch_table(shard)
    program.instantiate()  # a class's __init__ is not the shard's work
    start = time.perf_counter()
    result = program.run(shard)
    return stamp(result, time.perf_counter() - start, shard.num_rows)


def run_shard_task(job_id: str, program_blob: bytes, shard: pa.Table | ShardHandle) -> pa.Table:
    """The body of every Ray task: fetch this job's program (cached) and run one shard.

    The shard comes by value (executor path) or as a handle to read from the
    driver's data server (driver path). The result carries its timing (see
    ``shard_sizing``).
    """
    return run_timed(cached_program(job_id, program_blob), shard)


_REMOTE_RUN_SHARD: Any = None


def _remote_run_shard() -> Any:
    global _REMOTE_RUN_SHARD
    if _REMOTE_RUN_SHARD is None:
        import ray

        _REMOTE_RUN_SHARD = ray.remote(run_shard_task)
    return _REMOTE_RUN_SHARD


class RayRunner:
    """Runs each shard as a Ray task; the caller's window bounds how many are in flight.

    The program is put into Ray once per runner (a partition, a table function call, a driver-mode
    call), and its ObjectRef goes with the runner. Kept longer (it was once cached per process and
    job), it stayed owned by Spark's long-lived Python workers between jobs, and when Ray stopped
    before Spark's workers did (a script without ``spark.stop()``, a driver switching to another
    Ray), each such worker logged ``core_worker.cc ... E ... Attempting to recover N lost objects``.
    """

    def __init__(self, job_id: str, program_blob: bytes, task_options: dict[str, Any]) -> None:
        import ray

        from .ray_options import resource_shape

        self.job_id = job_id
        self.program_ref = ray.put(program_blob)
        self.remote = _remote_run_shard().options(**task_options)
        self.retries: int | None = task_options.get("max_retries")
        self.demand = resource_shape(task_options)
        # Which shard each task runs, for an error that must name it; keyed by the ref's id, not the ref,
        # so that a result the caller fetched some other way (the driver path) is not pinned here.
        self._where: dict[str, str] = {}
        self._shards = self._rows = 0

    def submit(self, shard: pa.Table | ShardHandle) -> Any:
        """Start the shard's Ray task; returns its ObjectRef."""
        ref = self.remote.remote(self.job_id, self.program_ref, shard)
        self._where[ref.hex()] = self._describe(shard)
        return ref

    def _describe(self, shard: pa.Table | ShardHandle) -> str:
        """The shard as a person finds it: its place in this runner's Spark partition and its rows there."""
        index, first = self._shards, self._rows
        self._shards += 1
        if isinstance(shard, ShardHandle):
            return f"shard {shard.index}"
        self._rows += shard.num_rows
        return f"shard {index} ({shard.num_rows} rows from row {first}) of {_spark_partition()}"

    def collect(self, ref: Any) -> pa.Table:
        where = self._where.pop(ref.hex(), "a shard")
        return task_result(ref, where=where, retries=self.retries, demand=self.demand)

    def abandon(self, ref: Any) -> None:
        import ray

        self._where.pop(ref.hex(), None)
        ray.cancel(ref, force=False)


def _spark_partition() -> str:
    """ "Spark partition N" of the Spark task running here, or "this Spark task" outside one."""
    try:
        from pyspark import TaskContext
    except ImportError:
        return "this process"
    context = TaskContext.get()
    return f"Spark partition {context.partitionId()}" if context is not None else "this Spark task"


def runner_for(
    job_id: str,
    program_blob: bytes,
    ray_spec: Any,
    task_options: dict[str, Any],
    pool: Any = None,
    join_ray: bool = True,
) -> BatchRunner:
    """The runner of one job in this process: Ray tasks (or the call's actor pool) when there is a
    Ray to join, else in place.

    ``ray_spec`` is a ``cluster.RaySpec`` (joined here, once per process) or
    None for python_mode="python". ``pool`` is an ``actor_pool.PoolRef``: the
    shards go to that pool's actors instead of tasks. Without a pool, a
    callable class is built once per Ray worker process (or, in place, once
    per Spark worker) and job.
    """
    if ray_spec is None:
        return InlineRunner(cached_program(job_id, program_blob))
    if join_ray:
        from .cluster import ensure_worker_ray

        ensure_worker_ray(ray_spec)
    if pool is not None:
        from .actor_pool import PoolRunner

        return PoolRunner(pool)
    return RayRunner(job_id, program_blob, task_options)


# Seconds between two looks at the cluster while a result is awaited (see ``LossWatch``).
NODE_CHECK_S = 5.0


class LossWatch:
    """Notices work that can never run again: every node able to run it has died.

    Ray keeps a task whose resources no live node has (``resources={"gpu_box": 1}`` once that node is gone)
    pending forever, waiting for an autoscaler; a Spark task waiting for its result would hang with it.
    While a result is awaited, the cluster's nodes are read every ``NODE_CHECK_S`` seconds; when no live
    node has the task's ``demand`` on two looks in a row and a dead one had it, the wait ends with an
    error naming the lost node. Work that no node ever could run is left to Ray (an autoscaler may add one).
    """

    def __init__(self, demand: dict[str, float] | None) -> None:
        self.demand = demand
        self._next_look = time.monotonic() + NODE_CHECK_S
        self._strikes = 0
        if demand and time.monotonic() - _NODES_SEEN.looked > NODES_SEEN_MAX_AGE_S:
            nodes_lost_for(demand)  # remember the live nodes' resources: a dead node's are not reported

    def check(self, where: str) -> None:
        """Raise ``RayWorkLostError`` if ``where``'s work can no longer run anywhere; cheap between looks."""
        if not self.demand or time.monotonic() < self._next_look:
            return
        self._next_look = time.monotonic() + NODE_CHECK_S
        lost = nodes_lost_for(self.demand)
        self._strikes = self._strikes + 1 if lost else 0
        if self._strikes >= 2:
            names = ", ".join(f"{node['NodeID']} ({node.get('NodeManagerAddress', '?')})" for node in lost)
            raise RayWorkLostError(
                f"{where} can no longer run: its Ray task needs {self.demand}, no live node of the Ray cluster "
                f"has that, and the node that had it died: {names}. Restart that node (or give another node "
                "those resources) and run the job again."
            )


class _NodesSeen:
    """The resources of every node this process has seen alive, by node id (Ray reports none for a dead
    node), and when it last looked."""

    resources: dict[str, dict[str, float]] = {}
    looked = float("-inf")


_NODES_SEEN = _NodesSeen()
# A wait starting later than this after the last look reads the nodes again first.
NODES_SEEN_MAX_AGE_S = 30.0


def nodes_lost_for(demand: dict[str, float]) -> list[dict[str, Any]]:
    """The dead nodes, seen alive by this process, that could run work needing ``demand``, when no live
    node can; else []."""
    import ray

    nodes = ray.nodes()
    _NODES_SEEN.looked = time.monotonic()
    for node in nodes:
        if node.get("Alive") and node.get("Resources"):
            _NODES_SEEN.resources[node["NodeID"]] = dict(node["Resources"])

    def fits(resources: dict[str, float]) -> bool:
        return all(resources.get(name, 0.0) >= amount for name, amount in demand.items())

    if any(node.get("Alive") and fits(node.get("Resources") or {}) for node in nodes):
        return []
    return [node for node in nodes if not node.get("Alive") and fits(_NODES_SEEN.resources.get(node["NodeID"], {}))]


def wait_for(ref: Any, where: str, demand: dict[str, float] | None, stopped: Callable[[], bool] | None = None) -> None:
    """Until ``ref`` is ready, in slices of at most a second; raises ``RayWorkLostError`` if its work can no
    longer run (``LossWatch``), or returns early once ``stopped()`` says so (the caller checks ``stopped``)."""
    import ray

    watch: LossWatch | None = None  # made once the result is slow to come: a fast task costs no look
    while not ray.wait([ref], timeout=1.0)[0]:
        if stopped is not None and stopped():
            return
        watch = watch or LossWatch(demand)
        try:
            watch.check(where)
        except RayWorkLostError:
            ray.cancel(ref, force=False)
            raise


def task_result(
    ref: Any, where: str = "a shard", retries: int | None = None, demand: dict[str, float] | None = None
) -> pa.Table:
    """A shard task's result; our own error (the user's, with their traceback, or a memory cap's)
    rather than Ray's wrapper when there is one.

    ``where`` names the shard in the error when the process or node running it died (``RayWorkLostError``);
    ``retries`` is the ``max_retries`` it ran with (None: Ray's default); with ``demand`` (its resources),
    the wait ends if no live node can run it any more (``LossWatch``).
    """
    import ray

    try:
        if demand:
            wait_for(ref, where, demand)
        return ray.get(ref)
    except ray.exceptions.RayTaskError as error:
        cause = error.cause
        if isinstance(cause, SparkRayError):
            raise cause from None
        raise
    except _lost_work_errors() as error:
        from .cap_reports import exit_message_of

        capped = exit_message_of(ref)
        if capped is not None:  # the memory cap stopped the process: say so, not "the worker died"
            raise MemoryLimitError(capped) from None
        raise RayWorkLostError(lost_work_message(error, where, retries)) from None


def _lost_work_errors() -> tuple[type[BaseException], ...]:
    """Ray's errors that mean the process or node running a task is gone (not the code raising)."""
    import ray.exceptions as errors

    return (
        errors.WorkerCrashedError,
        errors.NodeDiedError,
        errors.LocalRayletDiedError,
        errors.OutOfMemoryError,
        errors.RayActorError,
        errors.ObjectLostError,
    )


def lost_work_message(error: BaseException, where: str, retries: int | None) -> str:
    """What died while running ``where``, in one paragraph: Ray's own words follow ours, not a traceback."""
    import ray.exceptions as errors

    if isinstance(error, errors.OutOfMemoryError):
        what = f"Ray's memory monitor killed the worker running {where} (its node ran low on memory)"
    elif isinstance(error, (errors.NodeDiedError, errors.LocalRayletDiedError)):
        what = f"the Ray node running {where} died"
    elif isinstance(error, errors.RayActorError):
        what = f"the actor of the pool running {where} died"
    elif isinstance(error, errors.ObjectLostError):
        what = f"the result of {where} was lost with the Ray node that held it"
    else:
        what = f"the Ray worker process running {where} died"
    if retries == 0:
        retried = "max_retries=0, so Ray did not run it again"
    elif retries is None:
        retried = "Ray gave up after its default retries"
    else:
        retried = f"Ray gave up after max_retries={retries} retries"
    said = (str(error).strip().splitlines() or [""])[0][:400]
    return (
        f"{what}; {retried}. Ray said: {type(error).__name__}: {said} A process ends this way when it crashes, "
        "is killed (the OOM killer, a signal) or calls os._exit; its output is in the Ray session's logs "
        "(worker-*.err, python-core-worker-*.log)."
    )
