"""Every option of ray_transform, in one typed place.

Options arrive through three doors and are resolved in this order, first hit
wins: the call's keyword arguments, the session settings (``set_session_conf``
or a script's ``!python conf``), the Spark conf (``spark.ray.<name>``, so
``spark-submit --conf spark.ray.run_in=driver`` works), then the defaults
below. Byzer's camelCase names (``runIn``, ``dataMode``, ...) are accepted
everywhere as aliases of the snake_case ones.
"""

from __future__ import annotations

import dataclasses
import json
import os
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .environment import activations_of, exports_of
from .errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

SPARK_CONF_PREFIX = "spark.ray."
# RayDP (Spark on Ray) keeps its own settings under the same prefix: they are neither read nor refused here.
RAYDP_CONF_PREFIXES = (
    "spark.ray.raydp_", "spark.ray.log4j.", "spark.ray.actor.resource.", "spark.ray.placement_group",
    "spark.ray.bundle_indexes", "spark.ray.preferClassPath",
)  # fmt: skip


def is_option_key(key: str) -> bool:
    """Whether a Spark conf key names a spark-ray option: ``spark.ray.*``, but not RayDP's settings."""
    return key.startswith(SPARK_CONF_PREFIX) and not key.startswith(RAYDP_CONF_PREFIXES)


MODES = ("data", "model")
RUN_INS = ("executor", "driver")
KINDS = ("row", "rows", "arrow", "pandas")
PYTHON_MODES = ("ray", "python")
BATCH_SIZINGS = ("auto", "fixed")
# Addresses that mean "the embedded Ray of this process" rather than a cluster.
LOCAL_ADDRESSES = (None, "", "local")


