"""Ray's token authentication: every place spark-ray reads, sets, passes on or hides the token.

Ray reads its auth settings from the environment when it is imported (and
caches the token), so the settings are set before ``import ray`` where that
can be done, and read again (``reload_auth_settings``) where Ray was imported
first. The driver's settings travel to the executors inside the ``RaySpec``
(``auth_env``); a Ray that spark-ray starts itself (the embedded one, Ray on
Spark) is started with a token.

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
import sys
from collections.abc import Iterable

from .errors import RayConnectionError

AUTH_MODE_ENV = "RAY_AUTH_MODE"
TOKEN_ENV = "RAY_AUTH_TOKEN"
# Ray 2.5x+ clusters started by `ray start` or by ray.init(address="local") may demand a token;
# executors must carry the driver's.
AUTH_ENV_KEYS = (AUTH_MODE_ENV, TOKEN_ENV)
PROBE_TIMEOUT_S = 5.0

AuthEnv = tuple[tuple[str, str], ...]


def auth_env() -> AuthEnv:
    """This process's auth settings, as they travel to the executors (the token file's token included)."""
    found = {key: os.environ[key] for key in AUTH_ENV_KEYS if os.environ.get(key)}
    if found.get(AUTH_MODE_ENV) == "token" and TOKEN_ENV not in found:
        token_path = os.path.expanduser("~/.ray/auth_token")
        if os.path.exists(token_path):
            with open(token_path, encoding="utf-8") as token_file:
                found[TOKEN_ENV] = token_file.read().strip()
    return tuple(sorted(found.items()))


def apply_auth_env(settings: AuthEnv) -> bool:
    """Put the driver's auth ``settings`` in this process's environment; whether any of them changed."""
    changed = [key for key, value in settings if os.environ.get(key) != value]
    for key, value in settings:
        os.environ[key] = value
    return bool(changed)


def reload_auth_settings() -> None:
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


def token_mode_unless_set() -> None:
    """Token auth for a new local Ray whose mode is unset.

    Ray turns it on itself in that case, with a warning on every start;
    saying so ourselves keeps the same protection without the warning
    (``RAY_AUTH_MODE=disabled`` still wins). Call with Ray imported.
    """
    if AUTH_MODE_ENV not in os.environ:
        os.environ[AUTH_MODE_ENV] = "token"
        reload_auth_settings()  # Ray read its settings when imported


def auth_for_a_new_cluster() -> dict[str, str]:
    """Token auth for a Ray cluster spark-ray starts (Ray on Spark): the settings its node processes get.

    An explicit ``RAY_AUTH_MODE`` is respected; in token mode the token this
    process has is used, else a new one. This process's own settings become
    the same, so that it joins the cluster it starts.
    """
    changed = False
    if os.environ.get(AUTH_MODE_ENV) is None:
        os.environ[AUTH_MODE_ENV] = "token"
        changed = True
    env = {AUTH_MODE_ENV: os.environ[AUTH_MODE_ENV]}
    if env[AUTH_MODE_ENV].lower() == "token":
        token = available_token() or _new_token()
        changed = changed or os.environ.get(TOKEN_ENV) != token
        os.environ[TOKEN_ENV] = env[TOKEN_ENV] = token
    if changed and "ray" in sys.modules:
        reload_auth_settings()
    return env


def _new_token() -> str:
    import secrets

    return secrets.token_hex(32)


def redact(text: str, also: Iterable[tuple[str, str]] = ()) -> str:
    """``text`` with any auth token this process knows (or ``also`` holds) replaced by ``<token>``:
    errors and logs may be shared, the token may not."""
    tokens = {value for key, value in (*auth_env(), *also) if key == TOKEN_ENV and value}
    for token in tokens:
        text = text.replace(token, "<token>")
    return text


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
