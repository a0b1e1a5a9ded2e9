"""The actor side of the actor pools: what runs inside Ray's actors, not in the callers.

Who owns what, and why:

* Each Spark Python worker is a Ray job of its own and goes away when Spark
  says, so nothing shared may belong to one. The driver owns a single
  ``PoolRegistry`` actor (an async actor, no CPU), which creates and owns the
  pools' actors: they live exactly as long as the driver's Ray connection at
  most.
* A caller leases a call slot (``acquire``: the least-loaded actor that has
  finished ``__init__``, at most ``PER_ACTOR`` calls each), sends the shard
  to that actor, and the actor hands the slot back when the call ends, so a
  slot is never held by a result waiting to be read in order.
* A pool starts its ``min`` actors when the call is made (so the model loads
  while Spark starts its job), and again on the next lease after the idle
  timeout stopped them; it adds one (up to ``max``) whenever no started actor
  is idle, and never shrinks during a call.
* Actors hold their CPUs and GPUs while alive, so a pool idle for
  ``GIVE_WAY_S`` stops its actors when another pool of the driver needs to
  start one, and every pool without work does when the driver starts a new
  call (``make_way``): a finished call's pool must not hold up the next
  call's tasks for its whole idle timeout.

The driver's and the callers' side (opening a pool, finding the registry by
name, running shards on a pool) is ``actor_pool``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from .errors import MemoryLimitError, PoolError, SparkRayError
from .shard_task import run_timed

if TYPE_CHECKING:
    from .shard_server import ShardHandle

log = logging.getLogger(__name__)

# Calls leased to one actor at once: one running, one queued with its shard already sent.
PER_ACTOR = 2
# A pool idle this long gives way when another pool of the driver starts actors.
GIVE_WAY_S = 1.0
# How long an actor retired after a failed call lives on, so that the call's error reaches its caller first.
RETIRE_GRACE_S = 5.0
# Pools without actors kept for a later action on their lazy result; the oldest go first.
MAX_IDLE_POOLS = 64
_REAPER_PERIOD_S = 0.25


@dataclass(frozen=True)
class PoolSpec:
    """What the registry needs to start a pool's actors."""

    program_blob: bytes
    actor_options: dict[str, Any]
    min_size: int
    max_size: int
    idle_timeout_s: float
    label: str


class PoolWorker:
    """One actor of a pool: builds the user's instance once, then runs shards with it.

    ``__init__`` never raises: a failing user ``__init__`` is kept and raised
    by ``ready`` and by every ``run``, so the error the user sees is theirs
    (with their traceback), not Ray's "actor died".
    """

    def __init__(self, program_blob: bytes, registry: Any, pool_id: str) -> None:
        import cloudpickle

        self.registry = registry
        self.pool_id = pool_id
        self.error: BaseException | None = None
        try:
            self.program = cloudpickle.loads(program_blob)
            self.program.instantiate()
        except SparkRayError as error:
            self.error = error
        except Exception as error:  # e.g. the class cannot be unpickled here
            self.error = PoolError(f"an actor of the pool could not load the program: {type(error).__name__}: {error}")

    def ready(self) -> int:
        """This actor's pid once ``__init__`` has run; the user's error if it failed."""
        if self.error is not None:
            raise self.error
        return os.getpid()

    def run(self, lease: int, shard: pa.Table | ShardHandle) -> pa.Table:
        """One shard through the instance; the lease goes back to the registry whatever happens."""
        retire = False
        try:
            if self.error is not None:
                raise self.error
            return run_timed(self.program, shard)
        except MemoryLimitError:
            retire = True  # its memory may not come back: replace the actor
            raise
        finally:
            self.registry.release.remote(self.pool_id, lease, retire)


@dataclass
class _Worker:
    index: int
    handle: Any
    ready: bool = False
    pid: int | None = None
    leases: set[int] = field(default_factory=set)


