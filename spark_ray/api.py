"""ray_transform: run Python on Ray over a Spark DataFrame, get a DataFrame back."""

from __future__ import annotations

import contextlib
import logging
import uuid
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from pyspark import SparkContext
from pyspark.sql import DataFrame
from pyspark.sql.types import StructType

from . import cluster
from .code_string import function_from_code
from .conf import RayTransformConf, resolve_conf
from .context import PythonContext
from .errors import ConfigError
from .schema import parse_schema, to_arrow_schema
from .user_code import ShardProgram, UserFunction, pickle_program

log = logging.getLogger(__name__)


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
        mode: "data" (default; map every shard). "model" is not available yet.
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
        >>> out = ray_transform(df, lambda row: {"id": row["id"] * 2}, "id long")  # doctest: +SKIP
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
    _warn_about_python_env(conf)
    user, conf = _user_function(code, conf, explicit_address="ray_address" in call_options or "rayAddress" in call_options)
    if conf.mode == "model":
        raise ConfigError("mode='model' is not implemented yet; use mode='data'")
    return _transform(df, struct, user, conf)


def _user_function(
    code: Callable[..., Any] | str, conf: RayTransformConf, explicit_address: bool
) -> tuple[UserFunction, RayTransformConf]:
    """The function to run, and the conf adjusted by what a code string asked for."""
    if not isinstance(code, str):
        return UserFunction.from_callable(code, conf.kind), conf
    context = PythonContext({key: str(value) for key, value in vars(conf).items() if value is not None})
    user = function_from_code(code, context)
    if not context.connected:
        return user, conf
    asked = context.requested_address
    if explicit_address or conf.ray_address is not None:
        if asked is not None and asked != conf.ray_address:
            warnings.warn(
                f"the code string connects to {asked!r}, but ray_address={conf.ray_address!r} was given; "
                "using the given address",
                stacklevel=3,
            )
        return user, conf
    if asked is None:  # pyjava: connect(context, None) runs without Ray
        return user, conf.replace(python_mode="python")
    return user, conf.replace(ray_address=asked)


def _transform(df: DataFrame, struct: StructType, user: UserFunction, conf: RayTransformConf) -> DataFrame:
    arrow_schema = to_arrow_schema(struct)
    program_blob = pickle_program(ShardProgram(user, arrow_schema, env=conf.env_vars()))
    job_id = uuid.uuid4().hex
    ray_spec = cluster.ensure_driver_ray(conf) if conf.uses_ray else None
    label = user.label.split(" (")[0].removeprefix("function ")
    if conf.run_in == "executor" or ray_spec is None:
        from .executor_path import run_in_executors

        return run_in_executors(
            df,
            struct,
            job_id=job_id,
            program_blob=program_blob,
            ray_spec=ray_spec,
            task_options=conf.ray_task_options(),
            window=conf.max_in_flight or 2,
            max_bytes=conf.batch_bytes,
            max_rows=conf.batch_rows,
            label=label,
        )
    from .driver_path import run_on_driver
    from .runners import RayRunner

    window = conf.max_in_flight or max(2, int(_ray_cpus()))
    runner = RayRunner(job_id, program_blob, conf.ray_task_options(), window)
    description = conf.job_description or f"spark-ray ray_transform[{label}] run_in=driver mode={conf.mode}"
    group = conf.job_group or f"spark-ray-{job_id}"
    with spark_job_group(df.sparkSession.sparkContext, group, description):
        return run_on_driver(
            df, struct, runner, max_bytes=conf.batch_bytes, max_rows=conf.batch_rows, spill_dir=conf.spill_dir
        )


_WARNED: set[str] = set()


def _warn_about_python_env(conf: RayTransformConf) -> None:
    """Byzer scripts name interpreters and conda envs of their old cluster: say once that they are not used."""
    import os
    import sys

    notes = []
    if conf.python_exec and os.path.realpath(conf.python_exec) != os.path.realpath(sys.executable):
        notes.append(f"pythonExec={conf.python_exec!r} is not this interpreter ({sys.executable}); using this one")
    for name in conf.activations():
        if not os.path.isdir(name) and not os.path.isdir(os.path.join(sys.prefix, "envs", name)):
            notes.append(f"PYTHON_ENV activates {name!r}, which does not exist here; using the current environment")
    for note in notes:
        if note not in _WARNED:
            _WARNED.add(note)
            warnings.warn(note, stacklevel=4)


def _ray_cpus() -> float:
    import ray

    return ray.cluster_resources().get("CPU", 1.0)


@contextlib.contextmanager
def spark_job_group(sc: SparkContext, group_id: str, description: str) -> Iterator[None]:
    """Name the Spark jobs started inside, then restore the caller's group and description."""
    keys = ("spark.jobGroup.id", "spark.job.description", "spark.job.interruptOnCancel")
    previous = {key: sc.getLocalProperty(key) for key in keys}
    sc.setJobGroup(group_id, description, interruptOnCancel=True)
    try:
        yield
    finally:
        for key, value in previous.items():
            sc.setLocalProperty(key, value)  # type: ignore[arg-type]  # None removes it
