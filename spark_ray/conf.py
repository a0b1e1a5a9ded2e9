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
import os
import warnings
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .doors import check_door
from .environment import activations_of, exports_of
from .errors import ConfigError, did_you_mean
from .option_values import check_choice, coerce, read_concurrency, read_constructor_args, read_retry_exceptions

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
# Ray Data's batch_format names, and the kind each means.
BATCH_FORMATS = {"pyarrow": "arrow", "pandas": "pandas"}
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
        batch_format: Ray Data's name for the last two kinds: "pyarrow" is
            kind "arrow", "pandas" is kind "pandas".
        batch_size: the exact rows per call of a batch function (kinds "rows",
            "arrow", "pandas"), Ray Data's ``batch_size``; only the last batch
            of each Spark partition may be shorter. None: the function sees
            the batches as they come (Spark's Arrow batches, up to a shard).
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
        concurrency: Ray Data's meaning. For a function, the Ray tasks in
            flight for the whole call, shared by the Spark partitions running
            at once (each gets ``concurrency // task slots``, at least 1). For
            a callable class, the size of its actor pool, an int or a
            ``(min, max)`` range (None: 1 up to what the cluster can hold).
        tasks_per_partition: Ray tasks (or pool calls) in flight for each
            Spark partition, when set; wins over ``concurrency`` for the
            window. None: ``concurrency`` shared out, else enough for the
            partitions Spark runs at once to keep the Ray CPUs (or the pool)
            busy. ``max_in_flight`` is its old name.
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
    batch_format: str | None = None
    batch_size: int | None = None
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
    tasks_per_partition: int | None = None
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
    # The options given at the door (not the session's or Spark conf's): what check_door checks.
    given: frozenset[str] = dataclasses.field(default=frozenset(), compare=False, repr=False)

    def __post_init__(self) -> None:
        check_choice("mode", self.mode, MODES)
        check_choice("run_in", self.run_in, RUN_INS)
        check_choice("kind", self.kind, KINDS)
        check_choice("python_mode", self.python_mode, PYTHON_MODES)
        check_choice("batch_sizing", self.batch_sizing, BATCH_SIZINGS)
        if self.batch_format is not None:
            check_choice("batch_format", self.batch_format, tuple(BATCH_FORMATS))
            meant = BATCH_FORMATS[self.batch_format]
            if "kind" in self.given and self.kind != meant:
                raise ConfigError(
                    f"options kind={self.kind!r} and batch_format={self.batch_format!r} disagree: "
                    f"batch_format={self.batch_format!r} is kind={meant!r}; give one of them"
                )
            object.__setattr__(self, "kind", meant)
        for name in ("batch_size", "tasks_per_partition"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or value < 1):
                raise ConfigError(f"option {name} must be at least 1, got {value!r}")
        for name in ("batch_bytes", "batch_rows"):
            value = getattr(self, name)
            if value < 1:
                raise ConfigError(f"option {name} must be at least 1, got {value!r}")
        if self.num_cpus < 0 or self.num_gpus < 0:
            raise ConfigError(
                f"options num_cpus and num_gpus cannot be negative, got {self.num_cpus!r}, {self.num_gpus!r}"
            )
        # Frozen: normalise through object.__setattr__, once, here.
        object.__setattr__(self, "concurrency", read_concurrency(self.concurrency))
        object.__setattr__(self, "retry_exceptions", read_retry_exceptions(self.retry_exceptions))
        object.__setattr__(self, "fn_constructor_args", read_constructor_args(self.fn_constructor_args))
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

    def check_door(self, door: str) -> RayTransformConf:
        """This conf, once every option given at the door is one ``door`` honours (``doors``).

        Raises:
            ConfigError: an option given here that this door cannot honour.
        """
        check_door(self.given, door)
        return self

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

    def settings(self) -> dict[str, Any]:
        """Every option's value (not which were given): a layer to resolve later calls over."""
        return {name: getattr(self, name) for name in FIELD_NAMES}

    def as_strings(self) -> dict[str, str]:
        """The options that are set, as text: what code strings see as ``context.conf`` (Byzer's runnerConf)."""
        return {key: str(value) for key, value in vars(self).items() if value is not None and key != "given"}

    def replace(self, **changes: Any) -> RayTransformConf:
        return dataclasses.replace(self, **changes)


_FIELDS = {f.name: f for f in dataclasses.fields(RayTransformConf) if f.name != "given"}
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
    "batchFormat": "batch_format",
    "batchSize": "batch_size",
    "tasksPerPartition": "tasks_per_partition",
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
# Old spellings whose name changed with their meaning kept: they work, with a DeprecationWarning.
DEPRECATED = {"max_in_flight": "tasks_per_partition", "maxInFlight": "tasks_per_partition"}
_LOOKUP = {name.lower(): name for name in FIELD_NAMES} | {a.lower(): t for a, t in (ALIASES | DEPRECATED).items()}
_DEPRECATED_LOWER = {key.lower() for key in DEPRECATED}


def canonical_name(key: str) -> str:
    """The field name for ``key`` (snake_case or a Byzer alias), or a ConfigError.

    The error lists every known option and suggests the nearest one.
    """
    name = _LOOKUP.get(key.strip().lower())
    if name is not None:
        if key.strip().lower() in _DEPRECATED_LOWER:
            warnings.warn(
                f"option {key.strip()} is now called {name} (Ray tasks in flight per Spark partition); "
                f"{key.strip()} still works",
                DeprecationWarning,
                stacklevel=3,
            )
        return name
    known = sorted(set(FIELD_NAMES) | set(ALIASES))
    raise ConfigError(
        f"unknown option {key!r}.{did_you_mean(key, known)} Known options: {', '.join(known)} "
        "(and, where Ray runs the code, any option of ray.remote)"
    )


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


def resolve_conf(
    spark: SparkSession | None,
    call_options: Mapping[str, Any],
    door: str | None = None,
    base: Mapping[str, Any] | None = None,
) -> RayTransformConf:
    """Merge the four layers into one RayTransformConf (call > session > Spark conf > default).

    ``base`` lies under every layer: settings resolved earlier (a SQL function's, at registration).
    ``call_options`` are the options given at the door; with ``door``, each must be one that door
    honours (``doors.HONOURED_AT``). A door that learns its kind only from the resolved options
    (``ray_transform``: mode and run_in) checks afterwards, with ``RayTransformConf.check_door``.

    Raises:
        ConfigError: an unknown option, a value that cannot be read, or an option ``door`` cannot honour.
    """
    merged: dict[str, Any] = dict(base or {})
    merged.update(_spark_conf_options(spark))
    if spark is not None:
        merged.update(_SESSION_SETTINGS.get(spark, {}))
    given = set()
    for key, value in call_options.items():
        name = canonical_name(key)
        merged[name] = _coerce(name, value)
        given.add(name)
    if door is not None:
        check_door(given, door)
    if ("batch_rows" in merged or "batch_bytes" in merged) and "batch_sizing" not in merged:
        merged["batch_sizing"] = "fixed"  # a size the caller chose is the size they get
    return RayTransformConf(**merged, given=frozenset(given))


def door_options(knobs: Mapping[str, Any], extra: Mapping[str, Any], ray_args: bool = True) -> dict[str, Any]:
    """What a door was given: its keyword-only knobs that are set, and its ``**`` catch-all, where an option's
    name (or Byzer alias) is that option, an option of Ray's tasks or actors (``max_concurrency``) one of its
    Ray remote args (unless ``ray_args=False``: a door with no Ray work), and anything else an unknown option."""
    from .ray_options import is_ray_option

    options = {name: value for name, value in knobs.items() if value is not None}
    remote: dict[str, Any] = {}
    for key, value in extra.items():
        if ray_args and key.strip().lower() not in _LOOKUP and is_ray_option(key):
            remote[key] = value
        else:
            options[key] = value
    if remote:
        options["ray_remote_args"] = {**dict(options.get("ray_remote_args") or {}), **remote}
    return options


def _coerce(name: str, value: Any) -> Any:
    return coerce(name, str(_FIELDS[name].type), value)
