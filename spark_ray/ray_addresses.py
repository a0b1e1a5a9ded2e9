"""Ray addresses, and asking what answers at one before ``ray.init`` does.

An address is a cluster's GCS (``host:port``) or a Ray Client server
(``ray://host:port``). ``ray.init`` on an address nobody listens on retries
for minutes (a GCS) or for half a minute with backoff (a Ray Client server),
and on a server that refuses this process's token, or is no Ray Client
server at all, it fails with an error that says neither. The checks here ask
first, in seconds, and fail with an error that names the address and what to
do; the connection itself is ``cluster``'s.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

from .errors import RayConnectionError
from .ray_auth import available_token, reload_auth_settings, use_available_token

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


def check_client_server(address: str, timeout_s: float = 5.0) -> None:
    """Before Ray's client tries (and retries with backoff for half a minute): fail at once where the
    server refuses this process's token (or its lack of one), or where what answers is no Ray Client
    server. A token this process has is used when the server asks for one and RAY_AUTH_MODE is unset,
    as for a cluster by GCS address (``ray_auth``)."""
    target = split_host_port(address, RAY_CLIENT_DEFAULT_PORT)
    if not is_client_address(address) or target is None:
        return
    status = _ray_client_status(*target, timeout_s)
    if status == "refused" and os.environ.get("RAY_AUTH_MODE") is None:
        if use_available_token():
            reload_auth_settings()
            status = _ray_client_status(*target, timeout_s)
    if status == "refused":
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


def check_client_extra(address: str) -> None:
    """Ray Client needs grpcio (the ``ray[client]`` extra); say so, naming the address, before Ray does."""
    if not is_client_address(address):
        return
    try:
        import grpc  # noqa: F401  (what Ray's own check imports)
    except ImportError as error:
        raise RayConnectionError(client_extra_message(address, error)) from None


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
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


def local_address_towards(host: str, port: int) -> str | None:
    """The local address this host sends from to ``host`` (a UDP "connect" sends nothing), or None."""
    try:
        family, kind, proto, _, target = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.connect(target)
            return str(probe.getsockname()[0])
    except (OSError, IndexError):
        return None
