"""ray_transform: run Python on Ray over a Spark DataFrame, get a DataFrame back.

The door of the DataFrame API: it checks the call, resolves its options for
the door the call takes (``doors``: executor path, driver path, model mode),
and hands the work to the core (``call_plan``, ``pipeline``) and the path that
moves the data (``executor_path``, ``driver_path``, ``model_mode``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql.types import StructType

from . import cluster
from .call_plan import build_program, plan_runner, ray_cpus, shard_flow, window_size
from .code_string import user_function
from .conf import RayTransformConf, door_options, resolve_conf
from .convert import spark_safe_input
from .doors import data_door
from .environment import warn_about_python_env
from .errors import ConfigError
from .jobs import new_job_id
from .schema import parse_schema
from .spark_session_kind import kind_of
from .user_code import UserFunction


def ray_transform(
    df: DataFrame,
    code: Callable[..., Any] | str,
    schema: str | StructType | None = None,
    mode: str | None = None,
    run_in: str | None = None,
    *,
    kind: str | None = None,
    batch_format: str | None = None,
    batch_size: int | None = None,
    concurrency: int | tuple[int, int] | None = None,
    tasks_per_partition: int | None = None,
    fn_constructor_args: tuple[Any, ...] | list[Any] | None = None,
    fn_constructor_kwargs: dict[str, Any] | None = None,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    memory: int | None = None,
    resources: dict[str, float] | None = None,
    max_retries: int | None = None,
    py_executor_memory: int | None = None,
    runtime_env: dict[str, Any] | None = None,
    ray_address: str | None = None,
    python_mode: str | None = None,
    batch_bytes: int | None = None,
    batch_rows: int | None = None,
    **ray_remote_args: Any,
) -> DataFrame:
    """Run ``code`` over ``df`` on Ray and return a DataFrame of ``schema``.

    Args:
        df: the input table.
        code: a callable (see ``kind``), a callable class (an actor pool, Ray Data's way: ``__init__``
            once per actor), or Python source in the pyjava style
            (``ray_context = RayContext.connect(context, address)`` then
            ``ray_context.foreach(fn)``, ``map_iter(fn)`` or ``map_batches(fn, batch_format=...)``).
        schema: the output schema: ``st(field(id,long),...)``, Spark's JSON
            schema, a DDL string (``id long, name string``) or a StructType.
            None takes the ``schema`` option (session or Spark conf).
        mode: "data" (default; map every shard) or "model" (the code runs once,
            reads any shard through the context and sets the output).
        run_in: "executor" (default; Spark's Python workers feed Ray) or
            "driver" (the driver streams the table to Ray).
        kind, batch_format, batch_size: how the function sees the data: "row" (a dict per row),
            "rows" (an iterator of dicts), "arrow" (Ray Data's ``batch_format="pyarrow"``),
            "pandas"; ``batch_size`` rows per call of a batch function.
        concurrency: Ray tasks in flight for the whole call (a function), or the actor pool's
            size, an int or ``(min, max)`` (a callable class).
        tasks_per_partition: Ray tasks in flight per Spark partition, when set.
        fn_constructor_args, fn_constructor_kwargs: a callable class's ``__init__`` arguments.
        num_cpus, num_gpus, memory, resources, max_retries: Ray's options of each task or actor.
        py_executor_memory: an enforced cap, in MB, on the private memory of each process
            running the code (Byzer's option).
        runtime_env, ray_address: the Ray connection (``ray://host:10001``, ``host:6379``,
            ``"spark"`` for Ray on Spark; None: the embedded Ray).
        python_mode: "ray" (default) or "python" (run in Spark's workers, no Ray).
        batch_bytes, batch_rows: the size of a shard (one Ray task's input).
        **ray_remote_args: any other option of ``spark_ray.conf.RayTransformConf`` (Byzer's
            names too: ``runIn="driver"``), and any other option of ``ray.remote``
            (``max_concurrency=...``, ``label_selector=...``), Ray Data's catch-all.

    Returns:
        A DataFrame with ``schema``. In executor mode it is lazy like any
        mapInArrow result; in driver mode the work runs now and the result is
        locally checkpointed.

    Raises:
        ConfigError: an option this door cannot honour (named, with the doors that do), or a
            value that cannot be read, before any work.

    Example:
        out = ray_transform(df, lambda row: {"id": row["id"] * 2}, "id long")
    """
    if not isinstance(df, DataFrame):
        raise TypeError(f"ray_transform expects a pyspark DataFrame as df, got {type(df).__name__}")
    arguments = dict(locals())
    knobs = {
        name: value for name, value in arguments.items() if name not in ("df", "code", "schema", "ray_remote_args")
    }
    conf = resolve_conf(df.sparkSession, door_options(knobs, ray_remote_args))
    conf.check_door(data_door(conf.mode, conf.run_in))
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
    """Data mode: the core plans the call (program, runner, window), then the path moves the data."""
    df, input_names = spark_safe_input(df)
    program_blob = build_program(user, struct, conf, input_names)
    ray_spec = cluster.ensure_driver_ray(conf) if conf.uses_ray else None
    if ray_spec is not None:
        from .actor_pool import make_way_for_a_new_call

        make_way_for_a_new_call()
    runner = plan_runner(user, program_blob, conf, ray_spec, new_job_id())
    slots = kind_of(df.sparkSession).default_parallelism()
    window = window_size(conf, slots, ray_cpus() if ray_spec is not None else 1.0, runner.pool)
    flow = shard_flow(conf, window, ray=ray_spec is not None)
    if conf.run_in == "driver" and ray_spec is not None:
        from .driver_path import run_on_driver

        try:
            return run_on_driver(df, struct, runner=runner, flow=flow, conf=conf, label=user.short_name)
        finally:
            if runner.pool is not None:
                from .actor_pool import close_pool

                close_pool(runner.pool)
    from .executor_path import run_in_executors

    return run_in_executors(df, struct, runner=runner, flow=flow, label=user.short_name)
