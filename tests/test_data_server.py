"""The driver-side data server: Arrow Flight, a job token, an idle timeout."""

from __future__ import annotations

import time

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from spark_ray.data_server import DataServer, ShardHandle, fetch_batches, fetch_table
from spark_ray.errors import DataServerError

TABLE = pa.table({"id": [1, 2, 3], "text": ["a", "中国", None]})


def test_shard_can_be_read_more_than_once_from_memory_or_file(tmp_path):
    path = str(tmp_path / "shard.arrow")
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, TABLE.schema) as writer:
        writer.write_table(TABLE)
    with DataServer() as server:
        in_memory, on_disk = server.add_shard(0, TABLE), server.add_shard(1, path)
        for handle in (in_memory, on_disk, in_memory):
            assert fetch_table(handle).equals(TABLE)
        assert pa.Table.from_batches(list(fetch_batches(on_disk))).equals(TABLE)
        assert str(in_memory) == f"127.0.0.1:{server.port}" and "token" not in repr(in_memory)


def test_request_without_the_token_is_refused():
    with DataServer() as server:
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


def test_unknown_shard_is_a_clear_error():
    with DataServer() as server:
        with pytest.raises(flight.FlightServerError, match="shard 7 is not served here"):
            fetch_table(server.handle(7))


def test_idle_server_closes_itself():
    server = DataServer(idle_timeout_s=1.0)
    handle = server.add_shard(0, TABLE)
    assert fetch_table(handle).num_rows == 3  # a client resets the idle clock
    deadline = time.monotonic() + 10
    while not server.closed and time.monotonic() < deadline:
        time.sleep(0.2)
    assert server.closed
    with pytest.raises(DataServerError, match=f"the data server at 127.0.0.1:{server.port} is gone"):
        fetch_table(handle)


def test_closed_server_refuses_connections():
    with DataServer() as server:
        handle = server.add_shard(0, TABLE)
    with pytest.raises(DataServerError, match="it closes when its job ends"):
        fetch_table(ShardHandle(handle.host, handle.port, handle.token, 0))


def test_uploads_land_on_disk_in_order_and_need_the_token(tmp_path):
    from spark_ray.data_server import push_tables

    with DataServer(intake_dir=str(tmp_path)) as server:
        intake = server.handle(-1)
        assert push_tables(intake, 3, [TABLE, TABLE.slice(0, 1)]) == 4
        uploads = [server.uploads.get(timeout=5), server.uploads.get(timeout=5)]
        assert [key for key, _ in uploads] == [(3, 0), (3, 1)]
        with pa.memory_map(uploads[0][1]) as source:
            assert pa.ipc.open_file(source).read_all().equals(TABLE)
        with pytest.raises(flight.FlightUnauthenticatedError):
            push_tables(ShardHandle(intake.host, intake.port, "not-the-token", -1), 0, [TABLE])


def test_server_without_intake_refuses_uploads():
    from spark_ray.data_server import push_tables

    with DataServer() as server:
        with pytest.raises(flight.FlightServerError, match="takes no uploads"):
            push_tables(server.handle(-1), 0, [TABLE])
