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

MODES = ("data", "model")
RUN_INS = ("executor", "driver")
KINDS = ("row", "rows", "arrow", "pandas")
PYTHON_MODES = ("ray", "python")
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
            ``auto``); None or "local" starts or reuses the embedded local Ray.
        ray_namespace: the Ray namespace of our connections.
        runtime_env: Ray's runtime_env for our tasks (env_vars, pip, ...).
        num_cpus, num_gpus, memory, resources: Ray resources of each task.
        batch_bytes: target Arrow bytes per Ray task; batches are coalesced up
            to this size (a whole small partition becomes one task).
        batch_rows: upper bound on rows per Ray task, whatever their size.
        max_in_flight: shards in flight per Spark partition, in every path;
            bounds memory (each one is a shard's worth of Arrow data).
        local_ray_cpus: CPUs of the embedded Ray; None means all of this host's.
        dashboard: start the Ray dashboard with the embedded Ray.
        spill_dir: the driver's scratch directory for uploaded chunks (driver
            mode) and for model-mode shards and results; model mode's results
            are read back by the executors, so on a cluster it must be a path
            they share.
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
    batch_bytes: int = 32 * 1024 * 1024
    batch_rows: int = 1_000_000
    max_in_flight: int = 2
    local_ray_cpus: int | None = None
    dashboard: bool = False
    spill_dir: str | None = None
    job_description: str | None = None
    job_group: str | None = None
    data_server_host: str | None = None
    data_server_idle_timeout: float = 300.0
    schema: str | None = None
    python_exec: str | None = None
    python_env: str | None = None

    def __post_init__(self) -> None:
        _check_choice("mode", self.mode, MODES)
        _check_choice("run_in", self.run_in, RUN_INS)
        _check_choice("kind", self.kind, KINDS)
        _check_choice("python_mode", self.python_mode, PYTHON_MODES)
        for name in ("batch_bytes", "batch_rows", "max_in_flight"):
            value = getattr(self, name)
            if value < 1:
                raise ConfigError(f"option {name} must be at least 1, got {value!r}")
        if self.num_cpus < 0 or self.num_gpus < 0:
            raise ConfigError(
                f"options num_cpus and num_gpus cannot be negative, got {self.num_cpus!r}, {self.num_gpus!r}"
            )

    @property
    def uses_ray(self) -> bool:
        return self.python_mode == "ray"

    def ray_task_options(self) -> dict[str, Any]:
        """Options for ``remote_fn.options(...)``: only the ones that are set."""
        options: dict[str, Any] = {"num_cpus": self.num_cpus}
        if self.num_gpus:
            options["num_gpus"] = self.num_gpus
        if self.memory:
            options["memory"] = self.memory
        if self.resources:
            options["resources"] = dict(self.resources)
        return options

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

    def data_server_bind_host(self) -> str | None:
        """Where driver-side data servers listen: as configured; loopback when
        nothing remote needs them (no Ray, or the embedded Ray on this host);
        else None, meaning this node's address as Ray sees it (resolved once
        connected, so that Ray's workers on other hosts can reach it).
        """
        if self.data_server_host:
            return self.data_server_host
        if not self.uses_ray or self.requested_address() is None:
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
    "maxInFlight": "max_in_flight",
    "spillDir": "spill_dir",
    "pythonExec": "python_exec",
    "PYTHON_ENV": "python_env",
    "pythonEnv": "python_env",
    "jobDescription": "job_description",
    "jobGroup": "job_group",
    "localRayCpus": "local_ray_cpus",
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
    found: dict[str, Any] = {}
    for key, value in spark.sparkContext.getConf().getAll():
        if key.startswith(SPARK_CONF_PREFIX):
            name = canonical_name(key[len(SPARK_CONF_PREFIX) :])
            found[name] = _coerce(name, value)
    # Runtime settings (spark.conf.set) override the launch conf.
    runtime = spark.conf.getAll if hasattr(spark.conf, "getAll") else None
    if runtime is not None:
        items = runtime.items() if isinstance(runtime, Mapping) else runtime().items()
        for key, value in items:
            if key.startswith(SPARK_CONF_PREFIX):
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
    return RayTransformConf(**merged)
