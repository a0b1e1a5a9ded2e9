"""The driver path's relay server: executors upload chunks and fetch each chunk's result.

In driver data mode every Spark task uploads the chunks of its partition to
this server (``do_put``, straight to an Arrow file in the intake directory)
and then fetches each chunk's result back (``do_get`` of a ``result/...``
ticket). In between, a ``Relay`` decides what happens to a chunk (in
``driver_path``: a Ray task reads it from this same server, as a shard, and
its output is the result). The server owns the chunk files: it serves each
one as a shard while the relay may need it, and deletes it once the relay
says the chunk is done with.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.flight as flight

from .data_server import ServerAddress, clear_when_unreachable
from .shard_server import ShardHandle, ShardServer

ChunkKey = tuple[int, int]  # (Spark partition, chunk number within it)

_RESULT_TICKET = "result"


class Relay(Protocol):
    """What happens between a chunk's upload and the fetch of its result."""

    def accept(self, key: ChunkKey, path: str, shard: ShardHandle) -> None:
        """A chunk was uploaded whole (again, if a Spark task was retried); ``shard`` serves it."""

    def result(self, key: ChunkKey) -> pa.Table:
        """The chunk's result, once ready (blocks until then)."""

    def result_sent(self, key: ChunkKey) -> bool:
        """The result went out whole; True when the chunk is done with and its upload may go."""


class RelayServer(ShardServer):
    """A shard server that also takes executors' uploads and serves their results.

    Args:
        relay: decides what each uploaded chunk becomes.
        intake_dir: where uploaded chunks are written; the server removes each
            file once its chunk is done with, so the directory ends empty.
    """

    def __init__(self, relay: Relay, intake_dir: str, host: str = "127.0.0.1", idle_timeout_s: float = 300.0) -> None:
        super().__init__(host, idle_timeout_s)
        self.relay = relay
        self.intake_dir = intake_dir
        self._chunk_shards: dict[ChunkKey, int] = {}
        self._next_shard = 0
        self._chunks_lock = threading.Lock()

    def do_put(self, context: Any, descriptor: flight.FlightDescriptor, reader: Any, writer: Any) -> None:
        """Take one chunk of a partition from an executor, straight to disk, and hand it to the relay."""
        partition, seq = (int(part) for part in descriptor.path)
        key = (partition, seq)
        path = self._chunk_path(key)
        with pa.OSFile(path + ".part", "wb") as sink, pa.ipc.new_file(sink, reader.schema) as file_writer:
            for chunk in reader:
                file_writer.write_batch(chunk.data)
        os.replace(path + ".part", path)  # a retried Spark task rewrites the same chunk whole
        with self._chunks_lock:
            index = self._chunk_shards.get(key)
            if index is None:
                index = self._chunk_shards[key] = self._next_shard
                self._next_shard += 1
        self.relay.accept(key, path, self.add_shard(index, path))

    def _chunk_path(self, key: ChunkKey) -> str:
        return os.path.join(self.intake_dir, f"in-{key[0]:06d}-{key[1]:06d}.arrow")

    def _other_ticket(self, text: str) -> flight.FlightDataStream:
        if not text.startswith(_RESULT_TICKET + "/"):
            return super()._other_ticket(text)
        _, partition, seq = text.split("/")
        key = (int(partition), int(seq))
        table = self.relay.result(key)

        def batches_then_release() -> Iterator[pa.RecordBatch]:
            yield from table.to_batches()
            if self.relay.result_sent(key):  # only once the executor has had every batch
                self._discard(key)

        return flight.GeneratorStream(table.schema, batches_then_release())

    def _discard(self, key: ChunkKey) -> None:
        with self._chunks_lock:
            index = self._chunk_shards.pop(key, None)
        if index is not None:
            self.drop_shard(index)
        with contextlib.suppress(FileNotFoundError):
            os.remove(self._chunk_path(key))


class RelayClient:
    """An executor task's line to the driver's relay: upload a chunk, fetch its result."""

    def __init__(self, server: ServerAddress) -> None:
        self.server = server
        self._client = flight.FlightClient(server.location)
        self._options = server.call_options()
        self._unreachable = f"the driver's data server at {server} cannot be reached from here"

    def push(self, key: ChunkKey, table: pa.Table) -> None:
        descriptor = flight.FlightDescriptor.for_path(*(str(part) for part in key))
        with clear_when_unreachable(self._unreachable):
            writer, _ = self._client.do_put(descriptor, table.schema, self._options)
            writer.write_table(table)
            writer.close()

    def fetch(self, key: ChunkKey) -> pa.Table:
        ticket = flight.Ticket("/".join((_RESULT_TICKET, *(str(part) for part in key))).encode())
        with clear_when_unreachable(self._unreachable):
            return self._client.do_get(ticket, self._options).read_all()

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> RelayClient:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
