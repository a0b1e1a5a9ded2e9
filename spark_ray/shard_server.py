"""Serving a table's shards from the driver, and reading them anywhere.

A ``ShardServer`` holds shards by index, in memory or as Arrow files on the
driver's disk, and serves each to any process holding its ``ShardHandle``:
model-mode programs and their Ray tasks (``data_servers()``,
``fetch_once_as_rows``) and the driver path's Ray tasks, which read each
uploaded chunk this way. A shard may be read any number of times (Ray retries
tasks); it is served until dropped or until the server closes.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.flight as flight

from .arrow_files import read_shard_file
from .data_server import DataServer, ServerAddress, clear_when_unreachable


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

    @property
    def address(self) -> ServerAddress:
        return ServerAddress(self.host, self.port, self.token)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    def __repr__(self) -> str:  # never print the token
        return f"ShardHandle({self.host}:{self.port}, shard {self.index})"


class ShardServer(DataServer):
    """Serves the shards of one job until closed or idle for ``idle_timeout_s``."""

    def __init__(self, host: str = "127.0.0.1", idle_timeout_s: float = 300.0) -> None:
        super().__init__(host, idle_timeout_s)
        self._shards: dict[int, pa.Table | str] = {}
        self._shards_lock = threading.Lock()

    def add_shard(self, index: int, shard: pa.Table | str) -> ShardHandle:
        """Serve ``shard`` (a table in memory, or the path of an Arrow IPC file) as ``index``."""
        with self._shards_lock:
            self._shards[index] = shard
        return self.handle(index)

    def drop_shard(self, index: int) -> None:
        with self._shards_lock:
            self._shards.pop(index, None)

    def handle(self, index: int) -> ShardHandle:
        return ShardHandle(self.address.host, self.address.port, self.address.token, index)

    def _forget_everything(self) -> None:
        with self._shards_lock:
            self._shards.clear()

    def do_get(self, context: object, ticket: flight.Ticket) -> flight.FlightDataStream:
        text = ticket.ticket.decode(errors="replace")
        try:
            index = int(text)
        except ValueError:
            return self._other_ticket(text)
        with self._shards_lock:
            shard = self._shards.get(index)
        if shard is None:
            raise flight.FlightServerError(f"shard {index} is not served here (the job may have finished)")
        if isinstance(shard, str):
            shard = read_shard_file(shard)
        return flight.RecordBatchStream(shard)

    def _other_ticket(self, text: str) -> flight.FlightDataStream:
        """A ticket that names no shard; the relay server knows one more kind."""
        if text.startswith("result/"):
            raise flight.FlightServerError("this data server relays no results")
        raise flight.FlightServerError(f"not a shard ticket: {text!r}")


@contextlib.contextmanager
def _shard_reader(handle: ShardHandle) -> Iterator[flight.FlightStreamReader]:
    client = flight.FlightClient(handle.address.location)
    gone = f"the data server at {handle} is gone; it closes when its job ends or after its idle timeout"
    try:
        with clear_when_unreachable(gone):
            yield client.do_get(flight.Ticket(str(handle.index).encode()), handle.address.call_options())
    finally:
        client.close()


def fetch_batches(handle: ShardHandle) -> Iterator[pa.RecordBatch]:
    """Stream one shard's batches from its data server."""
    with _shard_reader(handle) as reader:
        for chunk in reader:
            yield chunk.data


def fetch_table(handle: ShardHandle) -> pa.Table:
    """One shard as a table (with the shard's schema even when it has no rows)."""
    with _shard_reader(handle) as reader:
        return reader.read_all()
