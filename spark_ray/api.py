"""ray_transform: run Python on Ray over a Spark DataFrame, get a DataFrame back.

This module only checks the call and sends it down one path: model mode
(``model_mode``), or data mode in the executors (``executor_path``) or
through the driver (``driver_path``). Options and their defaults are in
``conf``; the Ray connection is in ``cluster``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql.types import StructType

from . import cluster
from .code_string import user_function
from .conf import RayTransformConf, resolve_conf
from .convert import spark_safe_input
from .environment import warn_about_python_env
from .errors import ConfigError
from .jobs import new_job_id
from .pickling import pickle_with_user_module
from .schema import parse_schema, to_arrow_schema
from .shard_program import ShardProgram
from .spark_session_kind import kind_of
from .user_code import UserFunction


def ray_transform(
    df: DataFrame,
    code: Callable[..., Any] | str,
    schema: str | StructType | None = None,
    mode: str | None = None,
    run_in: str | None = None,
    **options: Any,
) -> DataFrame:
    """Run ``code`` over ``df`` on Ray and return a DataFrame of ``schema``.

    Args:
        df: the input table.
        code: a callable (see ``kind``) or Python source in the pyjava style
            (``ray_context = RayContext.connect(context, address)`` then
            ``ray_context.foreach(fn)`` or ``ray_context.map_iter(fn)``).
        schema: the output schema: ``st(field(id,long),...)``, Spark's JSON
            schema, a DDL string (``id long, name string``) or a StructType.
            None takes the ``schema`` option (session or Spark conf).
        mode: "data" (default; map every shard) or "model" (the code runs once,
            reads any shard through the context and sets the output).
        run_in: "executor" (default; Spark's Python workers feed Ray) or
            "driver" (the driver streams the table to Ray).
        **options: any field of :class:`spark_ray.conf.RayTransformConf`, e.g.
            ``kind="arrow"``, ``ray_address="ray://host:10001"``,
            ``python_mode="python"``, ``batch_bytes=64 << 20``, Ray's
            ``num_gpus=1`` or ``ray_remote_args={...}``, a callable class's
            ``concurrency=(1, 4)`` and ``fn_constructor_kwargs={...}``, or a
            memory cap ``py_executor_memory=2048`` (MB).

    Returns:
        A DataFrame with ``schema``. In executor mode it is lazy like any
        mapInArrow result; in driver mode the work runs now and the result is
        locally checkpointed.

    A callable class (``code=Model``, or a class passed to ``foreach`` /
    ``map_iter`` in a code string) runs in an actor pool shared by the whole
    call: ``__init__`` once per actor, ``__call__`` once per row or batch as
    ``kind`` says (see ``actor_pool`` for how long the pool lives).

    Example:
        out = ray_transform(df, lambda row: {"id": row["id"] * 2}, "id long")
    """
    if not isinstance(df, DataFrame):
        raise TypeError(f"ray_transform expects a pyspark DataFrame as df, got {type(df).__name__}")
    call_options = dict(options)
    if mode is not None:
        call_options["mode"] = mode
    if run_in is not None:
        call_options["run_in"] = run_in
    conf = resolve_conf(df.sparkSession, call_options)
    if schema is None:
        if conf.schema is None:
            raise ConfigError("no output schema: pass schema=..., or set the schema option for the session")
        schema = conf.schema
    struct = parse_schema(schema)
    warn_about_python_env(conf.python_exec, conf.python_env)
    if conf.mode == "model":
        from .model_mode import run_model

        return run_model(df, struct, code, conf)
    user, conf = user_function(code, conf)
    return _transform_data(df, struct, user, conf)


def _transform_data(df: DataFrame, struct: StructType, user: UserFunction, conf: RayTransformConf) -> DataFrame:
    """Data mode: the shard program, pickled once, then the path that runs it (with the call's
    actor pool when the code is a callable class)."""
    _check_constructor_options(user, conf)
    df, input_names = spark_safe_input(df)
    program = ShardProgram(
        user,
        to_arrow_schema(struct),
        env=conf.env_vars(),
        constructor_args=conf.fn_constructor_args or (),
        constructor_kwargs=dict(conf.fn_constructor_kwargs or {}),
        memory_limit_mb=conf.memory_limit_mb,
        memory_limit_option="py_executor_memory" if conf.py_executor_memory is not None else "memory",
        input_names=input_names,
    )
    program_blob = pickle_with_user_module(program, user.fn)
    ray_spec = cluster.ensure_driver_ray(conf) if conf.uses_ray else None
    job_id = new_job_id()
    label = user.short_name
    pool = None
    if ray_spec is not None:
        from .actor_pool import make_way_for_a_new_call

        make_way_for_a_new_call()
        if user.is_class:
            from .actor_pool import open_pool

            pool = open_pool(job_id, program_blob, conf, user.label)
        else:
            conf.ray_task_options()  # an unknown or conflicting Ray option fails here, not in a task
    window = _window(df, conf, pool) if ray_spec is not None else None
    if conf.run_in == "driver" and ray_spec is not None:
        from .driver_path import run_on_driver

        try:
            return run_on_driver(
                df, struct, job_id=job_id, program_blob=program_blob, conf=conf, label=label, window=window, pool=pool
            )
        finally:
            if pool is not None:
                from .actor_pool import close_pool

                close_pool(pool)
    from .executor_path import run_in_executors

    return run_in_executors(
        df,
        struct,
        job_id=job_id,
        program_blob=program_blob,
        ray_spec=ray_spec,
        conf=conf,
        label=label,
        window=window,
        pool=pool,
    )


def _check_constructor_options(user: UserFunction, conf: RayTransformConf) -> None:
    if user.is_class:
        return
    given = [name for name in ("fn_constructor_args", "fn_constructor_kwargs") if getattr(conf, name) is not None]
    if given:
        raise ConfigError(f"{', '.join(given)} are for a callable class, but {user.label} is not a class")
    if isinstance(conf.concurrency, tuple):
        raise ConfigError(
            f"concurrency={conf.concurrency} is a pool size range, for a callable class; for {user.label} "
            "give an int (Ray tasks in flight per Spark partition)"
        )


def _window(df: DataFrame, conf: RayTransformConf, pool: Any) -> int:
    """Shards in flight per Spark partition: as given (``concurrency`` for a function), else enough
    for the partitions Spark runs at once to keep the Ray CPUs, or the pool, busy."""
    import ray

    from .ray_options import resource_shape
    from .shard_sizing import window_for

    slots = kind_of(df.sparkSession).default_parallelism()
    if pool is not None:
        return window_for(slots, pool.call_slots)
    if isinstance(conf.concurrency, int):
        return conf.concurrency
    shape = resource_shape(conf.ray_task_options())
    cpus = ray.cluster_resources().get("CPU", 1.0)
    return window_for(slots, cpus / shape["CPU"] if shape.get("CPU") else float("inf"))
