"""The driver-side data server: Arrow Flight, a job token, an idle timeout."""

from __future__ import annotations

import time

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from spark_ray.data_server import ServerAddress
from spark_ray.errors import DataServerError
from spark_ray.relay_server import RelayClient, RelayServer
from spark_ray.shard_server import ShardHandle, ShardServer, fetch_batches, fetch_table

TABLE = pa.table({"id": [1, 2, 3], "text": ["a", "中国", None]})


def test_shard_can_be_read_more_than_once_from_memory_or_file(tmp_path):
    path = str(tmp_path / "shard.arrow")
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, TABLE.schema) as writer:
        writer.write_table(TABLE)
    with ShardServer() as server:
        in_memory, on_disk = server.add_shard(0, TABLE), server.add_shard(1, path)
        for handle in (in_memory, on_disk, in_memory):
            assert fetch_table(handle).equals(TABLE)
        assert pa.Table.from_batches(list(fetch_batches(on_disk))).equals(TABLE)
        assert str(in_memory) == f"127.0.0.1:{server.port}" and "token" not in repr(in_memory)


def test_request_without_the_token_is_refused_and_logged_without_it(caplog):
    with ShardServer() as server:
        server.add_shard(0, TABLE)
        client = flight.FlightClient(f"grpc://127.0.0.1:{server.port}")
        try:
            with pytest.raises(flight.FlightUnauthenticatedError, match="missing or wrong job token"):
                client.do_get(flight.Ticket(b"0")).read_all()
            wrong = flight.FlightCallOptions(headers=[(b"authorization", b"Bearer not-the-token")])
            with pytest.raises(flight.FlightUnauthenticatedError):
                client.do_get(flight.Ticket(b"0"), wrong).read_all()
            with pytest.raises(flight.FlightUnauthenticatedError):
                list(client.list_flights())
        finally:
            client.close()
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert (
        len(refusals) == 3
        and any("no job token" in m for m in refusals)
        and any("wrong job token" in m for m in refusals)
    )
    assert not any(server.address.token in m or "not-the-token" in m for m in refusals)


def test_unknown_shard_is_a_clear_error():
    with ShardServer() as server:
        with pytest.raises(flight.FlightServerError, match="shard 7 is not served here"):
            fetch_table(server.handle(7))


def test_idle_server_closes_itself():
    server = ShardServer(idle_timeout_s=1.0)
    handle = server.add_shard(0, TABLE)
    assert fetch_table(handle).num_rows == 3  # a client resets the idle clock
    deadline = time.monotonic() + 10
    while not server.closed and time.monotonic() < deadline:
        time.sleep(0.2)
    assert server.closed
    with pytest.raises(DataServerError, match=f"the data server at 127.0.0.1:{server.port} is gone"):
        fetch_table(handle)


def test_closed_server_refuses_connections():
    with ShardServer() as server:
        handle = server.add_shard(0, TABLE)
    with pytest.raises(DataServerError, match="it closes when its job ends"):
        fetch_table(ShardHandle(handle.host, handle.port, handle.token, 0))


class _DoublingRelay:
    """A relay that answers each uploaded chunk with the chunk twice over, and records what it saw."""

    def __init__(self) -> None:
        self.accepted: list[tuple[tuple[int, int], str]] = []
        self.sent: list[tuple[int, int]] = []
        self.paths: dict[tuple[int, int], str] = {}

    def accept(self, key, path, shard):
        self.accepted.append((key, path))
        self.paths[key] = path

    def result(self, key):
        with pa.memory_map(self.paths[key]) as source:
            table = pa.ipc.open_file(source).read_all()
        return pa.concat_tables([table, table])

    def result_sent(self, key):
        self.sent.append(key)
        return False


def test_relay_takes_uploads_to_disk_and_serves_their_results(tmp_path):
    relay = _DoublingRelay()
    with RelayServer(relay, str(tmp_path)) as server, RelayClient(server.address) as client:
        client.push((3, 0), TABLE)
        client.push((3, 1), TABLE.slice(0, 1))
        assert [key for key, _ in relay.accepted] == [(3, 0), (3, 1)]
        with pa.memory_map(relay.accepted[0][1]) as source:
            assert pa.ipc.open_file(source).read_all().equals(TABLE)
        assert relay.sent == []
        assert client.fetch((3, 1)).to_pydict() == {"id": [1, 1], "text": ["a", "a"]}
        assert client.fetch((3, 0)).num_rows == 6
        assert relay.sent == [(3, 1), (3, 0)]  # told once each result was streamed whole


def test_relay_needs_the_token(tmp_path):
    with RelayServer(_DoublingRelay(), str(tmp_path)) as server:
        intake = server.address
        with RelayClient(ServerAddress(intake.host, intake.port, "not-the-token")) as client:
            with pytest.raises(flight.FlightUnauthenticatedError):
                client.push((0, 0), TABLE)
            with pytest.raises(flight.FlightUnauthenticatedError):
                client.fetch((0, 0))


def test_server_without_a_relay_refuses_uploads_and_result_requests():
    with ShardServer() as server, RelayClient(server.address) as client:
        with pytest.raises(flight.FlightServerError, match="takes no uploads"):
            client.push((0, 0), TABLE)
        with pytest.raises(flight.FlightServerError, match="relays no results"):
            client.fetch((0, 0))


def test_unreachable_relay_is_a_clear_error():
    with ShardServer() as server:
        gone = server.address
    with RelayClient(gone) as client, pytest.raises(DataServerError, match="cannot be reached from here"):
        client.push((0, 0), TABLE)