class _Pool:
    """One call's pool inside the registry (all on the registry's event loop)."""

    def __init__(self, pool_id: str, spec: PoolSpec, registry: PoolRegistry) -> None:
        self.pool_id = pool_id
        self.spec = spec
        self.registry = registry
        self.workers: dict[int, _Worker] = {}
        self.leases: dict[int, int] = {}  # lease -> worker index
        self.next_index = 0
        self.next_lease = 0
        self.error: BaseException | None = None
        self.closed = False
        self.waiting = 0
        self.changed = asyncio.Condition()
        self.last_active = time.monotonic()

    def busy(self) -> bool:
        return bool(self.leases) or self.waiting > 0

    async def acquire(self) -> tuple[int, int, Any]:
        async with self.changed:
            self.waiting += 1
            try:
                while True:
                    if self.error is not None:
                        raise self.error
                    if self.closed:
                        raise PoolError(f"the actor pool of {self.spec.label} was closed")
                    self._grow()
                    ready = [w for w in self.workers.values() if w.ready and len(w.leases) < PER_ACTOR]
                    if ready:
                        worker = min(ready, key=lambda w: (len(w.leases), w.index))
                        lease = self.next_lease
                        self.next_lease += 1
                        worker.leases.add(lease)
                        self.leases[lease] = worker.index
                        self.last_active = time.monotonic()
                        return lease, worker.index, worker.handle
                    await self.changed.wait()
            finally:
                self.waiting -= 1

    def _grow(self) -> None:
        if not self.workers:
            self.registry.give_way(self)
            for _ in range(self.spec.min_size):
                self._start()
            return
        if len(self.workers) >= self.spec.max_size:
            return
        if any(not w.ready for w in self.workers.values()):
            return  # one at a time: wait for the one starting
        if all(w.leases for w in self.workers.values()):
            self.registry.give_way(self)
            self._start()

    def _start(self) -> None:
        index = self.next_index
        self.next_index += 1
        remote = _remote_worker_class().options(
            **self.spec.actor_options,
            name=f"spark_ray_pool_{self.pool_id}_{index}",
            namespace=self.registry.namespace,
            max_concurrency=1,
        )
        handle = remote.remote(self.spec.program_blob, self.registry.handle(), self.pool_id)
        worker = _Worker(index, handle)
        self.workers[index] = worker
        asyncio.get_running_loop().create_task(self._watch_start(worker))

    async def _watch_start(self, worker: _Worker) -> None:
        import ray

        error: BaseException | None = None
        try:
            worker.pid = await worker.handle.ready.remote()
        except ray.exceptions.RayTaskError as failure:
            cause = failure.cause
            error = cause if isinstance(cause, SparkRayError) else PoolError(f"{self.spec.label}: {failure}")
        except ray.exceptions.RayActorError as failure:
            if self.workers.get(worker.index) is not worker:
                return  # stopped on purpose while it started
            error = PoolError(f"an actor of the pool of {self.spec.label} died while starting: {failure}")
        async with self.changed:
            if self.workers.get(worker.index) is not worker:
                return
            if error is None:
                worker.ready = True
            else:
                self.error = self.error or error
                self._stop(worker)
            self.changed.notify_all()

    async def release(self, lease: int, retire: bool) -> None:
        async with self.changed:
            index = self.leases.pop(lease, None)
            worker = self.workers.get(index) if index is not None else None
            if worker is not None:
                worker.leases.discard(lease)
                if retire:
                    self._retire(worker)
            self.last_active = time.monotonic()
            self.changed.notify_all()

    async def lost(self, index: int) -> None:
        """A caller saw this actor die: forget it (its leases with it), so a new one can start."""
        async with self.changed:
            worker = self.workers.get(index)
            if worker is not None:
                self._stop(worker)
            self.changed.notify_all()

    def _forget(self, worker: _Worker) -> None:
        self.workers.pop(worker.index, None)
        for lease in worker.leases:
            self.leases.pop(lease, None)

    def _stop(self, worker: _Worker) -> None:
        self._forget(worker)
        self._kill(worker.handle)

    def _retire(self, worker: _Worker) -> None:
        """Take the actor out of the pool now, and kill it a little later.

        The actor asks for this from inside the call that failed, before that
        call's error has reached its caller; killed at once, the caller would
        get Ray's "actor died" instead of the user's error.
        """
        self._forget(worker)

        async def kill_later() -> None:
            await asyncio.sleep(RETIRE_GRACE_S)
            self._kill(worker.handle)

        self.registry.keep(asyncio.get_running_loop().create_task(kill_later()))

    def _kill(self, handle: Any) -> None:
        import ray

        try:
            ray.kill(handle, no_restart=True)
        except Exception as error:  # noqa: BLE001 - already gone is fine
            log.debug("stopping an actor of %s: %s", self.spec.label, error)

    async def stop_workers(self) -> None:
        async with self.changed:
            for worker in list(self.workers.values()):
                self._stop(worker)
            self.changed.notify_all()

    async def close(self) -> None:
        self.closed = True
        await self.stop_workers()


