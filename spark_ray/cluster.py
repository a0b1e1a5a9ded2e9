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
import contextlib
import ipaddress
import itertools
import logging
import os
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import own_processes
from .conf import RayTransformConf
from .errors import ConfigError, RayConnectionError

log = logging.getLogger(__name__)

# Ray 2.5x+ clusters started by `ray start` or by ray.init(address="local") may
# demand a token; executors must carry the driver's.
_AUTH_ENV_KEYS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")

CLIENT_SCHEME = "ray://"
# The port `ray start --head` gives its Ray Client server unless told otherwise (--ray-client-server-port).
RAY_CLIENT_DEFAULT_PORT = 10001


def is_client_address(address: str | None) -> bool:
    """Whether ``address`` names a Ray Client server (``ray://host:port``) rather than a cluster's GCS."""
    return address is not None and address.startswith(CLIENT_SCHEME)


def split_host_port(address: str, default_port: int | None = None) -> tuple[str, int] | None:
    """``host`` and ``port`` of ``[ray://]host:port`` (IPv6 hosts in brackets), or None when it has
    no port (and no ``default_port``) or is not of that form."""
    rest = address[len(CLIENT_SCHEME) :] if is_client_address(address) else address
    if "://" in rest or "/" in rest or not rest:
        return None
    if rest.startswith("["):
        host, bracket, tail = rest[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
        if not bracket or (tail and not tail.startswith(":")):
            return None
    else:
        host, colon, port_text = rest.rpartition(":")
        if not colon:
            host, port_text = rest, ""
        if ":" in host:
            return None  # an IPv6 address without brackets: ambiguous
    if not port_text:
        return (host, default_port) if default_port is not None and host else None
    if not port_text.isdigit() or not host:
        return None
    return host, int(port_text)


def ray_client_answers(host: str, port: int, timeout_s: float = 3.0) -> bool | None:
    """Whether a Ray Client server answers at ``host:port``: True if one does (even one that refuses
    this process's token), False if something else does (a cluster's GCS port, any other server),
    None if nothing can be asked (nobody listens, Ray Client's packages are missing, no answer in time).
    """
    status = _ray_client_status(host, port, timeout_s)
    return {"ok": True, "refused": True, "other": False}.get(status)


def _ray_client_status(host: str, port: int, timeout_s: float) -> str:
    """What answers a Ray Client ping (``ClusterInfo(PING)``, the first call Ray's own client makes) at
    ``host:port``, sent with this process's token when token auth is on: "ok" (a Ray Client server),
    "refused" (one that wants another token, or one), "other" (a server that is no Ray Client server:
    a GCS answers UNIMPLEMENTED), or "unknown" (nobody listens, no grpc here, no answer in time).
    """
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError:
        return "unknown"
    try:
        import grpc
        from ray.core.generated import ray_client_pb2, ray_client_pb2_grpc
    except ImportError:
        return "unknown"
    channel = _grpc_channel(f"{host}:{port}")
    try:
        stub = ray_client_pb2_grpc.RayletDriverStub(channel)
        ping = ray_client_pb2.ClusterInfoRequest(type=ray_client_pb2.ClusterInfoType.PING)  # type: ignore[attr-defined]
        stub.ClusterInfo(ping, timeout=timeout_s)
        return "ok"
    except grpc.RpcError as error:
        code = error.code() if callable(getattr(error, "code", None)) else None
        if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            return "refused"
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return "unknown"
        return "other"
    finally:
        channel.close()


def _check_client_server(address: str, timeout_s: float = 5.0) -> None:
    """Before Ray's client tries (and retries with backoff for half a minute): fail at once where the
    server refuses this process's token (or its lack of one), or where what answers is no Ray Client
    server. A token this process has is used when the server asks for one and RAY_AUTH_MODE is unset,
    as for a cluster by GCS address (``ray_auth``)."""
    target = split_host_port(address, RAY_CLIENT_DEFAULT_PORT)
    if not is_client_address(address) or target is None:
        return
    status = _ray_client_status(*target, timeout_s)
    if status == "refused" and os.environ.get("RAY_AUTH_MODE") is None:
        from .ray_auth import use_available_token

        if use_available_token():
            _reload_auth_settings()
            status = _ray_client_status(*target, timeout_s)
    if status == "refused":
        from .ray_auth import available_token

        if (os.environ.get("RAY_AUTH_MODE") or "").lower() == "token" and available_token() is not None:
            why = (
                "rejected this process's auth token (from RAY_AUTH_TOKEN or ~/.ray/auth_token): it is not that "
                "cluster's token. Copy the cluster's token (`ray get-auth-token` on its head node) into "
                "RAY_AUTH_TOKEN or ~/.ray/auth_token"
            )
        else:
            why = (
                "requires an auth token, and this process sends none: set RAY_AUTH_TOKEN (or put the token in "
                "~/.ray/auth_token), with RAY_AUTH_MODE=token. `ray get-auth-token` on the cluster's head node "
                "prints it"
            )
        raise RayConnectionError(
            f"the Ray Client server at {address!r} {why}; spark-ray passes it on to the executors."
        )
    if status == "other":
        raise RayConnectionError(
            f"something answers at {address!r}, but not a Ray Client server (a cluster's GCS port, such as "
            f"6379, is named without ray://). The Ray Client server listens on port {RAY_CLIENT_DEFAULT_PORT} "
            "of the head unless `ray start --ray-client-server-port` says otherwise."
        )


def _grpc_channel(target: str) -> Any:
    """A channel as Ray's client makes it (with the token and TLS settings of this process), or a plain one."""
    try:
        from ray._private.grpc_utils import init_grpc_channel

        return init_grpc_channel(target, options=[], asynchronous=False)
    except ImportError:
        import grpc

        return grpc.insecure_channel(target)


def client_extra_message(address: str, error: BaseException) -> str:
    """What to say when a Ray Client address is asked for but Ray Client's packages are missing."""
    return (
        f"ray_address={address!r} is a Ray Client address, and Ray Client's packages are not installed in "
        f"this Python ({sys.executable}): pip install 'ray[client]' (or spark-ray's extra, "
        f"pip install 'spark-ray[client]') there. ({type(error).__name__}: {error})"
    )


def _check_client_extra(address: str) -> None:
    """Ray Client needs grpcio (the ``ray[client]`` extra); say so, naming the address, before Ray does."""
    if not is_client_address(address):
        return
    try:
        import grpc  # noqa: F401  (what Ray's own check imports)
    except ImportError as error:
        raise RayConnectionError(client_extra_message(address, error)) from None


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
    if address == "spark":  # Ray on Spark is started by the driver (register), never by a query's worker
        address = None
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
        lost = _drop_if_lost() if ray.is_initialized() and _Connection.owned else None
        if ray.is_initialized() and _Connection.asked == want and _Connection.spec is not None:
            return _Connection.spec
        if address is not None:  # an address that cannot work fails before the working connection is closed
            try:
                _check_client_extra(address)
                _check_reachable(address)
                _check_client_server(address)
            except RayConnectionError as error:
                if lost is None:
                    raise
                raise RayConnectionError(f"{lost} Connecting again failed: {error}") from None
        if ray.is_initialized() and _Connection.owned:
            ray.shutdown()
        if address is None:
            _start_embedded_ray(conf)
        elif address == "spark":  # Ray on Spark: a cluster in this Spark application; executors get its address
            from .ray_on_spark import cluster_address

            _init_ray(cluster_address(conf), conf.ray_namespace, conf.runtime_env)
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
    _Connection.owned = False
    _Connection.spec = None
    _Connection.asked = None
    _DRIVER_ACTORS.clear()
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
        local = _local_address_towards(*target) if target is not None else None
        if local is not None and not ipaddress.ip_address(local).is_loopback:
            return local
    return str(ray.util.get_node_ip_address())


def _local_address_towards(host: str, port: int) -> str | None:
    """The local address this host sends from to ``host`` (a UDP "connect" sends nothing), or None."""
    try:
        family, kind, proto, _, target = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.connect(target)
            return str(probe.getsockname()[0])
    except (OSError, IndexError):
        return None


def _start_embedded_ray(conf: RayTransformConf) -> None:
    import ray

    num_cpus = conf.local_ray_cpus or os.cpu_count() or 1
    log.info("starting an embedded local Ray with %s CPUs", num_cpus)
    # Ray turns token auth on for a new local cluster whose mode is unset, with a warning on every start;
    # saying so ourselves keeps the same protection without the warning (RAY_AUTH_MODE=disabled still wins).
    if "RAY_AUTH_MODE" not in os.environ:
        os.environ["RAY_AUTH_MODE"] = "token"
        _reload_auth_settings()  # Ray read its settings when imported
    for attempt in range(1, _EMBEDDED_START_ATTEMPTS + 1):
        before = own_processes.descendants()
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
            break
        except Exception as error:
            stopped = _stop_failed_start(before)
            if attempt == _EMBEDDED_START_ATTEMPTS or _NODE_START_TIMED_OUT not in str(error):
                raise RayConnectionError(f"could not start the embedded local Ray: {error}") from error
            log.warning(
                "spark-ray: the embedded Ray's node did not come up (%s); stopped the %d processes it had "
                "started, and starting it once more.",
                error,
                stopped,
            )
    if not _Connection.exit_hook:
        atexit.register(_shutdown_owned)
        _Connection.exit_hook = True


# Ray gives a new node's raylet a fixed 30 s to register with the GCS, then raises an error holding these
# words. On a loaded machine, or when the raylet dies before its first log line, a second start works.
_NODE_START_TIMED_OUT = "timed out during startup"
_EMBEDDED_START_ATTEMPTS = 2


def _stop_failed_start(before: set[int]) -> int:
    """Stop the Ray processes a failed ``ray.init`` left running (Ray never recorded them); how many."""
    import ray

    with contextlib.suppress(Exception):
        ray.shutdown()
    ray_package = os.path.dirname(ray.__file__)
    left = {pid for pid in own_processes.descendants() - before if ray_package in own_processes.command_line(pid)}
    still = own_processes.stop(left)
    if still:
        log.warning("spark-ray: processes of a failed Ray start would not stop: %s", sorted(still))
    return len(left)


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
    """Fail fast on an address nobody listens on: ray.init would retry for minutes (a GCS address)
    or for half a minute with backoff (a Ray Client address)."""
    if address == "auto":
        return
    target = split_host_port(address, RAY_CLIENT_DEFAULT_PORT if is_client_address(address) else None)
    if target is None:
        return
    host, port = target
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as error:
        if is_client_address(address):
            hint = (
                "Check that the cluster runs a Ray Client server there (`ray start --head` starts one on port "
                f"{RAY_CLIENT_DEFAULT_PORT}, or on --ray-client-server-port) and that this host can reach it."
            )
            raise RayConnectionError(f"could not reach the Ray Client server at {address!r}: {error}. {hint}") from None
        raise RayConnectionError(
            f"could not connect to the Ray cluster at {address!r}: {error}. Check that the cluster is "
            "running (`ray status --address ...`) and that this host can reach that address."
        ) from None


def _init_ray(address: str, namespace: str, runtime_env: dict[str, Any] | None) -> None:
    """Connect this process to the cluster at ``address`` (a GCS address, or ``ray://`` for Ray Client).

    The error names the address and never the token (see ``_redact``).
    """
    import ray

    _check_client_extra(address)
    _check_reachable(address)
    if not is_client_address(address) and address != "auto":
        from .ray_auth import check_cluster_accepts, use_available_token

        if use_available_token():
            _reload_auth_settings()
        check_cluster_accepts(address)
    _check_client_server(address)
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
        raise RayConnectionError(
            _redact(f"could not connect to {what} at {address!r}: {type(error).__name__}: {error}. {hint}")
        ) from None


def _redact(text: str) -> str:
    """``text`` with any auth token this process knows replaced by ``<token>``: errors and logs may be
    shared, the token may not."""
    tokens = {value for key, value in _auth_env() if key == "RAY_AUTH_TOKEN" and value}
    if _Connection.spec is not None:
        tokens |= {value for key, value in _Connection.spec.auth_env if key == "RAY_AUTH_TOKEN" and value}
    for token in tokens:
        text = text.replace(token, "<token>")
    return text


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
    """Join the driver's Ray from a Spark Python worker, once per process and spec.

    A ``ray://`` spec makes this worker a Ray Client of the same server as the driver (one client
    connection per worker process, reused by every partition it runs). The connection closes when the
    spec changes, at a normal interpreter exit (the hook below, and Ray's own), or with the process:
    Spark ends its Python workers with ``os._exit`` or a signal, and the Ray Client server then drops
    its side after its reconnect grace period (``RAY_CLIENT_RECONNECT_GRACE_PERIOD``, 30 s).
    """
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
        if not _Connection.exit_hook:
            atexit.register(_shutdown_owned)
            _Connection.exit_hook = True
