"""Spark Connect: DataFrames of a ``SparkSession.builder.remote("sc://...")`` session, in every path.

A Spark Connect server (pyspark's own, local[2]) runs as a subprocess on a free port on
127.0.0.1, in its own session. A Connect client cannot live in this test process beside
the shared classic session: pyspark refuses a remote builder while a SparkContext is up
(SESSION_ALREADY_EXIST), and a Connect session switches pyspark's functions to Connect
for the whole process. So this file, run as a script, is the client: a child Python
process with the embedded Ray (token auth on, with a token of its own that the server
never sees but through the job) runs every scenario once and prints one JSON line;
the tests assert on it. The server's Python workers join the child's Ray with the
RaySpec each job carries. At the end the server's process group is killed and nothing
of it, or of the child, may be left.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

from processes import (  # noqa: E402
    free_port,
    kill_pids,
    process_tree,
    result_of,
    spark_env,
    spark_home_dir,
    wait_gone,
    write_result,
)

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
pytestmark = pytest.mark.needs_spark4(
    reason="pyspark 3.5 ships no Spark Connect server (its spark-connect jar comes from Maven, not with pyspark)"
)
IDLE_TIMEOUT = 123  # spark.ray.data_server_idle_timeout on the server's command line


# --------------------------------------------------------------------------- the child (the Connect client)


def _twice(row: dict[str, Any]) -> dict[str, Any]:
    import ray

    return {"id": row["id"], "twice": row["id"] * 2, "name": row["name"], "gcs": ray.get_runtime_context().gcs_address}


class Tagger:
    """A callable class: its actors load once and tag every batch with their pid."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(self, batch: Any) -> Any:
        import pandas as pd

        return pd.DataFrame({"id": batch["id"], "tag": [f"{self.prefix}{i}" for i in batch["id"]], "pid": os.getpid()})


def _model_program(ctx: Any) -> Any:
    """Reads every shard, and says where it ran and with which job tags and Ray token."""
    import pandas as pd
    from pyspark import TaskContext

    ids = sorted(row["id"] for row in ctx.fetch_once())
    task = TaskContext.get()
    return pd.DataFrame(
        {
            "n": [len(ids)],
            "total": [sum(ids)],
            "in_spark_task": [task is not None],
            "job_tags": [task.getLocalProperty("spark.job.tags") if task is not None else None],
            "ray_token": [os.environ.get("RAY_AUTH_TOKEN")],
            "pid": [os.getpid()],
        }
    )


def _sleepy(row: dict[str, Any]) -> dict[str, Any]:
    time.sleep(20)
    return row


def _broken(row: dict[str, Any]) -> dict[str, Any]:
    raise ValueError(f"no {row['id']}")


SQL_CODE = """
from pyjava.api.mlsql import RayContext
ray_context = RayContext.connect(context, "local")
ray_context.foreach(lambda row: {"id": row["id"], "twice": row["id"] * 2})
"""


def _outcome(run: Callable[[], Any]) -> dict[str, Any]:
    started = time.monotonic()
    try:
        return {"ok": run(), "seconds": round(time.monotonic() - started, 1)}
    except BaseException as error:  # noqa: BLE001 - every failure is a finding for the parent
        return {
            "error": f"{type(error).__name__}: {error}",
            "traceback": traceback.format_exc()[-3000:],
            "seconds": round(time.monotonic() - started, 1),
        }


def _rows(df: Any) -> dict[str, Any]:
    return {"schema": df.schema.simpleString(), "rows": sorted([list(row) for row in df.collect()])}


