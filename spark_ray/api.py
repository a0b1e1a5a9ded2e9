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
from .environment import warn_about_python_env
from .errors import ConfigError
from .jobs import new_job_id
from .pickling import pickle_with_user_module
from .schema import parse_schema, to_arrow_schema
from .shard_program import ShardProgram
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
            ``python_mode="python"``, ``batch_bytes=64 << 20``.

    Returns:
        A DataFrame with ``schema``. In executor mode it is lazy like any
        mapInArrow result; in driver mode the work runs now and the result is
        locally checkpointed.

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
    """Data mode: the shard program, pickled once, then the path that runs it."""
    program = ShardProgram(user, to_arrow_schema(struct), env=conf.env_vars())
    program_blob = pickle_with_user_module(program, user.fn)
    ray_spec = cluster.ensure_driver_ray(conf) if conf.uses_ray else None
    job_id = new_job_id()
    label = user.short_name
    if conf.run_in == "driver" and ray_spec is not None:
        from .driver_path import run_on_driver

        return run_on_driver(df, struct, job_id=job_id, program_blob=program_blob, conf=conf, label=label)
    from .executor_path import run_in_executors

    return run_in_executors(
        df, struct, job_id=job_id, program_blob=program_blob, ray_spec=ray_spec, conf=conf, label=label
    )