class PoolRegistry:
    """The driver's one actor that owns every pool of its calls (an async actor, no CPU)."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.pools: dict[str, _Pool] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._handle: Any = None
        self._background: set[asyncio.Task[None]] = set()

    def keep(self, task: asyncio.Task[None]) -> None:
        """Hold a reference to a background task until it ends (the event loop keeps only weak ones)."""
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def handle(self) -> Any:
        if self._handle is None:
            import ray

            self._handle = ray.get_runtime_context().current_actor
        return self._handle

    async def open(self, pool_id: str, spec: PoolSpec) -> None:
        """Register the pool and start its ``min`` actors now, so that their ``__init__`` (the model
        load) overlaps the Spark job's own start; unused, they stop after the idle timeout."""
        await self._forget_old_pools()
        pool = self.pools.get(pool_id)
        if pool is None:
            pool = self.pools[pool_id] = _Pool(pool_id, spec, self)
            async with pool.changed:
                pool._grow()
        if self._reaper is None:
            self._reaper = asyncio.get_running_loop().create_task(self._reap())

    async def acquire(self, pool_id: str) -> tuple[int, int, Any]:
        return await self._pool(pool_id).acquire()

    async def release(self, pool_id: str, lease: int, retire: bool = False) -> None:
        pool = self.pools.get(pool_id)
        if pool is not None:
            await pool.release(lease, retire)

    async def lost(self, pool_id: str, index: int) -> None:
        pool = self.pools.get(pool_id)
        if pool is not None:
            await pool.lost(index)

    async def close(self, pool_id: str) -> None:
        pool = self.pools.pop(pool_id, None)
        if pool is not None:
            await pool.close()

    async def close_all(self) -> int:
        pools, self.pools = list(self.pools.values()), {}
        for pool in pools:
            await pool.close()
        return len(pools)

    def give_way(self, starting: _Pool | None, idle_s: float = GIVE_WAY_S) -> list[asyncio.Task[None]]:
        """Stop the actors of pools idle for ``idle_s``, so that ``starting`` (or a new call) gets their resources."""
        now = time.monotonic()
        stopping = [
            asyncio.get_running_loop().create_task(pool.stop_workers())
            for pool in self.pools.values()
            if pool is not starting and pool.workers and not pool.busy() and now - pool.last_active >= idle_s
        ]
        for task in stopping:
            self.keep(task)
        return stopping

    async def make_way(self) -> int:
        """A new call of the driver starts: every pool without work gives its actors back now, however
        briefly idle (a call right after another must not wait out the last one's idle timeout for the
        CPUs and GPUs its actors hold); returns how many did."""
        stopping = self.give_way(None, idle_s=0.0)
        for task in stopping:
            await task
        return len(stopping)

    def _pool(self, pool_id: str) -> _Pool:
        pool = self.pools.get(pool_id)
        if pool is None:
            raise PoolError(
                f"actor pool {pool_id} is not open: it was closed (the call ended, spark_ray.close_pools() ran, "
                "or it was forgotten after too many newer pools); run ray_transform again"
            )
        return pool

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(_REAPER_PERIOD_S)
            now = time.monotonic()
            for pool in list(self.pools.values()):
                if pool.workers and not pool.busy() and now - pool.last_active > pool.spec.idle_timeout_s:
                    await pool.stop_workers()

    async def _forget_old_pools(self) -> None:
        idle = [pool for pool in self.pools.values() if not pool.workers and not pool.busy()]
        for pool in sorted(idle, key=lambda p: p.last_active)[: max(0, len(idle) - MAX_IDLE_POOLS)]:
            await self.close(pool.pool_id)


_REMOTE_CLASSES: dict[str, Any] = {}


def _remote_worker_class() -> Any:
    if "worker" not in _REMOTE_CLASSES:
        import ray

        _REMOTE_CLASSES["worker"] = ray.remote(PoolWorker)
    return _REMOTE_CLASSES["worker"]


def remote_registry_class() -> Any:
    """``PoolRegistry`` as a Ray actor class (made once per process)."""
    if "registry" not in _REMOTE_CLASSES:
        import ray

        _REMOTE_CLASSES["registry"] = ray.remote(PoolRegistry)
    return _REMOTE_CLASSES["registry"]