def child_main(remote: str) -> dict[str, Any]:
    """Every scenario over the Connect session at ``remote``; one result (or error) per scenario."""
    import ray
    from pyspark.sql import SparkSession

    import spark_ray
    from spark_ray import cluster
    from spark_ray.conf import RayTransformConf, resolve_conf
    from spark_ray.spark_session_kind import is_connect, kind_of

    spark = SparkSession.builder.remote(remote).getOrCreate()
    found: dict[str, Any] = {"is_connect": is_connect(spark), "session_class": type(spark).__module__}
    spec = cluster.ensure_driver_ray(RayTransformConf())
    found["client_gcs"] = ray.get_runtime_context().gcs_address
    found["client_pid"] = os.getpid()
    found["ray_session_dir"] = ray._private.worker._global_node.get_session_dir_path()
    found["spec_has_token"] = dict(spec.auth_env).get("RAY_AUTH_TOKEN") == os.environ["RAY_AUTH_TOKEN"]

    df = spark.createDataFrame([(i, f"n{i}") for i in range(20)], "id long, name string").repartition(3)
    df.createOrReplaceTempView("connect_t")
    found["parallelism"] = _outcome(lambda: kind_of(spark).default_parallelism())
    found["launch_conf"] = _outcome(lambda: resolve_conf(spark, {}).data_server_idle_timeout)
    found["executors_on_this_host"] = _outcome(lambda: kind_of(spark).executors_on_this_host())

    schema = "id long, twice long, name string, gcs string"

    def data(run_in: str) -> dict[str, Any]:
        return _rows(spark_ray.ray_transform(df, _twice, schema, run_in=run_in))

    def pool(run_in: str) -> dict[str, Any]:
        out = spark_ray.ray_transform(
            df.select("id"), Tagger, "id long, tag string, pid long", run_in=run_in, kind="pandas",
            concurrency=(1, 2), fn_constructor_kwargs={"prefix": "t"},
        )  # fmt: skip
        return _rows(out)

    def model(run_in: str) -> dict[str, Any]:
        group = f"connect-model-{run_in}-{secrets.token_hex(4)}"
        out = spark_ray.ray_transform(
            df, _model_program, "n long, total long, in_spark_task boolean, job_tags string, ray_token string, pid long",
            mode="model", run_in=run_in, job_group=group,
        )  # fmt: skip
        return {"group": group, **_rows(out)}

    for run_in in ("executor", "driver"):
        found[f"data_{run_in}"] = _outcome(functools.partial(data, run_in))
        found[f"pool_{run_in}"] = _outcome(functools.partial(pool, run_in))
        found[f"model_{run_in}"] = _outcome(functools.partial(model, run_in))

    def to_dataset() -> dict[str, Any]:
        ds = spark_ray.to_ray_dataset(df.select("id", "name"))
        types = dict(zip(ds.schema().names, map(str, ds.schema().types)))
        return {"count": ds.count(), "sum": ds.sum("id"), "types": types}

    found["to_ray_dataset"] = _outcome(to_dataset)

    def from_dataset() -> dict[str, Any]:
        ds = ray.data.range(50).map_batches(lambda b: {"id": b["id"], "sq": b["id"] ** 2})
        return _rows(spark_ray.from_ray_dataset(spark, ds))

    found["from_ray_dataset"] = _outcome(from_dataset)

    def registered() -> dict[str, Any]:
        function = spark_ray.register_function(
            spark, "connect_tag", lambda row: {"id": row["id"], "tag": row["name"].upper()}, "id long, tag string"
        )
        return {"class": type(function).__module__, **_rows(spark.sql("SELECT * FROM connect_tag(TABLE(connect_t))"))}

    found["register_function"] = _outcome(registered)

    def table_function() -> dict[str, Any]:
        spark_ray.register(spark)
        query = "SELECT * FROM ray_transform(TABLE(connect_t), :code, 'id long, twice long')"
        return _rows(spark.sql(query, args={"code": SQL_CODE}))

    found["table_function"] = _outcome(table_function)

    # Job groups are Connect operation tags: the caller's own tags stay; a failure interrupts the group.
    def caller_tags() -> dict[str, Any]:
        spark.addTag("callers-tag")
        try:
            out = spark_ray.ray_transform(df, _twice, schema, run_in="driver", job_group="connect-group")
            return {"rows": out.count(), "tags_after": sorted(spark.getTags())}
        finally:
            spark.removeTag("callers-tag")

    found["caller_tags"] = _outcome(caller_tags)
    found["driver_failure"] = _outcome(
        lambda: spark_ray.ray_transform(df, _broken, "id long, name string", run_in="driver").count()
    )
    found["tags_after_failure"] = sorted(spark.getTags())
    found["job_description"] = _outcome(
        lambda: spark_ray.ray_transform(df, _twice, schema, run_in="driver", job_description="named").count()
    )
    found["bad_group"] = _outcome(
        lambda: spark_ray.ray_transform(df, _twice, schema, run_in="driver", job_group="a,b").count()
    )

    def interrupt() -> dict[str, Any]:
        group = f"connect-interrupt-{secrets.token_hex(4)}"
        outcome: dict[str, Any] = {}

        def call() -> None:
            one = df.limit(1).repartition(1)
            outcome.update(_outcome(lambda: spark_ray.ray_transform(one, _sleepy, "id long, name string",
                                                                    run_in="driver", job_group=group).count()))  # fmt: skip

        worker = threading.Thread(target=call)
        started = time.monotonic()
        worker.start()
        interrupted: list[str] = []
        while not interrupted and time.monotonic() - started < 15 and worker.is_alive():
            time.sleep(1)
            interrupted = spark.interruptTag(group)
        worker.join(60)
        return {**outcome, "interrupted": len(interrupted), "seconds": time.monotonic() - started}

    found["interrupt"] = _outcome(interrupt)
    spark.stop()
    cluster.shutdown()
    return found


