"""Ray's token authentication, checked before connecting to a cluster by address.

Clusters started with `ray start` on Ray 2.5x+ demand a token by default, yet
a process that connects by an explicit address sends one only when
``RAY_AUTH_MODE=token`` is in its environment. Without it, Ray's client
retries for about ten seconds, logging a warning a second, and then fails
with an error that never mentions the token. So, before ``ray.init``:

* a token this process has (``RAY_AUTH_TOKEN``, or ``~/.ray/auth_token``) is
  used when ``RAY_AUTH_MODE`` is unset, as Ray itself does for a cluster it
  finds on its own;
* one GCS call (milliseconds) tells whether the cluster accepts what we will
  send, so a missing or wrong token is one clear error, at once.

The token itself is never put in a message.
"""

from __future__ import annotations

import os

from .errors import RayConnectionError

AUTH_MODE_ENV = "RAY_AUTH_MODE"
TOKEN_ENV = "RAY_AUTH_TOKEN"
PROBE_TIMEOUT_S = 5.0


def available_token() -> str | None:
    """The token this process would send: ``RAY_AUTH_TOKEN``, else the one in ``~/.ray/auth_token``."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return token
    try:
        with open(os.path.expanduser("~/.ray/auth_token"), encoding="utf-8") as token_file:
            return token_file.read().strip() or None
    except OSError:
        return None


def use_available_token() -> bool:
    """Turn token mode on for this process when its mode is unset and it has a token; whether it is on."""
    mode = os.environ.get(AUTH_MODE_ENV)
    if mode is None and available_token() is not None:
        os.environ[AUTH_MODE_ENV] = "token"
        return True
    return (mode or "").lower() == "token"


def check_cluster_accepts(gcs_address: str) -> None:
    """Fail at once, and clearly, if the cluster at ``gcs_address`` (``host:port``) refuses our token
    (or our lack of one). Anything else (unreachable, another protocol) is left to ``ray.init``.

    Raises:
        RayConnectionError: the cluster demands a token this process lacks, or rejects the one it has.
    """
    try:
        import grpc
        from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc
    except ImportError:  # a Ray without these modules: ray.init will say what it says
        return
    token = available_token() if (os.environ.get(AUTH_MODE_ENV) or "").lower() == "token" else None
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    with grpc.insecure_channel(gcs_address) as channel:
        stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
        try:
            request = gcs_service_pb2.GetClusterIdRequest()  # type: ignore[attr-defined]
            stub.GetClusterId(request, timeout=PROBE_TIMEOUT_S, metadata=metadata)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAUTHENTICATED:
                return
            raise RayConnectionError(_refusal(gcs_address, sent_token=token is not None)) from None


def _refusal(gcs_address: str, sent_token: bool) -> str:
    if sent_token:
        return (
            f"the Ray cluster at {gcs_address!r} rejected this process's auth token (from {TOKEN_ENV} or "
            "~/.ray/auth_token): it is not that cluster's token. Copy the cluster's token (`ray get-auth-token` "
            f"on its head node) into {TOKEN_ENV} or ~/.ray/auth_token."
        )
    return (
        f"the Ray cluster at {gcs_address!r} requires an auth token, and this process has none: set "
        f"{TOKEN_ENV} (or put the token in ~/.ray/auth_token), with {AUTH_MODE_ENV}=token. `ray get-auth-token` "
        "on the cluster's head node prints it; spark-ray passes it on to the executors."
    )
