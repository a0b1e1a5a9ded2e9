"""This process's Ray connection, on the driver and in Spark's Python workers, and its end.

The driver decides which Ray to use (the embedded local one, a cluster by
address, or Ray on Spark) and describes it in a ``RaySpec``; the spec travels
to the executors inside the Spark job, and each Spark Python worker process
connects once and reuses the connection for every partition it handles. A
connection is keyed by everything that changes it, so a job with another
address or runtime env reconnects instead of silently reusing stale settings
(a Byzer bug).

The connection's life ends here too: ``shutdown`` (``spark_ray.shutdown()``)
disconnects, which stops the embedded Ray, and stops a Ray-on-Spark cluster
the driver started; the long-lived actors the driver owns
(``driver_actor``) go with the connection.

Around it: ``ray_addresses`` (what an address is, and the checks made before
``ray.init``), ``ray_auth`` (the token), ``embedded_ray`` and
``ray_on_spark`` (the two Rays spark-ray starts itself).
"""

from __future__ import annotations

import atexit
import ipaddress
import itertools
import logging
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import ray_on_spark
from .conf import RayTransformConf
from .embedded_ray import start_embedded_ray
from .errors import ConfigError, RayConnectionError
from .ray_addresses import (
    CLIENT_SCHEME,
    RAY_CLIENT_DEFAULT_PORT,
    check_client_extra,
    check_client_server,
    check_reachable,
    is_client_address,
    local_address_towards,
    split_host_port,
)
from .ray_addresses import ray_client_answers as ray_client_answers  # importers of cluster's name
from .ray_auth import (
    AuthEnv,
    apply_auth_env,
    auth_env,
    check_cluster_accepts,
    redact,
    reload_auth_settings,
    use_available_token,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RaySpec:
    """Where and how to connect to Ray: enough for any process to join the same cluster."""

    address: str
    namespace: str
    runtime_env: tuple[tuple[str, str], ...] = ()  # JSON-able items, frozen for hashing
    # The driver's token travels to the executors in here: never in a repr, a log line or an error.
    auth_env: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @property
    def is_client(self) -> bool:
        """Whether this is a Ray Client address (``ray://``): every process joins through that server."""
        return is_client_address(self.address)

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

    @classmethod
    def forget(cls) -> None:
        """After a disconnect: no connection, and none of the actors that lived in it."""
        cls.owned = False
        cls.spec = None
        cls.asked = None
        _DRIVER_ACTORS.clear()


def _freeze_runtime_env(runtime_env: dict[str, Any] | None) -> tuple[tuple[str, str], ...]:
    import json

    return tuple(sorted((key, json.dumps(value, sort_keys=True)) for key, value in (runtime_env or {}).items()))


def requested_address(conf: RayTransformConf) -> str | None:
    """The address asked for: the option, else RAY_ADDRESS, else None (embedded)."""
    return conf.requested_address()


def ray_spec(address: str, conf: RayTransformConf, carried_auth: AuthEnv | None = None) -> RaySpec:
    """The spec of ``conf``'s Ray settings at ``address``, with this process's auth settings
    (or ``carried_auth``, carried from the driver, where this process has none)."""
    return RaySpec(
        address=address,
        namespace=conf.ray_namespace,
        runtime_env=_freeze_runtime_env(conf.runtime_env),
        auth_env=auth_env() if carried_auth is None else carried_auth,
    )


def query_ray_spec(conf: RayTransformConf, registered: RaySpec | None) -> RaySpec:
    """The Ray one SQL query uses: its own address if it names one, else the one
    connected when the table function was registered, with the query's namespace
    and runtime_env.

    Raises:
        ConfigError: no address, and the function was registered without Ray.
    """
    carried_auth = registered.auth_env if registered is not None else ()
    address = conf.requested_address()
    if ray_on_spark.is_spark_address(address):  # started by the driver (register), never by a query's worker
        address = None
    if address is not None:
        return ray_spec(address, conf, carried_auth)
    if registered is None:
        raise ConfigError(
            "register(spark) ran with pythonMode=python, so no Ray was started for the table function; "
            "pass rayAddress=... in the options, or register again with Ray enabled"
        )
    return ray_spec(registered.address, conf, carried_auth)


def ensure_driver_ray(conf: RayTransformConf) -> RaySpec:
    """Connect the driver to Ray (starting the embedded one if needed) and describe it."""
    import ray

    address = requested_address(conf)
    with _Connection.lock:
        if ray.is_initialized() and not _Connection.owned and address is None:
            # The user called ray.init() themselves: use their connection.
            return _describe_current(conf, None)
        want = (address, conf.ray_namespace, _freeze_runtime_env(conf.runtime_env))
        lost = _drop_if_lost() if ray.is_initialized() and _Connection.owned else None
        if ray.is_initialized() and _Connection.asked == want and _Connection.spec is not None:
            return _Connection.spec
        if address is not None:  # an address that cannot work fails before the working connection is closed
            try:
                check_client_extra(address)
                check_reachable(address)
                check_client_server(address)
            except RayConnectionError as error:
                if lost is None:
                    raise
                raise RayConnectionError(f"{lost} Connecting again failed: {error}") from None
        if ray.is_initialized() and _Connection.owned:
            ray.shutdown()
        if address is None:
            start_embedded_ray(conf)
            _disconnect_at_exit()
        elif ray_on_spark.is_spark_address(address):  # a cluster in this Spark application, joined by its address
            ray_on_spark.before_stop(_disconnect_from)
            _init_ray(ray_on_spark.cluster_address(conf), conf.ray_namespace, conf.runtime_env)
        else:
            _init_ray(address, conf.ray_namespace, conf.runtime_env)
        _Connection.owned = True
        _Connection.asked = want
        _Connection.spec = _describe_current(conf, address)
        _python_workers_for_new_ray()
        return _Connection.spec


# The job environment variable that keeps each Ray connection's Spark jobs on Python workers of their own.
RAY_SESSION_ENV = "SPARK_RAY_SESSION"
_RAY_SESSIONS = itertools.count(1)


def _python_workers_for_new_ray() -> None:
    """Give the Spark jobs made from now on Python workers that never joined an earlier Ray.

    Called each time the driver (re)connects to Ray. The driver restarts its
    embedded Ray when a call asks for another runtime_env or namespace; the
    Spark Python workers that joined the old one end themselves 60 s after it
    went ("Failed to connect to GCS within 60 seconds ... The program will
    terminate"). Until then they look alive, so Spark hands them tasks and a
    task dies with its worker; pyspark 3.5 hands out dead ones too (measured
    here: a collect 56 to 59 s after a restart crashed on 4.1.4, one at any
    time later failed with "Broken pipe" on 3.5.7). Spark keeps one pool of
    Python workers per set of job environment variables, so a variable
    counting the driver's connections keeps the new Ray's jobs away from the
    old workers. The cost: Spark keeps each pool's daemon process (about 60 MB)
    until the SparkContext stops, one per restart.
    """
    from pyspark import SparkContext  # the driver has pyspark

    sc = SparkContext._active_spark_context
    if sc is not None:
        sc.environment[RAY_SESSION_ENV] = str(next(_RAY_SESSIONS))


def _drop_if_lost() -> str | None:
    """End this driver's Ray connection if its cluster is gone, and say what happened (else None).

    When the Ray this driver joined stops (the embedded Ray's processes killed, a cluster's head
    restarted), ``ray.is_initialized()`` still says True: the next call would hand Spark's workers the
    dead address, wait on it, and about 60 s later Ray's own watchdog would end this process ("Failed to
    connect to GCS ... The program will terminate"). Nothing answering at the GCS address is the sign; the
    dead connection is shut down (a few seconds) so that the call can start or join a Ray afresh.
    """
    import ray

    spec = _Connection.spec
    if spec is None:
        return None
    target = split_host_port(spec.address, RAY_CLIENT_DEFAULT_PORT if spec.is_client else None)
    if target is None:
        return None
    try:
        with socket.create_connection(target, timeout=2.0):
            return None
    except TimeoutError:
        return None  # slow is not gone: let Ray's own timeouts decide
    except OSError as error:
        reason = f"{type(error).__name__}: {error.strerror or error}"
    embedded = _Connection.asked is not None and _Connection.asked[0] is None
    what = "the embedded Ray this driver started" if embedded else "the Ray cluster this driver joined"
    lost = (
        f"{what} (at {spec.address!r}) is gone: nothing answers at that address ({reason}); its processes were "
        "stopped or killed, and its objects, actors and actor pools with them."
    )
    log.warning("spark-ray: %s %s", lost, "Starting a new embedded Ray." if embedded else "Connecting again.")
    try:
        ray.shutdown()
    except Exception as error:  # noqa: BLE001 - the connection is dead either way
        log.debug("shutting down the lost Ray connection: %s", error)
    _Connection.forget()
    return lost


def _describe_current(conf: RayTransformConf, asked: str | None) -> RaySpec:
    """The spec executors join with. A Ray Client connection is passed on as its ``ray://`` address, never
    as the GCS address the cluster reports: a client exists because the cluster's own ports may not be
    reachable from here, so each executor connects as a Ray Client too, through the same server."""
    import ray

    address = asked if is_client_address(asked) else _client_address_in_use()
    if address is None:
        address = ray.get_runtime_context().gcs_address
    return ray_spec(address, conf)


def _client_address_in_use() -> str | None:
    """The ``ray://`` address of this process's Ray Client connection, if it has one (the user's own
    ``ray.init("ray://...")``); Ray keeps it only in a private field, so None when that is absent."""
    try:
        from ray.util.client import ray as client_ray
    except ImportError:
        return None
    if not client_ray.is_connected():
        return None
    worker = getattr(client_ray.get_context(), "client_worker", None)
    conn_str = getattr(worker, "_conn_str", None)
    return f"{CLIENT_SCHEME}{conn_str}" if isinstance(conn_str, str) and conn_str else None


def node_ip_address() -> str:
    """This host's address as the Ray cluster's nodes reach it: where servers they call must listen.

    Connected as a Ray Client, this process is no Ray node, and ``ray.util.get_node_ip_address()``
    guesses from the route to a public address. The route to the Ray Client server is the better
    guess (the cluster's nodes share its network), unless that server is on this host (loopback):
    then Ray's guess is the address its own nodes here have.
    """
    import ray

    spec = _Connection.spec
    if spec is not None and spec.is_client:
        target = split_host_port(spec.address, RAY_CLIENT_DEFAULT_PORT)
        local = local_address_towards(*target) if target is not None else None
        if local is not None and not ipaddress.ip_address(local).is_loopback:
            return local
    return str(ray.util.get_node_ip_address())


def _init_ray(address: str, namespace: str, runtime_env: dict[str, Any] | None) -> None:
    """Connect this process to the cluster at ``address`` (a GCS address, or ``ray://`` for Ray Client).

    The error names the address and never the token (see ``ray_auth.redact``).
    """
    import ray

    check_client_extra(address)
    check_reachable(address)
    if not is_client_address(address) and address != "auto":
        if use_available_token():
            reload_auth_settings()
        check_cluster_accepts(address)
    check_client_server(address)
    try:
        ray.init(address=address, namespace=namespace, runtime_env=runtime_env, logging_level=logging.WARNING)
    except Exception as error:
        what = "the Ray Client server" if is_client_address(address) else "the Ray cluster"
        hint = (
            "Check that the cluster is running (`ray status --address ...`), that this host can reach it, and, "
            "for clusters that require a token, that RAY_AUTH_MODE=token and RAY_AUTH_TOKEN (or "
            "~/.ray/auth_token) are set on the driver."
        )
        if is_client_address(address) and "Starting Ray client server failed" in str(error):
            hint = (
                "The cluster's Ray Client server could not start this client's server process; if its log "
                "(ray_client_server_<port>.err on the head) is empty, restart the head with "
                "GRPC_ENABLE_FORK_SUPPORT=0 in its environment (ray-project/ray#63202)."
            )
        joined_auth = _Connection.spec.auth_env if _Connection.spec is not None else ()
        raise RayConnectionError(
            redact(f"could not connect to {what} at {address!r}: {type(error).__name__}: {error}. {hint}", joined_auth)
        ) from None


def _disconnect() -> None:
    """End this process's Ray connection if spark-ray made it (which stops the embedded Ray)."""
    import ray

    with _Connection.lock:
        if _Connection.owned and ray.is_initialized():
            ray.shutdown()
        _Connection.forget()


def _disconnect_from(address: str) -> None:
    """Disconnect if this process is joined to the Ray at ``address`` (one about to stop)."""
    spec = _Connection.spec
    if spec is not None and spec.address == address:
        _disconnect()


def _disconnect_at_exit() -> None:
    """Disconnect at the interpreter's exit (registered once per process)."""
    if not _Connection.exit_hook:
        atexit.register(_disconnect)
        _Connection.exit_hook = True


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


def shutdown() -> None:
    """Disconnect from Ray, stopping the embedded Ray or this driver's Ray-on-Spark cluster if
    spark-ray started them (``spark_ray.shutdown()``; Ray on Spark also stops at the driver's exit)."""
    _disconnect()
    ray_on_spark.stop_cluster()


def ensure_worker_ray(spec: RaySpec) -> None:
    """Join the driver's Ray from a Spark Python worker, once per process and spec.

    A ``ray://`` spec makes this worker a Ray Client of the same server as the driver (one client
    connection per worker process, reused by every partition it runs). The connection closes when the
    spec changes, at a normal interpreter exit (the hook below, and Ray's own), or with the process:
    Spark ends its Python workers with ``os._exit`` or a signal, and the Ray Client server then drops
    its side after its reconnect grace period (``RAY_CLIENT_RECONNECT_GRACE_PERIOD``, 30 s).
    """
    # Ray reads its auth settings when it is imported (and caches the token): set them first.
    imported_before = "ray" in sys.modules
    changed = apply_auth_env(spec.auth_env)
    import ray

    with _Connection.lock:
        if _Connection.spec == spec and ray.is_initialized():
            return
        if ray.is_initialized():
            ray.shutdown()
        if imported_before and changed:
            reload_auth_settings()
        _init_ray(spec.address, spec.namespace, spec.runtime_env_dict())
        _Connection.spec = spec
        _Connection.owned = True
        _disconnect_at_exit()
