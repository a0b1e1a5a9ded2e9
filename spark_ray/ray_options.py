"""The Ray options of the tasks and actors a call starts, from its resolved conf.

Users name the common ones as options of their own (``num_cpus``,
``num_gpus``, ``memory``, ``resources``, ``accelerator_type``,
``max_retries``, ``retry_exceptions``, ``scheduling_strategy``) and anything
else Ray takes through ``ray_remote_args={...}``, as Ray Data's
``map_batches`` does. Both land here, are checked against Ray's own table of
options (so a typo fails on the driver, at the call, with a suggestion) and
become the keyword arguments of ``remote_fn.options(...)`` for a task, or
``ActorClass.options(...)`` for the actors of a pool. ``runtime_env`` is the
connection's (``cluster``), which every task and actor inherits; one in
``ray_remote_args`` is added on top, per task or actor.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    from .conf import RayTransformConf

# The named options that are Ray options of the same name, and their defaults
# (a named option left at its default gives way to ray_remote_args).
_NAMED = {
    "num_cpus": 1.0,
    "num_gpus": 0.0,
    "memory": None,
    "resources": None,
    "accelerator_type": None,
    "max_retries": None,
    "retry_exceptions": None,
    "scheduling_strategy": None,
}
# Set by the actor pool itself: a user value would break it.
_POOL_OWNED = ("name", "namespace", "get_if_exists", "lifetime", "max_concurrency")


def _ray_tables() -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Ray's own tables of task and actor options, or None where ray is not imported yet.

    The options are checked on the driver, at the call (connected to Ray by
    then). A Spark worker builds them again before it joins Ray, and must not
    import ray to do it: Ray reads its auth token when imported
    (``cluster.ensure_worker_ray`` sets it first).
    """
    if "ray" not in sys.modules:
        return None
    from ray._common.ray_option_utils import actor_options, task_options

    return task_options, actor_options


# Ray's own task and actor option names (Ray 2.60), for the doors' catch-all before ray is imported
# (importing it early would read the auth settings before spark-ray sets them: see _ray_tables).
_RAY_OPTION_NAMES = frozenset({
    "_actor_generator_backpressure_num_objects", "_generator_backpressure_num_objects", "_labels",
    "_num_objects_per_yield", "accelerator_type", "allow_out_of_order_execution", "concurrency_groups",
    "enable_task_events", "enable_tensor_transport", "fallback_strategy", "get_if_exists", "label_selector",
    "lifetime", "max_calls", "max_concurrency", "max_pending_calls", "max_restarts", "max_retries",
    "max_task_retries", "memory", "name", "namespace", "num_cpus", "num_gpus", "num_returns",
    "object_store_memory", "placement_group", "placement_group_bundle_index",
    "placement_group_capture_child_tasks", "resources", "retry_exceptions", "runtime_env", "scheduling_strategy",
})  # fmt: skip


def is_ray_option(name: str) -> bool:
    """Whether ``name`` is an option of Ray's tasks or actors (Ray's own table once ray is imported)."""
    tables = _ray_tables()
    if tables is None:
        return name in _RAY_OPTION_NAMES
    return name in tables[0] or name in tables[1]


def _named_options(conf: RayTransformConf) -> dict[str, Any]:
    """The named options that are set, with py_executor_memory reserving its memory."""
    named: dict[str, Any] = {}
    for name, default in _NAMED.items():
        value = getattr(conf, name)
        if value is not None and (value != default or name == "num_cpus"):
            named[name] = dict(value) if isinstance(value, dict) else value
    if conf.py_executor_memory is not None and conf.memory is None:
        named["memory"] = conf.py_executor_memory << 20
    return named


def _merge(conf: RayTransformConf, known: dict[str, Any] | None, what: str) -> dict[str, Any]:
    extra = dict(conf.ray_remote_args or {})
    for key in extra:
        if known is not None and key not in known:
            raise ConfigError(
                f"ray_remote_args has {key!r}, which is not an option of Ray {what}.{did_you_mean(key, known)}"
            )
    merged = dict(extra)
    for name, value in _named_options(conf).items():
        if name in extra and extra[name] != value and not (name == "num_cpus" and value == _NAMED["num_cpus"]):
            raise ConfigError(
                f"option {name}={value!r} and ray_remote_args[{name!r}]={extra[name]!r} disagree; set it in one place"
            )
        if name == "num_cpus" and name in extra:
            continue  # the default 1 gives way to ray_remote_args
        merged[name] = value
    return merged


def task_options(conf: RayTransformConf) -> dict[str, Any]:
    """``remote_fn.options(**...)`` of every Ray task of the call: only what is set.

    Raises:
        ConfigError: an unknown key in ray_remote_args, or a key given twice with two values.
    """
    tables = _ray_tables()
    return _merge(conf, tables[0] if tables else None, "tasks")


def actor_options(conf: RayTransformConf) -> tuple[dict[str, Any], dict[str, Any]]:
    """The options of a pool's actors, and of each call to them.

    An actor is not a task: ``max_retries`` becomes the actor's
    ``max_restarts`` (a restart runs ``__init__`` again) and
    ``max_task_retries``; ``retry_exceptions`` goes to each call.

    Returns:
        (``ActorClass.options(**...)``, ``actor.method.options(**...)``).

    Raises:
        ConfigError: an option Ray's actors do not take, or one the pool must set itself.
    """
    tables = _ray_tables()
    translated = {"max_retries", "retry_exceptions"}
    known = {**tables[1], **{key: None for key in translated}} if tables else None
    merged = _merge(conf, known, "actors")
    for key in _POOL_OWNED:
        if key in merged:
            raise ConfigError(f"ray_remote_args[{key!r}] is set by spark-ray's actor pool and cannot be given")
    call: dict[str, Any] = {}
    retries = merged.pop("max_retries", None)
    if retries is not None:
        merged.setdefault("max_restarts", retries)
        merged.setdefault("max_task_retries", retries)
    retry_exceptions = merged.pop("retry_exceptions", None)
    if retry_exceptions is not None:
        call["retry_exceptions"] = retry_exceptions
    return merged, call


def resource_shape(options: dict[str, Any]) -> dict[str, float]:
    """What one task or actor with ``options`` reserves, by Ray resource name."""
    shape: dict[str, float] = {"CPU": float(options.get("num_cpus", 1.0))}
    if options.get("num_gpus"):
        shape["GPU"] = float(options["num_gpus"])
    if options.get("memory"):
        shape["memory"] = float(options["memory"])
    for name, amount in (options.get("resources") or {}).items():
        shape[name] = float(amount)
    return {name: amount for name, amount in shape.items() if amount > 0}


def how_many_fit(options: dict[str, Any], total: dict[str, float]) -> int:
    """How many tasks or actors with ``options`` the cluster's ``total`` resources hold at once (at least 1)."""
    counts = [int(total.get(name, 0.0) // amount) for name, amount in resource_shape(options).items()]
    return max(1, min(counts)) if counts else 1