# --------------------------------------------------------------------------- the parent (pytest)


def _start_server(log_path: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    command = [
        os.path.join(spark_home_dir(), "bin", "spark-submit"), "--class", SERVER_CLASS, "--master", "local[2]",
        "--conf", f"spark.connect.grpc.binding.port={port}", "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
        "--conf", "spark.driver.host=127.0.0.1", "--conf", "spark.ui.enabled=false",
        "--conf", "spark.sql.shuffle.partitions=4",
        "--conf", f"spark.ray.data_server_idle_timeout={IDLE_TIMEOUT}",
    ]  # fmt: skip
    # The server knows nothing of the client's Ray token: its workers must get it from the job.
    env = {key: value for key, value in spark_env().items() if not key.startswith("RAY_")}
    with open(log_path, "wb") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 90
    import socket

    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the Spark Connect server exited with {server.returncode}:\n{_tail(log_path)}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return server, port
        time.sleep(0.5)
    _stop_server(server)
    raise TimeoutError(f"the Spark Connect server did not listen on 127.0.0.1:{port} in 90 s:\n{_tail(log_path)}")


def _stop_server(server: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)
    server.wait(timeout=30)


def _tail(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as log:
        return log.read()[-4000:]


@pytest.fixture(scope="module")
def connect_server() -> Iterator[int]:
    """The Spark Connect server, local[2] on a free loopback port; killed with everything it started."""
    with tempfile.TemporaryDirectory(prefix="spark-connect-") as scratch:
        log_path = os.path.join(scratch, "server.log")
        server, port = _start_server(log_path)
        marker = f"spark.connect.grpc.binding.port={port}"
        try:
            yield port
        finally:
            pids = process_tree(marker)
            _stop_server(server)
            kill_pids(pids)
            left = wait_gone(process_tree(marker) + pids, 30)
            assert not left, f"Spark Connect server processes left: {left}"


@pytest.fixture(scope="module")
def found(connect_server: int) -> dict[str, Any]:
    """Run the client child once; kill its process group whatever happens; nothing of its Ray may stay."""
    token = secrets.token_hex(16)
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    env.pop("RAY_ADDRESS", None)
    child = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), f"sc://127.0.0.1:{connect_server}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        stdout, stderr = child.communicate(timeout=900)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    result = result_of(subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr))
    session_dir = result["ray_session_dir"]
    left = wait_gone(process_tree(session_dir), 30)
    assert not left, f"processes of the child's Ray ({session_dir}) left: {left}"
    result["token"] = token
    seconds = {name: value["seconds"] for name, value in result.items() if isinstance(value, dict)}
    print(f"Spark Connect scenarios (s): {seconds}")
    return result


def _ok(found: dict[str, Any], name: str) -> Any:
    outcome = found[name]
    assert "error" not in outcome, f"{name}: {outcome['error']}\n{outcome.get('traceback', '')}"
    return outcome["ok"]


def _error(found: dict[str, Any], name: str) -> str:
    outcome = found[name]
    assert "error" in outcome, f"{name} should have failed, got {outcome.get('ok')!r}"
    return outcome["error"]


IDS = list(range(20))


def test_the_session_is_a_connect_one_with_the_servers_settings(found):
    assert found["is_connect"] and found["session_class"].startswith("pyspark.sql.connect.")
    assert _ok(found, "parallelism") == 2  # local[2], counted without a SparkContext
    assert _ok(found, "launch_conf") == float(IDLE_TIMEOUT)  # the server's --conf spark.ray.*
    assert _ok(found, "executors_on_this_host") is True
    assert found["spec_has_token"]


@pytest.mark.parametrize("run_in", ["executor", "driver"])
def test_data_mode_runs_on_the_clients_ray(found, run_in):
    got = _ok(found, f"data_{run_in}")
    assert got["schema"] == "struct<id:bigint,twice:bigint,name:string,gcs:string>"
    assert [row[:3] for row in got["rows"]] == [[i, 2 * i, f"n{i}"] for i in IDS]
    assert {row[3] for row in got["rows"]} == {found["client_gcs"]}


@pytest.mark.parametrize("run_in", ["executor", "driver"])
def test_a_callable_class_runs_in_an_actor_pool(found, run_in):
    got = _ok(found, f"pool_{run_in}")
    assert got["schema"] == "struct<id:bigint,tag:string,pid:bigint>"
    assert [row[:2] for row in got["rows"]] == [[i, f"t{i}"] for i in IDS]
    assert 1 <= len({row[2] for row in got["rows"]}) <= 2 and found["client_pid"] not in {row[2] for row in got["rows"]}


def test_model_mode_on_the_driver_runs_in_the_client_process(found):
    got = _ok(found, "model_driver")
    assert got["schema"] == (
        "struct<n:bigint,total:bigint,in_spark_task:boolean,job_tags:string,ray_token:string,pid:bigint>"
    )
    ((n, total, in_task, _tags, _token, pid),) = got["rows"]
    assert (n, total, in_task, pid) == (20, sum(IDS), False, found["client_pid"])


def test_model_mode_in_an_executor_runs_in_the_servers_worker_with_the_tag_and_the_token(found):
    got = _ok(found, "model_executor")
    ((n, total, in_task, tags, token, pid),) = got["rows"]
    assert (n, total, in_task) == (20, sum(IDS), True)
    assert pid != found["client_pid"]
    assert got["group"] in tags  # the job group became a Connect operation tag, seen as a Spark job tag
    assert token == found["token"]  # the server never had it: it travelled in the job's RaySpec


def test_to_ray_dataset(found):
    got = _ok(found, "to_ray_dataset")
    assert got["count"] == 20 and got["sum"] == sum(IDS)
    assert got["types"] == {"id": "int64", "name": "string"}


def test_from_ray_dataset(found):
    got = _ok(found, "from_ray_dataset")
    assert got["schema"] == "struct<id:bigint,sq:bigint>"
    assert got["rows"] == [[i, i * i] for i in range(50)]


def test_register_function_over_connect(found):
    got = _ok(found, "register_function")
    assert got["class"] == "pyspark.sql.connect.udtf"
    assert got["schema"] == "struct<id:bigint,tag:string>"
    assert got["rows"] == [[i, f"N{i}"] for i in IDS]


def test_the_sql_table_function_over_connect(found):
    got = _ok(found, "table_function")
    assert got["schema"] == "struct<id:bigint,twice:bigint>"
    assert got["rows"] == [[i, 2 * i] for i in IDS]


def test_job_groups_leave_the_callers_tags(found):
    assert _ok(found, "caller_tags") == {"rows": 20, "tags_after": ["callers-tag"]}
    assert found["tags_after_failure"] == []


def test_a_failing_driver_call_raises_the_users_error(found):
    error = _error(found, "driver_failure")
    assert error.startswith("UserCodeError") and "ValueError: no " in error


def test_interrupt_tag_stops_a_driver_call_by_its_job_group(found):
    got = _ok(found, "interrupt")
    assert got["interrupted"] >= 1 and "[OPERATION_CANCELED]" in got.get("error", ""), got
    assert got["seconds"] < 20  # before the Ray task's 20 s sleep could finish


def test_job_description_is_refused_naming_spark_connect(found):
    error = _error(found, "job_description")
    assert error.startswith(
        "ConfigError: job_description (a Spark job description) is not available over Spark Connect"
    )


def test_a_job_group_with_a_comma_is_refused(found):
    error = _error(found, "bad_group")
    assert error.startswith("ConfigError: job_group='a,b' cannot be a Spark Connect operation tag")


if __name__ == "__main__":
    write_result(child_main(sys.argv[1]))