@dataclass(frozen=True)
class RayTransformConf:
    """The resolved options of one ray_transform call.

    Attributes:
        mode: "data" maps every shard; "model" runs the code once over all shards.
        run_in: "executor" hands Arrow batches from Spark's Python workers to Ray;
            "driver" streams the table through the driver.
        kind: how a callable sees the data: "row" (a dict per row), "rows" (an
            iterator of dicts per shard), "arrow" (a RecordBatch), "pandas".
        python_mode: "ray" runs the code in Ray tasks; "python" runs it inside
            the Spark Python workers, for machines without Ray.
        ray_address: an existing cluster (``host:6379``, ``ray://host:10001``,
            ``auto``); None or "local" starts or reuses the embedded local Ray;
            "spark" starts Ray on Spark (``ray_on_spark.py``) in this application.
        ray_namespace: the Ray namespace of our connections.
        runtime_env: Ray's runtime_env of our connection, which every task
            and actor we start inherits (env_vars, pip, ...).
        num_cpus, num_gpus, memory, resources, accelerator_type: Ray resources
            of each task, or of each actor of a pool (``memory`` is in bytes and
            only reserved by Ray's scheduler, unless ``enforce_memory``).
        max_retries, retry_exceptions: Ray's retries of a task; for an actor
            pool, ``max_retries`` sets its actors' ``max_restarts`` and
            ``max_task_retries``.
        scheduling_strategy: Ray's scheduling_strategy ("DEFAULT", "SPREAD", or
            a strategy object passed in the call).
        ray_remote_args: any other option of ``ray.remote`` (Ray Data's name),
            for tasks or the pool's actors; checked against Ray's own list.
        concurrency: for a function, Ray tasks in flight per Spark partition
            (None: enough to keep the Ray CPUs busy, at least 2); for a
            callable class, the size of its actor pool, an int or a
            ``(min, max)`` range (None: 1 up to what the cluster can hold).
            ``max_in_flight`` is its old name.
        fn_constructor_args, fn_constructor_kwargs: what a callable class's
            ``__init__`` gets, once per actor.
        py_executor_memory: Byzer's cap in MB on the private memory of each
            Ray worker running the code, enforced (see ``memory_cap``); also
            reserves that much ``memory`` with Ray's scheduler.
        enforce_memory: enforce ``memory`` as such a cap too.
        actor_idle_timeout: seconds a pool of a lazy (run_in="executor")
            result keeps its actors without work before it stops them.
        batch_bytes: target Arrow bytes per Ray task; batches are coalesced up
            to this size (a whole small partition becomes one task).
        batch_rows: upper bound on rows per Ray task, whatever their size.
        batch_sizing: "auto" sizes shards from the first shards' timings (small
            when the function is slow, up to batch_bytes / batch_rows when it is
            cheap); "fixed" cuts at batch_bytes / batch_rows. Setting either of
            those through any door means "fixed" unless batch_sizing is set too.
        local_ray_cpus: CPUs of the embedded Ray; None means all of this host's.
        dashboard: start the Ray dashboard with the embedded Ray.
        ray_on_spark: for ``ray_address="spark"``, arguments of Ray's
            ``ray.util.spark.setup_ray_cluster`` (``max_worker_nodes``,
            ``num_cpus_worker_node``, ...) over spark-ray's sizing rule.
        spill_dir: the driver's local scratch directory for uploaded chunks
            (driver mode) and for model-mode shards and results. Nothing else
            reads it: Ray tasks and Spark executors get its files from the
            driver's data servers, so it need not be shared between hosts.
        job_description: the Spark job description; a default names the call.
        job_group: the Spark job group of driver-mode and model-mode jobs
            (default: ``spark-ray-<id>``, one per call), so ``cancelJobGroup`` stops them.
        data_server_host: where driver-side data servers listen; None picks one
            (see ``data_server_bind_host``).
        data_server_idle_timeout: seconds without a client before a data server
            closes itself (Byzer's 5 minutes by default).
        schema: the output schema, when the call does not pass one (Byzer's
            ``!python conf "schema=st(...)"``).
        python_exec: Byzer's pythonExec. Only this interpreter can run here;
            another one is reported once and ignored.
        python_env: Byzer's PYTHON_ENV, e.g. ``export A=1 && source activate env``:
            each ``export K=V`` becomes an environment variable of the user code.
        script_conf: the keys a script set (``!python conf``, ``where``), as
            spelled there, for the code's ``context.conf`` (Byzer's runnerConf),
            including keys that are no option; only scripts set it.
    """

    mode: str = "data"
    run_in: str = "executor"
    kind: str = "row"
    python_mode: str = "ray"
    ray_address: str | None = None
    ray_namespace: str = "spark_ray"
    runtime_env: dict[str, Any] | None = None
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    memory: int | None = None
    resources: dict[str, float] | None = None
    accelerator_type: str | None = None
    max_retries: int | None = None
    retry_exceptions: Any = None
    scheduling_strategy: Any = None
    ray_remote_args: dict[str, Any] | None = None
    concurrency: Any = None
    fn_constructor_args: Any = None
    fn_constructor_kwargs: dict[str, Any] | None = None
    py_executor_memory: int | None = None
    enforce_memory: bool = False
    actor_idle_timeout: float = 30.0
    batch_bytes: int = 32 * 1024 * 1024
    batch_rows: int = 1_000_000
    batch_sizing: str = "auto"
    local_ray_cpus: int | None = None
    dashboard: bool = False
    ray_on_spark: dict[str, Any] | None = None
    spill_dir: str | None = None
    job_description: str | None = None
    job_group: str | None = None
    data_server_host: str | None = None
    data_server_idle_timeout: float = 300.0
    schema: str | None = None
    python_exec: str | None = None
    python_env: str | None = None
    script_conf: dict[str, str] | None = None

    def __post_init__(self) -> None:
        _check_choice("mode", self.mode, MODES)
        _check_choice("run_in", self.run_in, RUN_INS)
        _check_choice("kind", self.kind, KINDS)
        _check_choice("python_mode", self.python_mode, PYTHON_MODES)
        _check_choice("batch_sizing", self.batch_sizing, BATCH_SIZINGS)
        for name in ("batch_bytes", "batch_rows"):
            value = getattr(self, name)
            if value < 1:
                raise ConfigError(f"option {name} must be at least 1, got {value!r}")
        if self.num_cpus < 0 or self.num_gpus < 0:
            raise ConfigError(
                f"options num_cpus and num_gpus cannot be negative, got {self.num_cpus!r}, {self.num_gpus!r}"
            )
        # Frozen: normalise through object.__setattr__, once, here.
        object.__setattr__(self, "concurrency", _read_concurrency(self.concurrency))
        object.__setattr__(self, "retry_exceptions", _read_retry_exceptions(self.retry_exceptions))
        object.__setattr__(self, "fn_constructor_args", _read_constructor_args(self.fn_constructor_args))
        if self.py_executor_memory is not None and self.py_executor_memory < 1:
            raise ConfigError(
                f"option py_executor_memory is in MB and must be at least 1, got {self.py_executor_memory!r}"
            )
        if self.enforce_memory and not self.memory and not self.py_executor_memory:
            raise ConfigError("option enforce_memory needs memory=<bytes> (or py_executor_memory=<MB>) to enforce")
        if self.actor_idle_timeout <= 0:
            raise ConfigError(f"option actor_idle_timeout must be positive, got {self.actor_idle_timeout!r}")

    @property
    def uses_ray(self) -> bool:
        return self.python_mode == "ray"

    @property
    def max_in_flight(self) -> int:
        """Shards in flight per Spark partition when nothing better is known: ``concurrency``
        (its upper end for a range), else 2. The executor and driver paths size
        their window from the cluster instead (``shard_sizing.window_for``)."""
        if isinstance(self.concurrency, tuple):
            return max(2, self.concurrency[1])
        return self.concurrency if self.concurrency is not None else 2

    @property
    def memory_limit_mb(self) -> int | None:
        """The enforced cap on a Ray worker's private memory, in MB, or None."""
        if self.py_executor_memory is not None:
            return self.py_executor_memory
        if self.enforce_memory and self.memory:
            return max(1, self.memory >> 20)
        return None

    def ray_task_options(self) -> dict[str, Any]:
        """Options for ``remote_fn.options(...)``: only the ones that are set (see ``ray_options``)."""
        from .ray_options import task_options

        return task_options(self)

    def env_vars(self) -> dict[str, str]:
        """The ``export K=V`` parts of python_env, in order."""
        return exports_of(self.python_env)

    def activations(self) -> list[str]:
        """The environments python_env asks to activate (reported, never switched to)."""
        return activations_of(self.python_env)

    def requested_address(self) -> str | None:
        """The Ray address asked for: the option, else RAY_ADDRESS, else None (the embedded Ray)."""
        address = self.ray_address if self.ray_address is not None else os.environ.get("RAY_ADDRESS")
        return None if address in LOCAL_ADDRESSES else address

    def data_server_bind_host(self, spark_is_local: bool = True) -> str | None:
        """Where driver-side data servers listen: as configured; loopback when
        everything that reads them runs on this host (Spark's master is local,
        and Ray is absent or the embedded one); else None, meaning this host's
        address as Ray sees it (``data_server.server_host``), which Ray's
        workers and Spark's executors on other hosts can reach.
        """
        if self.data_server_host:
            return self.data_server_host
        if spark_is_local and (not self.uses_ray or self.requested_address() is None):
            return "127.0.0.1"
        return None

    def as_strings(self) -> dict[str, str]:
        """The options that are set, as text: what code strings see as ``context.conf`` (Byzer's runnerConf)."""
        return {key: str(value) for key, value in vars(self).items() if value is not None}

    def replace(self, **changes: Any) -> RayTransformConf:
        return dataclasses.replace(self, **changes)


