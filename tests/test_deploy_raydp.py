"""Spark on Ray through RayDP: a SparkSession from ``raydp.init_spark`` runs ray_transform on the same Ray.

RayDP starts Spark's master and executors as Ray actors (Java workers) on a Ray the driver has already
joined (``raydp.init_spark`` calls ``ray.init()`` itself if nobody did). spark-ray then finds that
connection (the user's ``ray.init``: it never starts its own Ray beside it) and uses it: in executor
mode, Spark's Python workers, forked by the RayDP executor actors, join the same Ray and run the shards
as Ray tasks; in driver mode and model mode the driver runs them. raydp 1.6.5 needs pyspark <= 3.5.7,
so this module runs on the pyspark 3.5 line only (``make test-spark35``) and skips elsewhere.

The session fixture's local[2] SparkSession cannot become a RayDP one, so the whole scenario runs once
in a child process (this file, run as a script), under its own Ray temp dir and in its own process
group; the tests read its JSON result, and one checks that nothing of it is left running.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from spark_ray import own_processes

ROWS = 40

if __name__ != "__main__":
    pytest.importorskip(
        "raydp", reason="raydp is not installed: RayDP needs pyspark <= 3.5.7, tested by `make test-spark35`"
    )
    from processes import kill_pids, process_tree, result_of, wait_gone


def _group_members(pgid: int) -> list[int]:
    table = subprocess.run(["ps", "-eo", "pid=,pgid="], capture_output=True, text=True).stdout
    return [int(pid) for pid, group in (line.split() for line in table.splitlines()) if int(group) == pgid]


@pytest.fixture(scope="module")
def found():
    """Run the child once; afterwards record what of it is still running, then stop that."""
    temp_dir = tempfile.mkdtemp(prefix="srdp-", dir="/tmp")  # short: Ray's socket paths live under it
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", PYSPARK_PYTHON=sys.executable)
    env.pop("RAY_ADDRESS", None)
    started = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), temp_dir],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        stdout, stderr = child.communicate(timeout=420)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        stdout, stderr = child.communicate()
    seconds = time.monotonic() - started
    # What a clean stop leaves behind: nothing in the child's process group or under its Ray temp dir.
    leftover = sorted(set(_group_members(child.pid)) | set(process_tree(temp_dir)))
    leftover = wait_gone(leftover, 30.0)
    leftover_commands = {pid: _command(pid) for pid in leftover}
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    kill_pids(process_tree(temp_dir))
    shutil.rmtree(temp_dir, ignore_errors=True)
    result = result_of(subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr))
    result["leftover"] = leftover_commands
    result["seconds"] = seconds
    return result


def _command(pid: int) -> str:
    return own_processes.command_line(pid)[:300] or "?"


def _expected_rows() -> list[list[object]]:
    return [[i, f"r{i}!", 2 * i] for i in range(ROWS)]


def test_raydp_session_runs_spark_on_ray(found):
    assert found["master"].startswith("ray://"), found["master"]
    assert found["spark_version"].startswith("3.5.")
    assert found["executors"] == 1


def test_executor_mode_runs_shards_as_ray_tasks_started_by_the_raydp_executors(found):
    executor = found["executor"]
    assert executor["rows"] == _expected_rows()
    # Each Spark Python worker joins Ray as a job of its own: the tasks are not the driver's.
    assert executor["jobs"] and found["driver_job"] not in executor["jobs"]
    assert executor["plan_has_map_in_arrow"]


def test_driver_mode_runs_shards_as_the_drivers_ray_tasks(found):
    driver = found["driver"]
    assert driver["rows"] == _expected_rows()
    assert driver["jobs"] == [found["driver_job"]]


@pytest.mark.parametrize("run_in", ["driver", "executor"])
def test_model_mode_reads_every_shard_in_ray_tasks(found, run_in):
    model = found[f"model_{run_in}"]
    assert model["rows"] == [[ROWS, sum(range(ROWS))]]


def test_raydp_stop_and_ray_shutdown_leave_nothing_running(found):
    assert found["stopped"]
    assert found["leftover"] == {}


# ---------------------------------------------------------------------------------------------------------------
# The child: a driver program as a RayDP user writes it.


def _tag(row):
    import ray

    return {"id": row["id"], "s": row["s"] + "!", "twice": 2 * row["id"], "job": ray.get_runtime_context().get_job_id()}


def _model(context):
    import pandas as pd
    import ray

    from spark_ray.context import RayContext

    @ray.remote
    def ids(shard):
        return [row["id"] for row in RayContext.fetch_once_as_rows(shard)]

    found = [i for part in ray.get([ids.remote(shard) for shard in context.data_servers()]) for i in part]
    return pd.DataFrame({"n": [len(found)], "total": [sum(found)]})


def _child(temp_dir: str) -> None:
    import ray
    import raydp

    from spark_ray import ray_transform

    # Ray's workers, RayDP's executors among them, inherit the driver's environment: Spark's Python
    # workers must run this interpreter.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    ray.init(num_cpus=3, include_dashboard=False, _temp_dir=temp_dir, logging_level="WARNING")
    result: dict[str, object] = {"driver_job": ray.get_runtime_context().get_job_id()}
    spark = raydp.init_spark("spark-ray-on-raydp", num_executors=1, executor_cores=1, executor_memory="500M")
    try:
        result["master"] = spark.sparkContext.master
        result["spark_version"] = spark.version
        df = spark.range(0, ROWS, numPartitions=2).selectExpr("id", "concat('r', cast(id as string)) AS s")
        schema = "id long, s string, twice long, job string"
        for run_in in ("executor", "driver"):
            out = ray_transform(df, _tag, schema, run_in=run_in)
            rows = sorted(out.collect())
            result[run_in] = {
                "rows": [[r.id, r.s, r.twice] for r in rows],
                "jobs": sorted({r.job for r in rows}),
                "plan_has_map_in_arrow": "MapInArrow" in out._jdf.queryExecution().toString(),
            }
        for run_in in ("driver", "executor"):
            out = ray_transform(df, _model, "n long, total long", mode="model", run_in=run_in)
            result[f"model_{run_in}"] = {"rows": [[r.n, r.total] for r in out.collect()]}
        # Counted once jobs have run: RayDP's executor actors register with the driver after init_spark returns.
        result["executors"] = spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1  # minus the driver
    finally:
        raydp.stop_spark()
        ray.shutdown()
    result["stopped"] = not ray.is_initialized()
    from processes import write_result

    write_result(result)


if __name__ == "__main__":
    _child(sys.argv[1])
