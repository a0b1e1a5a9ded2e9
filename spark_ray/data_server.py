"""What every driver-side data server shares: Arrow Flight, a job token, an idle timeout.

Byzer served data from raw sockets on the driver; users met "connection
refused" and servers that outlived their job. Here a data server is an Arrow
Flight server bound to one host on a random free port, refusing every request
that does not carry its job's secret token, closing itself after an idle
timeout, and closed by its job on success or failure (use it as a context
manager). Two kinds build on this base:

* ``shard_server.ShardServer`` serves a table's shards to whoever holds a
  handle (model mode's ``data_servers()``, the driver path's Ray tasks);
* ``relay_server.RelayServer`` also takes uploads from executors and serves
  each upload's result back (the driver path's relay).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow.flight as flight

from .conf import RayTransformConf
from .errors import DataServerError

log = logging.getLogger(__name__)

_AUTH_HEADER = "authorization"


@dataclass(frozen=True)
class ServerAddress:
    """How to reach one data server: host, port and the job's token.

    ``str()`` is ``host:port``; the token never shows in ``str`` or ``repr``,
    so an address can be logged or put in an error message.
    """

    host: str
    port: int
    token: str

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    def __repr__(self) -> str:
        return f"ServerAddress({self.host}:{self.port})"

    @property
    def location(self) -> str:
        return f"grpc://{self.host}:{self.port}"

    def call_options(self, timeout_s: float | None = None) -> flight.FlightCallOptions:
        """Flight call options carrying the token."""
        header = (_AUTH_HEADER.encode(), f"Bearer {self.token}".encode())
        return flight.FlightCallOptions(headers=[header], timeout=timeout_s)


class _TokenCheck(flight.ServerMiddlewareFactory):
    """Refuses calls without the job's token; counts calls for the idle timer."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.expected = f"Bearer {token}"
        self.lock = threading.Lock()
        self.active_calls = 0
        self.last_activity = time.monotonic()

    def start_call(self, info: Any, headers: dict[str, list[Any]]) -> flight.ServerMiddleware:
        given = headers.get(_AUTH_HEADER, [])
        first = given[0] if given else b""
        presented = first if isinstance(first, bytes) else str(first).encode("utf-8", "replace")
        # Bytes, in constant time: a str with non-ASCII text would make compare_digest raise instead.
        if not secrets.compare_digest(presented, self.expected.encode()):
            log.warning("spark-ray data server refused a %s call: %s job token", _method_name(info),
                        "wrong" if given else "no")  # fmt: skip
            raise flight.FlightUnauthenticatedError("spark-ray data server: missing or wrong job token")
        with self.lock:
            self.active_calls += 1
            self.last_activity = time.monotonic()
        return _CallDone(self)

    def call_finished(self) -> None:
        with self.lock:
            self.active_calls -= 1
            self.last_activity = time.monotonic()

    def idle_for(self) -> float:
        with self.lock:
            return 0.0 if self.active_calls else time.monotonic() - self.last_activity


def _method_name(info: Any) -> str:
    method = getattr(info, "method", None)
    return str(getattr(method, "name", method) or "Flight")


class _CallDone(flight.ServerMiddleware):
    def __init__(self, factory: _TokenCheck) -> None:
        super().__init__()
        self.factory = factory

    def call_completed(self, exception: Any) -> None:
        self.factory.call_finished()


class DataServer(flight.FlightServerBase):
    """A token-checked Flight server that closes itself after ``idle_timeout_s`` without a client.

    Uploads are refused here; ``RelayServer`` is the one kind that takes them.
    """

    def __init__(self, host: str = "127.0.0.1", idle_timeout_s: float = 300.0) -> None:
        token = secrets.token_urlsafe(24)
        self._auth = _TokenCheck(token)
        super().__init__(f"grpc://{host}:0", middleware={"auth": self._auth})
        self.address = ServerAddress(host, self.port, token)
        self._closed = threading.Event()
        self._idle_timeout_s = idle_timeout_s
        self._watchdog = threading.Thread(
            target=self._close_when_idle, name=f"spark-ray-data-server-{self.port}", daemon=True
        )
        self._watchdog.start()
        log.debug("%s listening on %s", type(self).__name__, self.address)

    @property
    def host(self) -> str:
        return self.address.host

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self.shutdown()
            self._forget_everything()

    def _forget_everything(self) -> None:
        """Drop whatever the server holds, once it has stopped serving."""

    def __enter__(self) -> DataServer:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _close_when_idle(self) -> None:
        tick = min(1.0, self._idle_timeout_s / 4)
        while not self._closed.wait(tick):
            if self._auth.idle_for() > self._idle_timeout_s:
                log.warning(
                    "spark-ray data server %s had no client for %.0f s and closed itself",
                    self.address,
                    self._idle_timeout_s,
                )
                threading.Thread(target=self.close, daemon=True).start()
                return

    def do_put(self, context: Any, descriptor: flight.FlightDescriptor, reader: Any, writer: Any) -> None:
        raise flight.FlightServerError("this data server takes no uploads")


@contextlib.contextmanager
def clear_when_unreachable(what: str) -> Iterator[None]:
    """Turn Flight's "unavailable" into a DataServerError that says which server and why."""
    try:
        yield
    except flight.FlightUnavailableError as error:
        raise DataServerError(f"{what}: {error}") from None


def server_host(conf: RayTransformConf, spark_is_local: bool) -> str:
    """The one address a driver-side data server listens on, reachable by all its readers: the
    configured host, loopback when Spark's executors (``spark_is_local``) and Ray all run on this host,
    else this host's address as Ray's nodes reach it."""
    host = conf.data_server_bind_host(spark_is_local=spark_is_local)
    if host is not None:
        return host
    from .cluster import node_ip_address

    return node_ip_address()
