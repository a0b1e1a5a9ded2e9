"""Callable classes in an actor pool: ``__init__`` once per actor, ``__call__`` once per shard.

This is Ray Data's ``map_batches(Model, concurrency=...)`` for a Spark table.
A model is loaded once per actor, not once per shard or per Spark partition,
and every partition of one ``ray_transform`` call, in the executors or
through the driver, shares the same pool.

The driver's side and the callers' side live here; the actors' side (the
registry, the pools, their actors, and the rules by which pools grow and give
way) is ``pool_actors``.

* The driver owns a single ``PoolRegistry`` actor, named
  ``spark_ray_pools_<driver job id>`` in the call's namespace, and holds its
  handle (``cluster.driver_actor``): Ray collects an actor once no handle to
  it is left.
* Spark workers find the registry by name. Actor handles cannot travel in the
  Spark task's closure: the closure is unpickled before the worker has joined
  Ray, and unpickling a handle needs a connected worker (Ray's
  ``ActorHandle._deserialization_helper``).
* A caller's ``PoolRunner`` leases a call slot from the registry for each
  shard and sends the shard to that slot's actor.

Lifetime: with run_in="driver" the call is eager, and its pool is closed when
the call returns. With run_in="executor" the result is lazy and Spark never
says when a DataFrame is done with, so the pool stops its actors after
``actor_idle_timeout`` seconds without a lease (a later action starts them
again, loading the model again), at once when the same driver starts a new
call while it has no work, and when another pool needs to grow while this
one has been idle for a second (actors hold their CPUs and GPUs while alive:
a finished call's pool would otherwise hold up the next call's tasks for its
whole idle timeout).
``spark_ray.close_pools()`` stops them all now; ``spark_ray.shutdown()`` and
the driver's exit end the registry, and with it every pool.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from .errors import ConfigError, MemoryLimitError, PoolError, RayWorkLostError
from .pool_actors import PER_ACTOR, PoolSpec, remote_registry_class
from .ray_results import task_result

if TYPE_CHECKING:
    from .conf import RayTransformConf
    from .shard_server import ShardHandle

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PoolRef:
    """How any process of the call reaches its pool: by the registry's name, then the pool's id."""

    registry: str
    namespace: str
    pool_id: str
    call_options: dict[str, Any] = field(default_factory=dict)
    max_size: int = 1
    max_retries: int | None = None  # the call's, for an error that says whether Ray retried

    @property
    def call_slots(self) -> int:
        """Calls the pool runs or queues at once when at full size."""
        return self.max_size * PER_ACTOR


# --------------------------------------------------------------------------- the driver's side


def registry_name() -> str:
    """The registry of this driver's Ray connection (one per driver job)."""
    import ray

    return f"spark_ray_pools_{ray.get_runtime_context().get_job_id()}"


def _registry(create: bool = True) -> Any:
    """The driver's registry; the driver holds its handle, or Ray would collect it (named or not)."""
    import ray

    from .cluster import driver_actor

    name = registry_name()
    namespace = ray.get_runtime_context().namespace
    if not create:
        try:
            return ray.get_actor(name, namespace=namespace)
        except ValueError:
            return None
    return driver_actor(
        name,
        lambda: (
            remote_registry_class()
            .options(name=name, namespace=namespace, get_if_exists=True, num_cpus=0, max_concurrency=1000)
            .remote(namespace)
        ),
    )


def pool_size(conf: RayTransformConf, actor_options: dict[str, Any]) -> tuple[int, int]:
    """(min, max) actors: ``concurrency`` as given, else 1 up to as many as the cluster holds.

    Raises:
        ConfigError: the embedded Ray cannot hold even one actor of this shape.
    """
    import ray

    from .ray_options import how_many_fit, resource_shape

    total = ray.cluster_resources()
    missing = {name: amount for name, amount in resource_shape(actor_options).items() if total.get(name, 0.0) < amount}
    if missing:
        message = (
            f"each actor of the pool needs {missing}, but the Ray cluster has "
            f"{ {name: total.get(name, 0.0) for name in missing} }"
        )
        if conf.requested_address() is None:
            raise ConfigError(message + " (the embedded Ray: size it with local_ray_cpus, or ask for less)")
        log.warning("%s; the pool waits for the cluster to grow", message)
    if conf.concurrency is None:
        return 1, how_many_fit(actor_options, total)
    if isinstance(conf.concurrency, tuple):
        return conf.concurrency
    return conf.concurrency, conf.concurrency


