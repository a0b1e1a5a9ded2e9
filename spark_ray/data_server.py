"""Driver-side data servers: one job's shards over Arrow Flight.

Byzer served shards from raw sockets on the driver; users met "connection
refused" and servers that outlived their job. Here a ``DataServer`` is an
Arrow Flight server bound to one host on a random free port, refusing every
request that does not carry the job's secret token, closing itself after an
idle timeout, and closed by its job on success or failure (use it as a
context manager). A shard may be read any number of times (Ray retries
tasks); shards live in memory only while a task may still need them, or as
memory-mapped Arrow files when the whole table must stay readable (model mode).

In driver data mode the server is also a relay: executors upload chunks of
their partitions (``do_put``, to disk) and fetch each chunk's result back
(``do_get`` of a result ticket); a ``Relay`` attached to the server decides
what happens in between (a Ray task per chunk, see ``driver_path``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.flight as flight

from .arrow_files import read_shard_file
from .errors import DataServerError

log = logging.getLogger(__name__)

_AUTH_HEADER = "authorization"
_RESULT_TICKET = "result"

ChunkKey = tuple[int, int]  # (Spark partition, chunk number within it)


class Relay(Protocol):
    """What a data server does with uploaded chunks and result requests."""

    def accept(self, key: ChunkKey, path: str) -> None:
        """A chunk has been uploaded whole to ``path`` (again, if a Spark task was retried)."""

    def result(self, key: ChunkKey) -> pa.Table:
        """The chunk's result, once ready (blocks until then)."""

    def result_sent(self, key: ChunkKey) -> None:
        """The result has been streamed whole to the executor that asked for it."""


@dataclass(frozen=True)
class ShardHandle:
    """Where one shard is served: what ``data_servers()`` returns, one per shard.

    ``str(handle)`` is ``host:port`` as in pyjava; the token and the shard's
    index ride along so that any process (a Ray task) can fetch it.
    """

    host: str
    port: int
    token: str
    index: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    def __repr__(self) -> str:  # never print the token
        return f"ShardHandle({self.host}:{self.port}, shard {self.index})"


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
        given = [value.decode() if isinstance(value, bytes) else value for value in given]
        if not secrets.compare_digest(given[0] if given else "", self.expected):
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


class _CallDone(flight.ServerMiddleware):
    def __init__(self, factory: _TokenCheck) -> None:
        super().__init__()
        self.factory = factory

    def call_completed(self, exception: Any) -> None:
        self.factory.call_finished()


