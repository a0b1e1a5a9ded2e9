"""Faults, each caused for real: a Ray worker process that dies, a data-server client cut off
mid-stream, a Spark executor JVM killed mid-job, a Ray node killed mid-job, the embedded Ray killed
between two calls. Each ends with the exact output or a clear error naming what was lost, never a hang
(a timeout guards every wait), and leaves no process behind.

The faults that would harm the test session's own Spark or Ray run in a child process
(``faults_child.py``): a local-cluster session cannot share a process with the session's local[2].
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import threading

import pytest
from processes import RayCluster, process_tree, result_of, run_child, spark_env, wait_gone

from spark_ray import RayWorkLostError, ray_transform

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "faults_child.py")
SCHEMA = "id long, twice long"
EXPECTED = [[i, 2 * i] for i in range(40)]


def rows_of(df) -> list[list[int]]:
    return sorted([row["id"], row["twice"]] for row in df.collect())


def within(seconds: float, spark, action):
    """``action()``'s result, or a failure (and Spark's jobs cancelled) if it takes over ``seconds``: a
    guard against hangs, no timing claim. Its exception, if it raises, is raised here."""
    done: dict = {}

    def run() -> None:
        try:
            done["value"] = action()
        except BaseException as error:  # noqa: BLE001 - handed to the test
            done["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        spark.sparkContext.cancelAllJobs()
        thread.join(30.0)
        pytest.fail(f"still running after {seconds} s: a hang")
    if "error" in done:
        raise done["error"]
    return done["value"]


def _die_at(row_id: int):
    """A row function whose Ray worker process ends itself (as a crash or the OOM killer would) at ``row_id``."""

    def die_at(row: dict) -> dict:
        if row["id"] == row_id:
            os.kill(os.getpid(), signal.SIGKILL)
        return {"id": row["id"], "twice": 2 * row["id"]}

    return die_at


@pytest.fixture
def small_arrow_batches(arrow_batch_rows):
    """Spark hands Python 5-row Arrow batches, so a 10-row shard streams as two: one can stop between them."""
    arrow_batch_rows(5)


# --- 1. max_retries=0 and a worker that dies ----------------------------------------------------


@pytest.mark.parametrize("run_in", ["executor", "driver"])
def test_a_dying_worker_with_max_retries_0_fails_naming_the_shard(spark, small_arrow_batches, run_in):
    df = spark.range(0, 40, numPartitions=2)
    with pytest.raises(Exception) as caught:  # the driver path runs at the call, the executor path at collect()
        within(
            120.0,
            spark,
            lambda: ray_transform(df, _die_at(27), SCHEMA, run_in=run_in, max_retries=0, batch_rows=5).collect(),
        )
    text = str(caught.value)
    # Row 27 is in partition 1 (rows 20-39), its 8th row: shard 1 of 5-row shards, or chunk 1 of that partition.
    where = (
        "shard 1 (5 rows from row 5) of Spark partition 1" if run_in == "executor" else "chunk 1 of Spark partition 1"
    )
    assert f"the Ray worker process running {where} died; max_retries=0, so Ray did not run it again" in text
    assert "WorkerCrashedError" in text
    if run_in == "driver":
        assert isinstance(caught.value, RayWorkLostError)


# --- 2. model mode: a Ray worker that dies mid-stream, a client that disconnects and comes back -------


@pytest.mark.parametrize("run_in", ["executor", "driver"])
def test_model_mode_reruns_a_ray_task_whose_worker_died_mid_stream(spark, small_arrow_batches, tmp_path, run_in):
    died = str(tmp_path / "died")

    def program(context) -> None:
        import ray

        from spark_ray.context import RayContext

        @ray.remote  # Ray's default retries: a task whose worker process died runs again
        def read(handle) -> list:
            rows = []
            for batch in RayContext.fetch_once_as_batches(handle):
                rows += batch.to_pylist()
                if handle.index == 1 and not os.path.exists(died):
                    open(died, "w").close()
                    os.kill(os.getpid(), signal.SIGKILL)  # one batch read, one still to come
            return [{"id": row["id"], "twice": 2 * row["id"]} for row in rows]

        shards = context.data_servers()
        assert len(shards) == 4, shards
        context.build_result([row for rows in ray.get([read.remote(h) for h in shards]) for row in rows])

    df = spark.range(0, 40, numPartitions=4)
    out = within(180.0, spark, lambda: ray_transform(df, program, SCHEMA, mode="model", run_in=run_in, batch_rows=10))
    assert rows_of(out) == EXPECTED
    assert os.path.exists(died), "the worker never died: the fault did not happen"


def test_a_data_server_client_cut_off_mid_stream_gets_the_whole_shard_again(spark, small_arrow_batches):
    seen: dict = {}

    def program(context) -> None:
        from spark_ray.context import RayContext, fetch_rows

        rows = []
        for handle in context.data_servers():
            stream = RayContext.fetch_once_as_batches(handle)
            first = next(stream)  # half the shard read...
            stream.close()  # ...and the client gone: its connection closes mid-stream
            seen.setdefault("first_batches", []).append(first.num_rows)
            rows += [{"id": row["id"], "twice": 2 * row["id"]} for row in fetch_rows(handle)]  # back for all of it
        context.build_result(rows)

    df = spark.range(0, 40, numPartitions=4)
    out = within(120.0, spark, lambda: ray_transform(df, program, SCHEMA, mode="model", run_in="driver", batch_rows=10))
    assert rows_of(out) == EXPECTED
    assert seen["first_batches"] == [5, 5, 5, 5], "each first read should have stopped halfway through its shard"


# --- 3-5. faults in a process of their own -------------------------------------------------------


def _ray_dir() -> str:
    """A short private temp dir for a child's embedded Ray (Ray's socket paths must stay short): every
    process of that Ray names it, so none can be missed at cleanup, nor any other Ray's hit."""
    return tempfile.mkdtemp(prefix="srf-", dir="/tmp")


