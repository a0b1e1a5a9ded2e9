"""ray_transform: run Python on Ray over a Spark DataFrame, get a DataFrame back."""

from __future__ import annotations

import contextlib
import logging
import tempfile
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
from .context import _UNSET, PythonContext
from .data_server import DataServer
from .errors import ConfigError
from .model_mode import ModelProgram, model_partition_function, requested_address_in
from .schema import parse_schema, to_arrow_schema
from .user_code import ShardProgram, UserFunction, pickle_with_user_module

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
    if conf.mode == "model":
        if isinstance(code, str):
            conf = apply_code_address(requested_address_in(code), conf)
        elif not callable(code):
            raise TypeError(f"code must be a callable or a string of Python source, got {type(code).__name__}")
        return _transform_model(df, struct, code, conf)
    user, conf = user_function(code, conf)
    return _transform(df, struct, user, conf)


def user_function(code: Callable[..., Any] | str, conf: RayTransformConf) -> tuple[UserFunction, RayTransformConf]:
    """The data-mode function to run, and the conf adjusted by what a code string asked for.

    Shared with the SQL table function, so both follow one rule for the code's own address.
    """
    if not isinstance(code, str):
        return UserFunction.from_callable(code, conf.kind), conf
    context = PythonContext(_conf_strings(conf))
    user = function_from_code(code, context)
    return user, apply_code_address(context.requested_address, conf)


def _conf_strings(conf: RayTransformConf) -> dict[str, str]:
    return {key: str(value) for key, value in vars(conf).items() if value is not None}


def apply_code_address(asked: Any, conf: RayTransformConf) -> RayTransformConf:
    """Byzer code names its own Ray address; a configured ray_address wins, with a warning."""
    if asked is _UNSET:
        return conf
    if conf.ray_address is not None:
        if asked is not None and asked != conf.ray_address:
            warnings.warn(
                f"the code string connects to {asked!r}, but ray_address={conf.ray_address!r} was given; "
                "using the given address",
                stacklevel=4,
            )
        return conf
    if asked is None:  # pyjava: connect(context, None) runs without Ray
        return conf.replace(python_mode="python")
    return conf.replace(ray_address=asked)


def _server_host(conf: RayTransformConf) -> str | None:
    """Where data servers listen: as configured, loopback when Ray is local, else Ray's node address."""
    if conf.data_server_host:
        return conf.data_server_host
    if not conf.uses_ray or cluster.requested_address(conf) is None:
        return "127.0.0.1"
    return None


def _transform_model(
    df: DataFrame, struct: StructType, code: Callable[..., Any] | str, conf: RayTransformConf
) -> DataFrame:
    """Model mode: run the program once, on the driver or in one Spark task, and checkpoint its output."""
    ray_spec = cluster.ensure_driver_ray(conf) if conf.uses_ray else None
    program = ModelProgram(
        code=code,
        schema=to_arrow_schema(struct),
        conf_strings=_conf_strings(conf),
        env=conf.env_vars(),
        server_host=_server_host(conf),
        idle_timeout_s=conf.data_server_idle_timeout,
        max_bytes=conf.batch_bytes,
        max_rows=conf.batch_rows,
        spill_parent=conf.spill_dir,
    )
    input_schema = to_arrow_schema(df.schema)
    spark = df.sparkSession
    description = conf.job_description or f"spark-ray ray_transform[model] run_in={conf.run_in}"
    with spark_job_group(spark.sparkContext, conf.job_group or f"spark-ray-{uuid.uuid4().hex}", description):
        if conf.run_in == "driver":
            from .driver_path import stream_table, tables_to_dataframe

            batches = (b for table in stream_table(df, conf.batch_bytes, conf.batch_rows) for b in table.to_batches())
            return tables_to_dataframe(spark, enumerate(program.run(batches, input_schema)), struct, conf.spill_dir)
        blob = pickle_with_user_module(program, code)
        run_model = model_partition_function(blob, input_schema, ray_spec)
        # Eager: the program runs once, now, in a single Spark task, not again on every action.
        return df.coalesce(1).mapInArrow(run_model, struct).localCheckpoint(eager=True)


def _transform(df: DataFrame, struct: StructType, user: UserFunction, conf: RayTransformConf) -> DataFrame:
    arrow_schema = to_arrow_schema(struct)
    program_blob = pickle_with_user_module(ShardProgram(user, arrow_schema, env=conf.env_vars()), user.fn)
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

    window = conf.max_in_flight or 2
    runner = RayRunner(job_id, program_blob, conf.ray_task_options(), window)
    description = conf.job_description or f"spark-ray ray_transform[{label}] run_in=driver mode={conf.mode}"
    group = conf.job_group or f"spark-ray-{job_id}"
    host = _server_host(conf) or ray_node_address()
    with (
        spark_job_group(df.sparkSession.sparkContext, group, description),
        tempfile.TemporaryDirectory(prefix="spark-ray-intake-", dir=conf.spill_dir) as intake,
        DataServer(host, conf.data_server_idle_timeout, intake_dir=intake) as server,
    ):
        return run_on_driver(
            df, struct, runner, server, window=window, max_bytes=conf.batch_bytes, max_rows=conf.batch_rows, label=label
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


def ray_node_address() -> str:
    import ray

    return ray.util.get_node_ip_address()


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
