"""One partition's pipeline, the same at every door: batches cut into shards, a window of runs, results in order.

Every door that maps the user's function over a table (``ray_transform`` on
either path, the generic SQL table function, ``register_function``) hands a
partition's Arrow batches to the same two objects, made once per call on the
driver (``call_plan``) and pickled into the Spark task:

* ``ShardFlow``: how batches become shards (``runners.Coalescer``: bytes,
  rows, ``batch_size``, sizes from timings) and how many shards are in flight
  (``runners.SlidingWindow``). It has a pull form, for ``mapInArrow``'s
  iterator of batches, and a push form (``ShardStream``), for a table
  function that is handed a row or a batch per call.
* ``RunnerPlan``: what runs a shard: the pickled program in Ray tasks, on
  the call's actor pool (a callable class), or in place without Ray. Its
  ``runner()`` is the one place a Spark worker chooses among them.

The driver path uses the flow in its Spark tasks (the runner there is the
relay to the driver) and the runner plan on the driver.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from .runners import BatchRunner, Coalescer, SlidingWindow, coalesce, in_order, runner_for
from .shard_sizing import ShardSizer, observing

if TYPE_CHECKING:
    from .actor_pool import PoolRef
    from .cluster import RaySpec


@dataclass(frozen=True)
class ShardFlow:
    """How one partition's batches become shards, and how many shards are in flight at once.

    Attributes:
        window: shards submitted ahead of the one being collected.
        max_bytes, max_rows: a shard closes at either (``batch_bytes``, ``batch_rows``).
        batch_size: shards close at multiples of it (the rows per call of a batch function).
        adaptive: size shards from their timings (``batch_sizing="auto"``, see ``shard_sizing``).
    """

    window: int
    max_bytes: int
    max_rows: int
    batch_size: int | None = None
    adaptive: bool = False

    def _sizer(self, max_rows: int) -> ShardSizer | None:
        return ShardSizer(max_rows, self.max_bytes) if self.adaptive else None

    def pull(self, batches: Iterable[pa.RecordBatch], runner: BatchRunner) -> Iterator[pa.Table]:
        """The results of a partition's batches, in order (mapInArrow's form)."""
        sizer = self._sizer(self.max_rows)
        shards = coalesce(batches, self.max_bytes, self.max_rows, sizer, self.batch_size)
        return in_order(shards, runner.submit, observing(runner.collect, sizer), self.window, runner.abandon)

    def push(self, runner: BatchRunner, max_rows: int | None = None) -> ShardStream:
        """A stream to push a partition's batches into, one call at a time (a table function's form).

        ``max_rows`` lowers the shard size (the row protocol: see ``table_function.ROW_SHARD_ROWS``).
        """
        rows = min(self.max_rows, max_rows) if max_rows is not None else self.max_rows
        return ShardStream(runner, self.window, Coalescer(self.max_bytes, rows, self._sizer(rows), self.batch_size))


class ShardStream:
    """Arrow batches pushed in one call at a time; results out in input order, a window of runs in flight.

    A table function is called once per row (or per batch) and yields as it
    goes, so the pipeline that ``ShardFlow.pull`` runs over an iterator is
    driven here by pushes: the coalescer closes shards, the sliding window
    keeps ``window`` of them running while more arrive.
    """

    def __init__(self, runner: BatchRunner, window: int, coalescer: Coalescer) -> None:
        self.coalescer = coalescer
        self.window = SlidingWindow(runner.submit, observing(runner.collect, coalescer.sizer), window, runner.abandon)

    def push(self, batch: pa.RecordBatch) -> Iterator[pa.Table]:
        for shard in self.coalescer.add(batch):
            yield from self.window.push(shard)

    def finish(self) -> Iterator[pa.Table]:
        """The last shard, then every result still owed; abandons the rest if the reader stops early."""
        try:
            last = self.coalescer.flush()
            if last is not None:
                yield from self.window.push(last)
            yield from self.window.drain()
        finally:
            self.window.abandon_rest()


@dataclass(frozen=True)
class RunnerPlan:
    """What runs a call's shards: its pickled program, in Ray tasks, on its actor pool, or in place.

    Attributes:
        job_id: the call's id (Ray workers cache the program by it; the pool's id too).
        program_blob: the pickled ``ShardProgram`` (``call_plan.build_program``).
        ray_spec: the Ray to join; None runs in place (python_mode="python").
        task_options_blob: the Ray task options, pickled apart: a Ray object among them (a
            scheduling strategy) would import ray while Spark unpickles the plan, before
            ``ensure_worker_ray`` has set the Ray auth token.
        pool: the actor pool of a callable class, and ``pool_spec``, what reopens it when it was
            closed meanwhile (``close_pools``, or forgotten after many newer pools).
    """

    job_id: str
    program_blob: bytes
    ray_spec: RaySpec | None
    task_options_blob: bytes
    pool: PoolRef | None = None
    pool_spec: Any = None

    def runner(self, join_ray: bool = True) -> BatchRunner:
        """This process's runner for the call; a Spark worker joins Ray first (once per process),
        the driver (``join_ray=False``) is connected already."""
        import cloudpickle

        if self.ray_spec is not None:
            if join_ray:
                from .cluster import ensure_worker_ray

                ensure_worker_ray(self.ray_spec)
            if self.pool is not None and self.pool_spec is not None:
                from .actor_pool import reopen_pool

                reopen_pool(self.pool, self.pool_spec)
        task_options = cloudpickle.loads(self.task_options_blob)
        return runner_for(self.job_id, self.program_blob, self.ray_spec, task_options, pool=self.pool)