def _child_env(**extra: str) -> dict[str, str]:
    env = spark_env(RAY_USAGE_STATS_ENABLED="0", **extra)
    env.pop("RAY_ADDRESS", None)
    return env


def _assert_nothing_left(patterns: list[str]) -> None:
    pids = sorted({pid for pattern in patterns for pid in process_tree(pattern)})
    assert wait_gone(pids, 30.0) == [], f"processes left behind: {pids}"


@pytest.fixture(scope="module")
def executor_killed(tmp_path_factory):
    """One child on local-cluster[2,1,1024] runs the three paths, killing an executor JVM in each."""
    ray_dir = _ray_dir()
    try:
        marker_dir = str(tmp_path_factory.mktemp("executor-killed"))
        done = run_child(
            [sys.executable, CHILD, "spark-executor-killed", marker_dir], _child_env(RAY_TMPDIR=ray_dir), 480.0
        )
        found = result_of(done)
        _assert_nothing_left([ray_dir, found["app_id"]])
        return found
    finally:
        shutil.rmtree(ray_dir, ignore_errors=True)


def _assert_rerun_exactly(found: dict, path: str) -> None:
    result = found[path]
    assert "error" not in result, f"{path}: {result['error']}"
    assert result["gone"], f"{path}: executor {result['killed_executor']} survived SIGKILL"
    assert result["failed_tasks"] >= 1, f"{path}: no task failed, so the kill missed the job"
    assert result["rows"] == [[i, 2 * i] for i in range(80)], path


def test_a_spark_executor_killed_mid_job_executor_path_is_rerun_exactly(executor_killed):
    _assert_rerun_exactly(executor_killed, "executor_data")


@pytest.mark.needs_spark4(
    "the driver path's result is a local checkpoint; only pyspark 4's localCheckpoint(storageLevel=...) can "
    "keep a second copy of its blocks, so on 3.5 a block of a killed executor is lost for good",
    version="4.0",
)
def test_a_spark_executor_killed_mid_job_driver_path_keeps_every_row(executor_killed):
    _assert_rerun_exactly(executor_killed, "driver_data")


def test_a_spark_executor_killed_mid_job_model_program_is_rerun_exactly(executor_killed):
    _assert_rerun_exactly(executor_killed, "model")


def test_the_ray_node_running_the_tasks_killed_mid_job_ends_the_job_naming_the_node(tmp_path):
    root = _ray_dir()
    head = RayCluster.start_head(os.path.join(root, "ray"), num_cpus=1)
    try:
        head.add_node(num_cpus=1, resources={"alice": 1})
        done = run_child(
            [sys.executable, CHILD, "ray-node-killed", head.address, str(tmp_path)],
            _child_env(RAY_AUTH_MODE="token"),
            300.0,
        )
        found = result_of(done)
    finally:
        pids = head.processes()
        head.stop()
        assert wait_gone(pids, 30.0) == [], "the Ray cluster left processes behind"
        shutil.rmtree(root, ignore_errors=True)
    assert found["nodes"] == 2 and len(found["alice"]) == 1
    assert found["killed_pids"] >= 1 and found["left"] == []
    # Only the killed node had `alice`: no other node can run the tasks, so the job cannot finish there.
    assert "finished" not in found, f"finished without the only node able to run its tasks: {found}"
    error = found["error"]
    assert "can no longer run: its Ray task needs" in error and "'alice': 0.5" in error
    assert f"the node that had it died: {found['alice'][0]}" in error


def test_the_embedded_ray_killed_between_calls_is_replaced_by_the_next_call():
    ray_dir = _ray_dir()
    try:
        done = run_child([sys.executable, CHILD, "embedded-ray-killed"], _child_env(RAY_TMPDIR=ray_dir), 300.0)
        found = result_of(done)
        expected = [[i, 2 * i] for i in range(20)]
        assert found["before"] == expected
        assert found["killed"] >= 3 and found["left"] == []
        for path in ("executor", "driver", "model"):
            assert found[path] == expected, f"{path}: {found[path]}"
        assert found["gcs_after"] != found["gcs_before"], "the calls after the kill did not start a new Ray"
        assert f"the embedded Ray this driver started (at '{found['gcs_before']}') is gone" in done.stderr
        _assert_nothing_left([ray_dir])
    finally:
        shutil.rmtree(ray_dir, ignore_errors=True)


def test_a_raylet_that_hangs_at_start_is_stopped_and_the_embedded_ray_started_again():
    ray_dir = _ray_dir()
    try:
        done = run_child([sys.executable, CHILD, "raylet-hangs-at-start"], _child_env(RAY_TMPDIR=ray_dir), 300.0)
        found = result_of(done)
        assert found["rows"] == [[i, 2 * i] for i in range(20)]
        first = found["first_attempt"]
        assert first["raylet"] in first["pids"] and len(first["pids"]) >= 2, first
        assert found["first_attempt_left"] == [], "processes of the failed start outlived it"
        assert "the embedded Ray's node did not come up (The current node timed out during startup" in done.stderr
        assert "starting it once more" in done.stderr
        _assert_nothing_left([ray_dir])
    finally:
        shutil.rmtree(ray_dir, ignore_errors=True)
