"""Getting a Ray connection, on the driver and in Spark's Python workers.

The driver decides which Ray to use (the embedded local one, or a cluster by
address) and describes it in a ``RaySpec``; the spec travels to the executors
inside the Spark job, and each Spark Python worker process connects once and
reuses the connection for every partition it handles. A connection is keyed by
everything that changes it, so a job with another address or runtime env
reconnects instead of silently reusing stale settings (a Byzer bug).
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .conf import RayTransformConf
from .errors import ConfigError, RayConnectionError

log = logging.getLogger(__name__)

# Ray 2.5x+ clusters started by `ray start` or by ray.init(address="local") may
# demand a token; executors must carry the driver's.
_AUTH_ENV_KEYS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")


@dataclass(frozen=True)
class RaySpec:
    """Where and how to connect to Ray: enough for any process to join the same cluster."""

    address: str
    namespace: str
    runtime_env: tuple[tuple[str, str], ...] = ()  # JSON-able items, frozen for hashing
    auth_env: tuple[tuple[str, str], ...] = ()

    def runtime_env_dict(self) -> dict[str, Any] | None:
        import json

        return {key: json.loads(value) for key, value in self.runtime_env} or None


class _Connection:
    """This process's Ray connection and the key it was made with."""

    lock = threading.Lock()
    spec: RaySpec | None = None
    asked: tuple[Any, ...] | None = None  # (address, namespace, runtime env) the driver asked for
    owned = False  # True when we called ray.init (so we may shut it down)
    exit_hook = False  # the atexit shutdown is registered once per process


def _freeze_runtime_env(runtime_env: dict[str, Any] | None) -> tuple[tuple[str, str], ...]:
    import json

    return tuple(sorted((key, json.dumps(value, sort_keys=True)) for key, value in (runtime_env or {}).items()))


def _auth_env() -> tuple[tuple[str, str], ...]:
    found = {key: os.environ[key] for key in _AUTH_ENV_KEYS if os.environ.get(key)}
    if found.get("RAY_AUTH_MODE") == "token" and "RAY_AUTH_TOKEN" not in found:
        token_path = os.path.expanduser("~/.ray/auth_token")
        if os.path.exists(token_path):
            with open(token_path, encoding="utf-8") as token_file:
                found["RAY_AUTH_TOKEN"] = token_file.read().strip()
    return tuple(sorted(found.items()))


def requested_address(conf: RayTransformConf) -> str | None:
    """The address asked for: the option, else RAY_ADDRESS, else None (embedded)."""
    return conf.requested_address()


def ray_spec(address: str, conf: RayTransformConf, auth_env: tuple[tuple[str, str], ...] | None = None) -> RaySpec:
    """The spec of ``conf``'s Ray settings at ``address``, with this process's auth settings
    (or ``auth_env``, carried from the driver, where this process has none)."""
    return RaySpec(
        address=address,
        namespace=conf.ray_namespace,
        runtime_env=_freeze_runtime_env(conf.runtime_env),
        auth_env=_auth_env() if auth_env is None else auth_env,
    )


def query_ray_spec(conf: RayTransformConf, registered: RaySpec | None) -> RaySpec:
    """The Ray one SQL query uses: its own address if it names one, else the one
    connected when the table function was registered, with the query's namespace
    and runtime_env.

    Raises:
        ConfigError: no address, and the function was registered without Ray.
    """
    auth_env = registered.auth_env if registered is not None else ()
    address = conf.requested_address()
    if address is not None:
        return ray_spec(address, conf, auth_env)
    if registered is None:
        raise ConfigError(
            "register(spark) ran with pythonMode=python, so no Ray was started for the table function; "
            "pass rayAddress=... in the options, or register again with Ray enabled"
        )
    return ray_spec(registered.address, conf, auth_env)


def ensure_driver_ray(conf: RayTransformConf) -> RaySpec:
    """Connect the driver to Ray (starting the embedded one if needed) and describe it."""
    import ray

    address = requested_address(conf)
    with _Connection.lock:
        if ray.is_initialized() and not _Connection.owned and address is None:
            # The user called ray.init() themselves: use their connection.
            return _describe_current(conf, None)
        want = (address, conf.ray_namespace, _freeze_runtime_env(conf.runtime_env))
        if ray.is_initialized() and _Connection.asked == want and _Connection.spec is not None:
            return _Connection.spec
        if ray.is_initialized() and _Connection.owned:
            ray.shutdown()
        if address is None:
            _start_embedded_ray(conf)
        else:
            _init_ray(address, conf.ray_namespace, conf.runtime_env)
        _Connection.owned = True
        _Connection.asked = want
        _Connection.spec = _describe_current(conf, address)
        return _Connection.spec


def _describe_current(conf: RayTransformConf, asked: str | None) -> RaySpec:
    import ray

    if asked is not None and asked.startswith("ray://"):
        address = asked  # a Ray Client address: executors connect through the same proxy
    else:
        address = ray.get_runtime_context().gcs_address
    return ray_spec(address, conf)


