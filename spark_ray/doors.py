"""Which door honours which option: the one table every door resolves its options against.

Users reach the core through several doors (``ray_transform`` on either
path, model mode, the generic SQL table function, ``register_function``,
``to_ray_dataset`` / ``from_ray_dataset``; the script language goes through
these). An option given at a door that cannot honour it is refused by name,
before any work, with the doors where it does apply: an option that is taken
and then ignored is a bug the user cannot see.

Only the options given *at the door* are checked (the call's keyword
arguments, a SQL query's options argument, a registration's options). Session
settings and ``spark.ray.*`` Spark conf are defaults shared by every door;
each door takes the ones it honours from them.
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import ConfigError

EXECUTOR = "executor"
DRIVER = "driver"
MODEL = "model"
SQL = "sql"
REGISTERED = "registered"
TO_DATASET = "to_dataset"
FROM_DATASET = "from_dataset"

# How each door is named in an error.
DOOR_NAMES = {
    EXECUTOR: "ray_transform(run_in='executor')",
    DRIVER: "ray_transform(run_in='driver')",
    MODEL: "ray_transform(mode='model')",
    SQL: "the ray_transform SQL table function",
    REGISTERED: "register_function",
    TO_DATASET: "to_ray_dataset",
    FROM_DATASET: "from_ray_dataset",
}
ALL_DOORS = frozenset(DOOR_NAMES)
# Doors that run the user's function shard by shard, in Ray tasks or a callable class's actor pool.
MAPS = frozenset({EXECUTOR, DRIVER, SQL, REGISTERED})
# Doors that run user code at all.
RUNS_CODE = MAPS | {MODEL}
# Doors with a Spark job of their own, which carries a job group and description.
OWN_JOB = frozenset({DRIVER, MODEL, TO_DATASET, FROM_DATASET})
# Doors that serve the table from the driver's data servers.
SERVES = frozenset({DRIVER, MODEL})

_CONNECTION = ("ray_address", "ray_namespace", "runtime_env", "local_ray_cpus", "dashboard", "ray_on_spark")
_MAPPING = (
    "kind", "batch_size", "batch_format", "batch_sizing",
    "num_cpus", "num_gpus", "memory", "resources", "accelerator_type", "max_retries", "retry_exceptions",
    "scheduling_strategy", "ray_remote_args",
    "concurrency", "tasks_per_partition", "fn_constructor_args", "fn_constructor_kwargs", "actor_idle_timeout",
    "py_executor_memory", "enforce_memory",
)  # fmt: skip

# option -> the doors that honour it. Every field of RayTransformConf has a row (a test checks).
HONOURED_AT: dict[str, frozenset[str]] = {
    "mode": RUNS_CODE,
    "run_in": RUNS_CODE,
    "python_mode": RUNS_CODE,
    **{name: ALL_DOORS for name in _CONNECTION},
    **{name: MAPS for name in _MAPPING},
    "batch_bytes": MAPS | {MODEL, TO_DATASET},
    "batch_rows": MAPS | {MODEL, TO_DATASET},
    "spill_dir": SERVES,
    "data_server_host": SERVES,
    "data_server_idle_timeout": SERVES,
    "job_group": OWN_JOB,
    "job_description": OWN_JOB,
    "schema": RUNS_CODE,
    "python_exec": RUNS_CODE,
    "python_env": RUNS_CODE,
    "script_conf": RUNS_CODE,
}


def doors_for(option: str) -> frozenset[str]:
    """The doors that honour ``option`` (a field name of ``RayTransformConf``)."""
    return HONOURED_AT.get(option, frozenset())


def check_door(given: Iterable[str], door: str) -> None:
    """Refuse the first option in ``given`` that ``door`` cannot honour.

    Raises:
        ConfigError: names the option, this door, and the doors where the option applies.

    Example:
        >>> check_door(["batch_bytes"], TO_DATASET)
        >>> check_door(["num_gpus"], TO_DATASET)
        Traceback (most recent call last):
        ...
        spark_ray.errors.ConfigError: option num_gpus does not apply to to_ray_dataset; it applies to ...
    """
    for option in sorted(given):
        if door not in doors_for(option):
            where = ", ".join(DOOR_NAMES[d] for d in DOOR_NAMES if d in doors_for(option)) or "no door"
            raise ConfigError(
                f"option {option} does not apply to {DOOR_NAMES[door]}; it applies to {where}. "
                "Remove it here, or set it as a session default (set_session_conf) for the doors that use it"
            )


def data_door(mode: str, run_in: str) -> str:
    """The door of a ``ray_transform`` call, from its resolved mode and run_in."""
    if mode == "model":
        return MODEL
    return DRIVER if run_in == "driver" else EXECUTOR