def open_pool(
    job_id: str,
    program_blob: bytes,
    conf: RayTransformConf,
    label: str,
    registry: tuple[str, str] | None = None,
    start: bool = True,
) -> tuple[PoolRef, PoolSpec]:
    """Register the call's pool with the driver's registry, which starts its ``min`` actors now.

    With ``start=False`` the pool is only described: the first ``reopen_pool`` (a Spark worker's
    first partition) opens it, so a function registered for later queries loads its model when a
    query needs it, not at registration (where it would stop again after ``actor_idle_timeout``).

    ``registry`` (name, namespace) names the driver's registry from a Spark worker (the generic SQL
    table function learns its code there); without it, the driver's own registry is found or made.

    Returns:
        How callers reach the pool, and what reopens it (``reopen_pool``).

    Raises:
        ConfigError: an option the pool's actors cannot take, or a pool the cluster cannot hold.
        PoolError: ``registry`` is gone (the driver that made it disconnected).
    """
    import ray

    from .ray_options import actor_options

    options, call_options = actor_options(conf)
    low, high = pool_size(conf, options)
    spec = PoolSpec(program_blob, options, low, high, conf.actor_idle_timeout, label)
    if registry is None:
        handle, name, namespace = _registry(), registry_name(), ray.get_runtime_context().namespace
    else:
        name, namespace = registry
        handle = _registry_by_name(name, namespace)
    if start:
        ray.get(handle.open.remote(job_id, spec))
    return PoolRef(name, namespace, job_id, call_options, high, conf.max_retries), spec


def reopen_pool(ref: PoolRef, spec: PoolSpec) -> None:
    """Open ``ref``'s pool again if it was closed (``close_pools``, or forgotten after many newer pools);
    nothing when it is open. A call made once and run again later (a lazy result, a registered SQL
    function) then finds its pool, and loads its model again only if the actors had stopped."""
    import ray

    ray.get(_registry_by_name(ref.registry, ref.namespace).open.remote(ref.pool_id, spec))


def _registry_by_name(name: str, namespace: str) -> Any:
    import ray

    try:
        return ray.get_actor(name, namespace=namespace)
    except ValueError:
        raise PoolError(
            f"the actor pool registry {name} is gone: the driver that made it disconnected from Ray "
            "(spark_ray.shutdown(), or a restart of the embedded Ray); run the call again (or register the "
            "SQL function again)"
        ) from None


def driver_registry() -> tuple[str, str]:
    """The (name, namespace) of this driver's pool registry, made now if needed: what a Spark worker
    needs to open a pool that the driver, not the worker, owns."""
    import ray

    _registry()
    return registry_name(), ray.get_runtime_context().namespace


def make_way_for_a_new_call() -> None:
    """Stop the actors of this driver's idle pools before a new call starts its Ray work.

    Actors keep their CPUs and GPUs while alive; without this, the tasks of
    the next call would wait for an idle pool's ``actor_idle_timeout``. Costs
    nothing when this driver has made no pool in this Ray session.
    """
    import ray

    from .cluster import has_driver_actor

    if not ray.is_initialized() or not has_driver_actor(registry_name()):
        return
    registry = _registry(create=False)
    if registry is not None:
        ray.get(registry.make_way.remote())


def close_pool(ref: PoolRef) -> None:
    """Stop the pool's actors and forget it (the end of an eager call)."""
    import ray

    registry = _registry(create=False)
    if registry is not None:
        ray.get(registry.close.remote(ref.pool_id))


def close_pools() -> int:
    """Stop every actor pool of this driver now; returns how many pools there were.

    Pools of lazy (run_in="executor") results otherwise stop their actors
    after ``actor_idle_timeout`` seconds without work. A later action on such
    a result fails with a PoolError naming the pool: run ``ray_transform`` again.
    """
    import ray

    if not ray.is_initialized():
        return 0
    registry = _registry(create=False)
    return int(ray.get(registry.close_all.remote())) if registry is not None else 0


# --------------------------------------------------------------------------- the callers' side


class PoolRunner:
    """A ``BatchRunner`` over a pool: lease a slot, send the shard to that actor, collect in order.

    ``submit`` blocks while every slot of the pool is taken: the pool, not the
    caller's window, bounds the work in flight.
    """

    def __init__(self, ref: PoolRef) -> None:
        import ray

        self.ref = ref
        try:
            self.registry = ray.get_actor(ref.registry, namespace=ref.namespace)
        except ValueError:
            raise PoolError(
                f"the actor pool {ref.pool_id} is gone: the driver that made it disconnected from Ray "
                "(spark_ray.shutdown(), or a restart of the embedded Ray); run ray_transform again"
            ) from None
        self._calls: dict[Any, tuple[int, int]] = {}  # ObjectRef -> (lease, actor index)

    def submit(self, shard: pa.Table | ShardHandle) -> Any:
        """Lease a slot and start the shard on that actor; returns the call's ObjectRef."""
        lease, index, actor = task_result(self.registry.acquire.remote(self.ref.pool_id))
        ref = actor.run.options(**self.ref.call_options).remote(lease, shard)
        self._calls[ref] = (lease, index)
        return ref

    def collect(self, ref: Any) -> pa.Table:
        _, index = self._calls.pop(ref, (None, -1))
        try:
            return task_result(ref, where=f"a shard on actor {index} of the pool", retries=self.ref.max_retries)
        except (RayWorkLostError, MemoryLimitError):  # the actor died, or was retired: the pool must forget it
            self.registry.lost.remote(self.ref.pool_id, index)
            raise

    def abandon(self, ref: Any) -> None:
        import ray

        lease, _ = self._calls.pop(ref, (None, -1))
        ray.cancel(ref, force=False)
        if lease is not None:
            self.registry.release.remote(self.ref.pool_id, lease, False)