def _start_embedded_ray(conf: RayTransformConf) -> None:
    import ray

    num_cpus = conf.local_ray_cpus or os.cpu_count() or 1
    log.info("starting an embedded local Ray with %s CPUs", num_cpus)
    try:
        ray.init(
            address="local",  # never join whatever /tmp/ray/ray_current_cluster names
            num_cpus=num_cpus,
            include_dashboard=conf.dashboard,
            namespace=conf.ray_namespace,
            runtime_env=conf.runtime_env,
            logging_level=logging.WARNING,
            configure_logging=True,
            _system_config=_embedded_worker_pool(num_cpus),
        )
    except Exception as error:
        raise RayConnectionError(f"could not start the embedded local Ray: {error}") from error
    if not _Connection.exit_hook:
        atexit.register(_shutdown_owned)
        _Connection.exit_hook = True


def _embedded_worker_pool(num_cpus: int) -> dict[str, int]:
    """Keep idle Ray workers alive between Spark tasks and between calls.

    Every Spark Python worker is a Ray job of its own, and Ray never lends a
    worker process from one job to another. With Ray's defaults (idle workers
    beyond one per CPU die after a second), Spark's workers take each other's
    Ray workers away between tasks, and each new task waits a second or two
    for a fresh Python process (up to 2 restarts per 10M-row job were counted
    here; with one Ray CPU for two Spark tasks, one per shard). One idle worker
    per CPU for each of a few jobs, kept for a minute, costs some idle
    processes and removes the churn: the CPU-bound benchmark went from 2.81x
    to 1.08x-1.23x of its Spark-native run with 1 Ray CPU, and from 1.75x to
    0.66x-0.93x with 2 (BENCHMARKS.md).
    """
    return {"num_workers_soft_limit": 2 * num_cpus + 2, "idle_worker_killing_time_threshold_ms": 60_000}


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast on a host:port nobody listens on: ray.init would retry for minutes."""
    if address in ("auto",) or "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except (OSError, ValueError) as error:
        raise RayConnectionError(
            f"could not connect to the Ray cluster at {address!r}: {error}. Check that the cluster is "
            "running (`ray status --address ...`) and that this host can reach that address."
        ) from None


def _init_ray(address: str, namespace: str, runtime_env: dict[str, Any] | None) -> None:
    import ray

    _check_reachable(address)
    try:
        ray.init(address=address, namespace=namespace, runtime_env=runtime_env, logging_level=logging.WARNING)
    except Exception as error:
        raise RayConnectionError(
            f"could not connect to the Ray cluster at {address!r}: {error}. Check that the cluster is "
            "running (`ray status --address ...`), that this host can reach it, and, for clusters that "
            "require a token, that RAY_AUTH_MODE=token and RAY_AUTH_TOKEN are set."
        ) from error


def _shutdown_owned() -> None:
    import ray

    with _Connection.lock:
        if _Connection.owned and ray.is_initialized():
            ray.shutdown()
        _Connection.owned = False
        _Connection.spec = None
        _Connection.asked = None
        _DRIVER_ACTORS.clear()


# Handles of the long-lived actors this driver owns (pool registry, block keepers), by (Ray session, name):
# Ray collects an actor, named or not, once no handle to it is left, so the driver must hold one.
_DRIVER_ACTORS: dict[tuple[str, str], Any] = {}


def has_driver_actor(name: str) -> bool:
    """Whether this driver made the actor ``name`` in its current Ray session."""
    import ray

    return (ray.get_runtime_context().get_session_name(), name) in _DRIVER_ACTORS


def driver_actor(name: str, create: Callable[[], Any]) -> Any:
    """The named actor ``name`` of this driver, made by ``create`` the first time in this Ray session
    and kept alive (by holding its handle) until the connection ends."""
    import ray

    key = (ray.get_runtime_context().get_session_name(), name)
    handle = _DRIVER_ACTORS.get(key)
    if handle is None:
        handle = _DRIVER_ACTORS[key] = create()
    return handle


def _reload_auth_settings() -> None:
    """Make an already imported Ray read the auth settings again.

    User code (a code string's top-level ``import ray``, or an earlier job in
    the same reused Spark worker) may import Ray before we set the driver's
    token; Ray would then join with no token and be refused. Ray keeps no
    public call for this, so the private one is used, and skipped if absent.
    """
    try:
        from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]
    except ImportError:
        return
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def shutdown() -> None:
    """Disconnect from Ray, stopping the embedded Ray if we started it."""
    _shutdown_owned()


def ensure_worker_ray(spec: RaySpec) -> None:
    """Join the driver's Ray from a Spark Python worker, once per process and spec."""
    # Ray reads its auth settings when it is imported (and caches the token): set them first.
    imported_before = "ray" in sys.modules
    changed = [key for key, value in spec.auth_env if os.environ.get(key) != value]
    for key, value in spec.auth_env:
        os.environ[key] = value
    import ray

    with _Connection.lock:
        if _Connection.spec == spec and ray.is_initialized():
            return
        if ray.is_initialized():
            ray.shutdown()
        if imported_before and changed:
            _reload_auth_settings()
        _init_ray(spec.address, spec.namespace, spec.runtime_env_dict())
        _Connection.spec = spec
        _Connection.owned = True
