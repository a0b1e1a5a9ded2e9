"""The core every mapping door calls: one program builder, one window rule, one runner plan.

A door (``ray_transform``, ``register_function``, the generic SQL table
function) checks its own arguments and resolves its options; then it hands
(user code, output schema, options) to this module, which

* builds the one pickled ``ShardProgram`` (``build_program``): the kind and
  ``batch_size``, a callable class's constructor arguments, the memory cap,
  PYTHON_ENV's variables;
* connects to Ray and, for a callable class, opens the call's actor pool
  (``plan_runner``), so a class loads once per actor at every door;
* sizes the window of shards in flight (``window_size``), with the same
  default at every door, and the shard flow (``shard_flow``).

The generic SQL table function learns its code only in a query, in a Spark
worker: it makes the same calls there (``plan_runner`` with the driver's
pool registry named, since a worker must not own the pool).
"""

from __future__ import annotations

from typing import Any

from pyspark.sql.types import StructType

from .conf import RayTransformConf
from .errors import ConfigError
from .jobs import new_job_id
from .pickling import pickle_with_user_module
from .pipeline import RunnerPlan, ShardFlow
from .schema import to_arrow_schema
from .shard_program import ShardProgram
from .shard_sizing import window_for
from .user_code import UserFunction


def check_user_options(user: UserFunction, conf: RayTransformConf) -> None:
    """Refuse options that cannot apply to this code: a class's options for a function, a batch size per row.

    Raises:
        ConfigError: names the option and the code.
    """
    if not user.is_class:
        given = [name for name in ("fn_constructor_args", "fn_constructor_kwargs") if getattr(conf, name) is not None]
        if given:
            raise ConfigError(f"{', '.join(given)} are for a callable class, but {user.label} is not a class")
        if isinstance(conf.concurrency, tuple):
            raise ConfigError(
                f"concurrency={conf.concurrency} is a pool size range, for a callable class; for {user.label} "
                "give an int (Ray tasks in flight for the whole call)"
            )
    if conf.batch_size is not None and user.kind == "row":
        raise ConfigError(
            f"batch_size={conf.batch_size} is the rows per call of a batch function, but {user.label} is called "
            "once per row (kind='row'); use kind='rows', 'arrow' or 'pandas' (or batch_format=...)"
        )


def build_program(
    user: UserFunction, output: StructType, conf: RayTransformConf, input_names: list[str] | None = None
) -> bytes:
    """The call's ``ShardProgram``, pickled with the user's own module by value (Spark pickles by reference).

    The one place a program is made: every door's program carries the same options.
    """
    check_user_options(user, conf)
    program = ShardProgram(
        user,
        to_arrow_schema(output),
        env=conf.env_vars(),
        constructor_args=conf.fn_constructor_args or (),
        constructor_kwargs=dict(conf.fn_constructor_kwargs or {}),
        memory_limit_mb=conf.memory_limit_mb,
        memory_limit_option="py_executor_memory" if conf.py_executor_memory is not None else "memory",
        input_names=input_names,
        batch_size=conf.batch_size,
    )
    return pickle_with_user_module(program, user.fn)


def plan_runner(
    user: UserFunction,
    program_blob: bytes,
    conf: RayTransformConf,
    ray_spec: Any,
    job_id: str | None = None,
    registry: tuple[str, str] | None = None,
    start_pool: bool = True,
) -> RunnerPlan:
    """How the call's shards run: Ray tasks with the call's options, or its actor pool for a class.

    ``ray_spec`` None runs in place. ``registry`` (name, namespace) is the driver's pool registry,
    for a plan made in a Spark worker; on the driver it is found or made. ``start_pool=False`` leaves
    a class's pool for the first partition to open (a registered function's later queries).

    Raises:
        ConfigError: an unknown or conflicting Ray option (here, not in a task).
    """
    import cloudpickle

    job_id = job_id or new_job_id()
    if ray_spec is None:
        return RunnerPlan(job_id, program_blob, None, cloudpickle.dumps({}))
    if user.is_class:
        from .actor_pool import open_pool

        pool, spec = open_pool(job_id, program_blob, conf, user.label, registry=registry, start=start_pool)
        return RunnerPlan(job_id, program_blob, ray_spec, cloudpickle.dumps({}), pool, spec)
    return RunnerPlan(job_id, program_blob, ray_spec, cloudpickle.dumps(conf.ray_task_options()))


def window_size(conf: RayTransformConf, slots: int, ray_cpus: float, pool: Any = None) -> int:
    """Shards in flight per Spark partition, the same rule at every door.

    ``tasks_per_partition`` as given; else, for a function, ``concurrency`` (the call's total)
    shared by the ``slots`` partitions Spark runs at once; else enough to keep the Ray CPUs
    (``ray_cpus`` over a task's CPUs), or the pool's call slots, busy.
    """
    from .ray_options import resource_shape

    if conf.tasks_per_partition is not None:
        return conf.tasks_per_partition
    if pool is not None:
        return window_for(slots, pool.call_slots)
    if isinstance(conf.concurrency, int):
        return max(1, conf.concurrency // max(1, slots))
    if not conf.uses_ray:
        return 2
    shape = resource_shape(conf.ray_task_options())
    return window_for(slots, ray_cpus / shape["CPU"] if shape.get("CPU") else float("inf"))


def shard_flow(conf: RayTransformConf, window: int, ray: bool = True) -> ShardFlow:
    """The shard cutting of the call's options (sizes from timings only where Ray does the work)."""
    return ShardFlow(
        window=window,
        max_bytes=conf.batch_bytes,
        max_rows=conf.batch_rows,
        batch_size=conf.batch_size,
        adaptive=conf.batch_sizing == "auto" and ray,
    )


def ray_cpus() -> float:
    """The CPUs of the Ray cluster this process is connected to."""
    import ray

    return float(ray.cluster_resources().get("CPU", 1.0))