class DataServer(flight.FlightServerBase):
    """Serves the shards of one job until closed or idle for ``idle_timeout_s``."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        idle_timeout_s: float = 300.0,
        intake_dir: str | None = None,
        relay: Relay | None = None,
    ) -> None:
        self.token = secrets.token_urlsafe(24)
        # Uploads (do_put) land as Arrow files here and are handed to the relay; without both, uploads are refused.
        self.intake_dir = intake_dir
        self.relay = relay
        self._auth = _TokenCheck(self.token)
        super().__init__(f"grpc://{host}:0", middleware={"auth": self._auth})
        self.host = host
        self._shards: dict[int, pa.Table | str] = {}
        self._shards_lock = threading.Lock()
        self._closed = threading.Event()
        self._idle_timeout_s = idle_timeout_s
        self._watchdog = threading.Thread(
            target=self._close_when_idle, name=f"spark-ray-data-server-{self.port}", daemon=True
        )
        self._watchdog.start()
        log.debug("data server listening on %s:%s", host, self.port)

    # --- the job's side -------------------------------------------------
    def add_shard(self, index: int, shard: pa.Table | str) -> ShardHandle:
        """Serve ``shard`` (a table in memory, or the path of an Arrow IPC file) as ``index``."""
        with self._shards_lock:
            self._shards[index] = shard
        return self.handle(index)

    def drop_shard(self, index: int) -> None:
        with self._shards_lock:
            self._shards.pop(index, None)

    def handle(self, index: int) -> ShardHandle:
        return ShardHandle(self.host, self.port, self.token, index)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self.shutdown()
            with self._shards_lock:
                self._shards.clear()

    def __enter__(self) -> DataServer:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _close_when_idle(self) -> None:
        tick = min(1.0, self._idle_timeout_s / 4)
        while not self._closed.wait(tick):
            if self._auth.idle_for() > self._idle_timeout_s:
                log.warning(
                    "spark-ray data server %s:%s had no client for %.0f s and closed itself",
                    self.host, self.port, self._idle_timeout_s,
                )  # fmt: skip
                threading.Thread(target=self.close, daemon=True).start()
                return

    # --- Flight's side --------------------------------------------------
    def do_put(self, context: Any, descriptor: flight.FlightDescriptor, reader: Any, writer: Any) -> None:
        """Take one chunk of a partition from an executor, straight to disk, and hand it to the relay."""
        if self.intake_dir is None or self.relay is None:
            raise flight.FlightServerError("this data server takes no uploads")
        partition, seq = (int(part) for part in descriptor.path)
        path = os.path.join(self.intake_dir, f"in-{partition:06d}-{seq:06d}.arrow")
        with pa.OSFile(path + ".part", "wb") as sink, pa.ipc.new_file(sink, reader.schema) as file_writer:
            for chunk in reader:
                file_writer.write_batch(chunk.data)
        os.replace(path + ".part", path)  # a retried Spark task rewrites the same chunk whole
        self.relay.accept((partition, seq), path)

    def do_get(self, context: Any, ticket: flight.Ticket) -> flight.FlightDataStream:
        text = ticket.ticket.decode(errors="replace")
        if text.startswith(_RESULT_TICKET + "/"):
            return self._result_stream(text)
        try:
            index = int(text)
        except ValueError:
            raise flight.FlightServerError(f"not a shard ticket: {ticket.ticket!r}") from None
        with self._shards_lock:
            shard = self._shards.get(index)
        if shard is None:
            raise flight.FlightServerError(f"shard {index} is not served here (the job may have finished)")
        if isinstance(shard, str):
            shard = read_shard_file(shard)
        return flight.RecordBatchStream(shard)

    def _result_stream(self, ticket: str) -> flight.FlightDataStream:
        if self.relay is None:
            raise flight.FlightServerError("this data server relays no results")
        _, partition, seq = ticket.split("/")
        key = (int(partition), int(seq))
        relay = self.relay
        table = relay.result(key)

        def batches_then_release() -> Iterator[pa.RecordBatch]:
            yield from table.to_batches()
            relay.result_sent(key)  # only once the executor has had every batch

        return flight.GeneratorStream(table.schema, batches_then_release())


def _call_options(handle: ShardHandle, timeout_s: float | None = None) -> flight.FlightCallOptions:
    return flight.FlightCallOptions(
        headers=[(_AUTH_HEADER.encode(), f"Bearer {handle.token}".encode())], timeout=timeout_s
    )


@contextlib.contextmanager
def _shard_reader(handle: ShardHandle) -> Iterator[flight.FlightStreamReader]:
    client = flight.FlightClient(f"grpc://{handle.host}:{handle.port}")
    try:
        yield client.do_get(flight.Ticket(str(handle.index).encode()), _call_options(handle))
    except flight.FlightUnavailableError as error:
        raise DataServerError(
            f"the data server at {handle} is gone ({error}); it closes when its job ends or after its idle timeout"
        ) from None
    finally:
        client.close()


class RelayClient:
    """An executor task's line to the driver's relay: upload a chunk, fetch its result."""

    def __init__(self, server: ShardHandle) -> None:
        self.server = server
        self._client = flight.FlightClient(f"grpc://{server.host}:{server.port}")
        self._options = _call_options(server)

    def push(self, key: ChunkKey, table: pa.Table) -> None:
        descriptor = flight.FlightDescriptor.for_path(*(str(part) for part in key))
        with self._unreachable_is_clear():
            writer, _ = self._client.do_put(descriptor, table.schema, self._options)
            writer.write_table(table)
            writer.close()

    def fetch(self, key: ChunkKey) -> pa.Table:
        ticket = flight.Ticket("/".join((_RESULT_TICKET, *(str(part) for part in key))).encode())
        with self._unreachable_is_clear():
            return self._client.do_get(ticket, self._options).read_all()

    @contextlib.contextmanager
    def _unreachable_is_clear(self) -> Iterator[None]:
        try:
            yield
        except flight.FlightUnavailableError as error:
            raise DataServerError(
                f"the driver's data server at {self.server} cannot be reached from here: {error}"
            ) from None

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> RelayClient:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def fetch_batches(handle: ShardHandle) -> Iterator[pa.RecordBatch]:
    """Stream one shard's batches from its data server."""
    with _shard_reader(handle) as reader:
        for chunk in reader:
            yield chunk.data


def fetch_table(handle: ShardHandle) -> pa.Table:
    """One shard as a table (with the shard's schema even when it has no rows)."""
    with _shard_reader(handle) as reader:
        return reader.read_all()