_FIELDS = {f.name: f for f in dataclasses.fields(RayTransformConf)}
FIELD_NAMES = tuple(_FIELDS)

# Byzer/pyjava spellings. Keys are compared case-insensitively after this lookup.
ALIASES = {
    "dataMode": "mode",
    "runIn": "run_in",
    "pythonMode": "python_mode",
    "rayAddress": "ray_address",
    "rayNamespace": "ray_namespace",
    "runtimeEnv": "runtime_env",
    "numCpus": "num_cpus",
    "numGpus": "num_gpus",
    "batchBytes": "batch_bytes",
    "batchRows": "batch_rows",
    "batchSizing": "batch_sizing",
    # concurrency's old name: tasks in flight per Spark partition.
    "max_in_flight": "concurrency",
    "maxInFlight": "concurrency",
    "acceleratorType": "accelerator_type",
    "maxRetries": "max_retries",
    "retryExceptions": "retry_exceptions",
    "schedulingStrategy": "scheduling_strategy",
    "rayRemoteArgs": "ray_remote_args",
    "fnConstructorArgs": "fn_constructor_args",
    "fnConstructorKwargs": "fn_constructor_kwargs",
    "pyExecutorMemory": "py_executor_memory",
    "enforceMemory": "enforce_memory",
    "actorIdleTimeout": "actor_idle_timeout",
    "spillDir": "spill_dir",
    "pythonExec": "python_exec",
    "PYTHON_ENV": "python_env",
    "pythonEnv": "python_env",
    "jobDescription": "job_description",
    "jobGroup": "job_group",
    "localRayCpus": "local_ray_cpus",
    "rayOnSpark": "ray_on_spark",
    "dataServerHost": "data_server_host",
    "dataServerIdleTimeout": "data_server_idle_timeout",
}
_LOOKUP = {name.lower(): name for name in FIELD_NAMES} | {a.lower(): t for a, t in ALIASES.items()}


def canonical_name(key: str) -> str:
    """The field name for ``key`` (snake_case or a Byzer alias), or a ConfigError.

    The error lists every known option and suggests the nearest one.
    """
    name = _LOOKUP.get(key.strip().lower())
    if name is not None:
        return name
    known = sorted(set(FIELD_NAMES) | set(ALIASES))
    raise ConfigError(f"unknown option {key!r}.{did_you_mean(key, known)} Known options: {', '.join(known)}")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"option {name} must be one of {', '.join(map(repr, choices))}; got {value!r}")


