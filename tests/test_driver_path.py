"""Driver data mode: the relay on the driver between Spark tasks and Ray tasks."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from spark_ray import driver_path, ray_transform
from spark_ray.driver_path import DriverRelay
from spark_ray.errors import UserCodeError
from spark_ray.pickling import pickle_with_user_module
from spark_ray.relay_server import RelayClient, RelayServer
from spark_ray.runners import RayRunner
from spark_ray.shard_program import ShardProgram
from spark_ray.user_code import UserFunction

TABLE = pa.table({"id": [1, 2, 3]})


def _runner(fn) -> RayRunner:
    program = ShardProgram(UserFunction.from_callable(fn, "row"), TABLE.schema)
    return RayRunner(uuid.uuid4().hex, pickle_with_user_module(program, fn), {})


def _doubling_runner() -> RayRunner:
    def double(row):
        return {"id": row["id"] * 2}

    return _runner(double)


@pytest.fixture
def relay_server(spark, tmp_path):
    """A data server with a DriverRelay in front of the session's Ray, and what the relay stopped."""
    stopped: list[str] = []
    relay = DriverRelay(_doubling_runner(), on_failure=lambda: stopped.append("job"))
    with RelayServer(relay, str(tmp_path)) as server:
        yield server, relay, stopped
        relay.close()


def test_each_upload_runs_a_ray_task_whose_result_comes_back(relay_server, tmp_path):
    server, _, stopped = relay_server
    with RelayClient(server.address) as client:
        client.push((0, 0), TABLE)
        client.push((0, 1), TABLE.slice(1))
        assert client.fetch((0, 1)).column("id").to_pylist() == [4, 6]
        assert client.fetch((0, 0)).column("id").to_pylist() == [2, 4, 6]
    assert os.listdir(tmp_path) == [] and stopped == []  # each chunk's file goes once its result is out


def test_a_retried_spark_task_gets_the_results_again(relay_server, tmp_path):
    server, _, _ = relay_server
    with RelayClient(server.address) as client:
        client.push((5, 0), TABLE)
        client.push((5, 0), TABLE)  # the retry uploads while the first attempt has fetched nothing
        assert client.fetch((5, 0)).column("id").to_pylist() == [2, 4, 6]
        assert client.fetch((5, 0)).column("id").to_pylist() == [2, 4, 6]
        assert os.listdir(tmp_path) == []
        client.push((5, 0), TABLE)  # after every upload was answered: a fresh Ray task
        assert client.fetch((5, 0)).column("id").to_pylist() == [2, 4, 6]
        with pytest.raises(flight.FlightServerError, match=r"no chunk \(5, 0\) was uploaded"):
            client.fetch((5, 0))


def test_a_failed_ray_task_stops_the_job_and_is_kept_for_the_driver(relay_server):
    server, relay, stopped = relay_server
    with RelayClient(server.address) as client:
        client.push((0, 0), pa.table({"id": [1, None]}))  # None * 2 fails in the user's function
        with pytest.raises(flight.FlightServerError, match="the Ray task of chunk \\(0, 0\\) failed") as caught:
            client.fetch((0, 0))
        # The executor's message points at the driver, which raises the cause once (Spark logs every task's).
        assert "the driver raises the cause" in str(caught.value) and "unsupported operand" not in str(caught.value)
        assert isinstance(relay.error, UserCodeError) and "unsupported operand" in str(relay.error)
        assert stopped == ["job"]
        with pytest.raises(flight.FlightServerError, match="the job has already failed"):
            client.push((0, 1), TABLE)


def test_closing_the_relay_releases_a_waiting_fetch(spark, tmp_path):
    def slow(row):
        import time

        time.sleep(60)
        return row

    relay = DriverRelay(_runner(slow), on_failure=lambda: None)
    with RelayServer(relay, str(tmp_path)) as server:
        with RelayClient(server.address) as client:
            client.push((0, 0), TABLE)
            closer = threading.Timer(1.0, relay.close)
            closer.start()
            started = time.monotonic()
            with pytest.raises(flight.FlightServerError, match=r"the job ended before chunk \(0, 0\) had its result"):
                client.fetch((0, 0))
            assert time.monotonic() - started < 30  # not the task's 60 s
            with pytest.raises(flight.FlightServerError, match="the job has ended; no more uploads"):
                client.push((0, 1), TABLE)
            closer.join()


class _RecordingServer(RelayServer):
    """The real data server, remembering where each one listened."""

    opened: list[tuple[str, int]] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _RecordingServer.opened.append((self.host, self.port))


def _refuses(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(2)
        return probe.connect_ex((host, port)) != 0


def test_nothing_is_left_behind_after_success_or_failure(spark, tmp_path, monkeypatch):
    monkeypatch.setattr(driver_path, "RelayServer", _RecordingServer)
    _RecordingServer.opened.clear()
    df = spark.range(0, 5_000, numPartitions=3)
    out = ray_transform(
        df, lambda row: {"id": row["id"] + 1}, "id long", run_in="driver", spill_dir=str(tmp_path), batch_rows=600
    )
    assert [r.id for r in out.collect()] == list(range(1, 5_001))

    def fail_on_4321(row):
        if row["id"] == 4321:
            raise ValueError("no 4321 here")
        return row

    with pytest.raises(UserCodeError, match="no 4321 here"):
        ray_transform(df, fail_on_4321, "id long", run_in="driver", spill_dir=str(tmp_path), batch_rows=600)
    assert len(_RecordingServer.opened) == 2 and all(_refuses(host, port) for host, port in _RecordingServer.opened)
    assert os.listdir(tmp_path) == []  # the intake directories and their chunk files are gone