def _coerce(name: str, value: Any) -> Any:
    """Turn a value that may be a string (Spark conf, scripts) into the field's type."""
    annotation = str(_FIELDS[name].type)
    if value is None or not isinstance(value, str):
        if "float" in annotation and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value
    text = value.strip()
    if "None" in annotation and text.lower() in ("", "none", "null"):
        return None
    try:
        if annotation.startswith("bool"):
            if text.lower() in ("true", "1", "yes", "on"):
                return True
            if text.lower() in ("false", "0", "no", "off"):
                return False
            raise ValueError(text)
        if annotation.startswith("int"):
            return int(text.replace("_", ""))
        if annotation.startswith("float"):
            return float(text)
        if annotation.startswith("dict"):
            parsed = json.loads(text)
            if not isinstance(parsed, dict):
                raise ValueError(text)
            return parsed
    except ValueError:
        raise ConfigError(f"option {name} expects {annotation}; cannot read {value!r}") from None
    return text


# Session settings: per SparkSession, gone when the session is.
_SESSION_SETTINGS: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def set_session_conf(spark: SparkSession, **options: Any) -> None:
    """Set options for every later call in this SparkSession (like ``!python conf``)."""
    settings = _SESSION_SETTINGS.setdefault(spark, {})
    for key, value in options.items():
        name = canonical_name(key)
        settings[name] = _coerce(name, value)


def get_session_conf(spark: SparkSession) -> dict[str, Any]:
    return dict(_SESSION_SETTINGS.get(spark, {}))


def clear_session_conf(spark: SparkSession) -> None:
    _SESSION_SETTINGS.pop(spark, None)


def _spark_conf_options(spark: SparkSession | None) -> dict[str, Any]:
    if spark is None:
        return {}
    from .spark_session_kind import kind_of  # no SparkContext over Spark Connect

    found: dict[str, Any] = {}
    for key, value in kind_of(spark).launch_conf():
        if is_option_key(key):
            name = canonical_name(key[len(SPARK_CONF_PREFIX) :])
            found[name] = _coerce(name, value)
    # Runtime settings (spark.conf.set) override the launch conf.
    from .spark_compat import runtime_conf  # spark.conf.getAll is new in pyspark 4.0

    for key, value in runtime_conf(spark).items():
        if is_option_key(key):
            name = canonical_name(key[len(SPARK_CONF_PREFIX) :])
            found[name] = _coerce(name, value)
    return found


def resolve_conf(spark: SparkSession | None, call_options: Mapping[str, Any]) -> RayTransformConf:
    """Merge the four layers into one RayTransformConf (call > session > Spark conf > default)."""
    merged: dict[str, Any] = {}
    merged.update(_spark_conf_options(spark))
    if spark is not None:
        merged.update(_SESSION_SETTINGS.get(spark, {}))
    for key, value in call_options.items():
        name = canonical_name(key)
        merged[name] = _coerce(name, value)
    if ("batch_rows" in merged or "batch_bytes" in merged) and "batch_sizing" not in merged:
        merged["batch_sizing"] = "fixed"  # a size the caller chose is the size they get
    return RayTransformConf(**merged)


def _read_concurrency(value: Any) -> int | tuple[int, int] | None:
    """``4``, ``(1, 4)``, ``[1, 4]``, or the text forms ``"4"``, ``"1,4"``, ``"(1, 4)"``."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().strip("()[]")
        if text.lower() in ("", "none", "null"):
            return None
        parts = [part.strip() for part in text.split(",") if part.strip()]
        try:
            value = int(parts[0]) if len(parts) == 1 else tuple(int(part) for part in parts)
        except ValueError:
            raise ConfigError(
                f"option concurrency expects an int or a (min, max) pair; cannot read {value!r}"
            ) from None
    if isinstance(value, bool):
        raise ConfigError(f"option concurrency expects an int or a (min, max) pair, got {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise ConfigError(f"option concurrency must be at least 1, got {value}")
        return value
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        low, high = int(value[0]), int(value[1])
        if not 1 <= low <= high:
            raise ConfigError(f"option concurrency=(min, max) needs 1 <= min <= max, got ({low}, {high})")
        return (low, high)
    raise ConfigError(f"option concurrency expects an int or a (min, max) pair, got {value!r}")


def _read_retry_exceptions(value: Any) -> Any:
    """True/False (also as text), or a list of exception classes (from the call only)."""
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("", "none", "null"):
            return None
        if lowered in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return lowered in ("true", "1", "yes", "on")
        raise ConfigError(f"option retry_exceptions expects true, false or a list of exception classes; got {value!r}")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, type) and issubclass(v, Exception) for v in value):
        return list(value)
    raise ConfigError(f"option retry_exceptions expects true, false or a list of exception classes; got {value!r}")


def _read_constructor_args(value: Any) -> tuple[Any, ...] | None:
    """A tuple or list (or JSON list text) of positional ``__init__`` arguments."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ConfigError(f"option fn_constructor_args expects a JSON list in text form; got {value!r}") from None
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"option fn_constructor_args expects a tuple or list, got {type(value).__name__}")
    return tuple(value)
