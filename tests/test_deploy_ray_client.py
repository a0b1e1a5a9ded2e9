"""Ray Client (``ray_address="ray://host:port"``): a `ray start` cluster with token auth and a Ray Client server
on a free port, used by every path (executor, driver, model mode, an actor pool, code strings), then stopped
with nothing left running.

The driver connects as a Ray Client; so does every Spark Python worker (once per process). Work is shown to
run on that cluster by the GCS port Ray reports inside the tasks and actors.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
import warnings

import pytest
from processes import RayCluster, free_port, process_tree, run_python, wait_gone

from spark_ray import RayConnectionError, RayTransformConf, cluster, ray_transform
from spark_ray.code_string import resolve_code_address

ROWS = [(i,) for i in range(1, 9)]
SCHEMA = "id long, gcs_port long"


def _gcs_port() -> int:
    import ray

    return int(ray.get_runtime_context().gcs_address.rsplit(":", 1)[1])


def _where_am_i(row):
    return {"id": row["id"], "gcs_port": _gcs_port()}


@pytest.fixture(scope="module")
def head(spark, tmp_path_factory):
    """A token-auth cluster with 2 CPUs and a Ray Client server on a free port; at the end the driver goes
    back to the embedded Ray and the cluster is stopped, every one of its processes gone."""
    temp_dir = str(tmp_path_factory.mktemp("rayc"))
    started = time.monotonic()
    node = RayCluster.start_head(temp_dir, num_cpus=2, client=True)
    print(f"Ray Client cluster up in {time.monotonic() - started:.1f} s at {node.client_address}")
    try:
        yield node
    finally:
        cluster.ensure_driver_ray(RayTransformConf())  # back to the embedded Ray for later tests
        pids = node.processes()
        node.stop()
        left = wait_gone(pids, 30.0) + node.processes() + process_tree(temp_dir)
        assert not left, f"processes of the Ray Client cluster outlived it: {sorted(set(left))}"


@pytest.fixture(scope="module")
def df(spark):
    return spark.createDataFrame(ROWS, "id long").repartition(2)


def _driver_is_a_client_of(head: RayCluster) -> bool:
    from ray.util.client import ray as client_ray

    return client_ray.is_connected() and _gcs_port() == head.port


@pytest.mark.parametrize("run_in", ["executor", "driver"])
def test_data_mode_runs_on_the_client_cluster(spark, df, head, run_in):
    out = ray_transform(df, _where_am_i, SCHEMA, run_in=run_in, ray_address=head.client_address)
    assert sorted(map(tuple, out.collect())) == [(i, head.port) for (i,) in ROWS]
    assert _driver_is_a_client_of(head)


def _who_sent_me(row):
    import ray

    return {"id": row["id"], "gcs_port": _gcs_port(), "job": ray.get_runtime_context().get_job_id()}


def test_each_spark_worker_is_one_reused_client(spark, head):
    """Executors connect as Ray Clients themselves (a Ray job each, not the driver's), once per Spark Python
    worker: two runs of 4 partitions on local[2] are sent by at most 2 connections."""
    import ray

    four = spark.createDataFrame(ROWS, "id long").repartition(4)
    sc = spark.sparkContext
    sc.environment["SPARK_RAY_TEST_WORKER_POOL"] = uuid.uuid4().hex  # a fresh pool of Python workers
    try:
        out = ray_transform(four, _who_sent_me, SCHEMA + ", job string", ray_address=head.client_address)
    finally:
        del sc.environment["SPARK_RAY_TEST_WORKER_POOL"]
    first, second = out.collect(), out.collect()
    for rows in (first, second):
        assert sorted((r.id, r.gcs_port) for r in rows) == [(i, head.port) for (i,) in ROWS]
    jobs = {r.job for r in first} | {r.job for r in second}
    assert 1 <= len(jobs) <= 2, jobs
    assert ray.get_runtime_context().get_job_id() not in jobs


def test_the_spec_executors_get_carries_the_token_but_never_shows_it(head):
    spec = cluster.ensure_driver_ray(RayTransformConf(ray_address=head.client_address))
    token = dict(spec.auth_env).get("RAY_AUTH_TOKEN")
    assert spec.address == head.client_address and spec.is_client
    assert dict(spec.auth_env).get("RAY_AUTH_MODE") == "token" and token
    assert token not in repr(spec) and token not in str(spec)


class _Scorer:
    """A callable class: one instance per pool actor, which reports where it runs."""

    def __init__(self, offset: int) -> None:
        self.offset = offset
        self.pid = os.getpid()

    def __call__(self, batch):
        import pandas as pd

        return pd.DataFrame({"id": batch["id"] + self.offset, "gcs_port": _gcs_port(), "pid": self.pid})


@pytest.mark.parametrize("run_in", ["executor", "driver"])
def test_actor_pool_runs_on_the_client_cluster(spark, df, head, run_in):
    out = ray_transform(
        df, _Scorer, SCHEMA + ", pid long", kind="pandas", run_in=run_in, ray_address=head.client_address,
        concurrency=2, fn_constructor_args=(100,),
    ).collect()  # fmt: skip
    assert sorted((r.id, r.gcs_port) for r in out) == [(i + 100, head.port) for (i,) in ROWS]
    assert 1 <= len({r.pid for r in out}) <= 2


def _model_program(context):
    """Model mode as a callable: Ray tasks on the cluster read the shards from the driver's data server."""
    import pandas as pd
    import ray

    from spark_ray.context import RayContext

    @ray.remote
    def read(shard):
        return [(row["id"], _gcs_port()) for row in RayContext.collect_from(shard)]

    parts = ray.get([read.remote(shard) for shard in context.data_servers()])
    rows = sorted(row for part in parts for row in part)
    return pd.DataFrame({"id": [i for i, _ in rows], "gcs_port": [p for _, p in rows]})


def test_model_mode_callable_runs_on_the_client_cluster(spark, df, head):
    # run_in="executor" (the default): the program runs in one Spark task, itself a Ray Client
    out = ray_transform(df, _model_program, SCHEMA, mode="model", ray_address=head.client_address, batch_rows=3)
    assert sorted(map(tuple, out.collect())) == [(i, head.port) for (i,) in ROWS]


MODEL_CODE = """
import ray
from pyjava.api.mlsql import RayContext
ray_context = RayContext.connect(globals(), "{address}")

@ray.remote
def read(shard):
    port = int(ray.get_runtime_context().gcs_address.rsplit(":", 1)[1])
    return [(row["id"], port) for row in RayContext.collect_from(shard)]

shards = ray_context.data_servers()
parts = ray.get([read.remote(shard) for shard in shards])
collected = sorted(row["id"] for row in ray_context.collect())
assert collected == sorted(i for part in parts for i, _ in part), collected
context.build_result({{"id": i, "gcs_port": p}} for part in parts for i, p in part)
"""


@pytest.mark.parametrize("form", ["ray://", "bare host:port"])
def test_model_code_string_names_the_client_server(spark, df, head, form):
    """Byzer's `RayContext.connect(globals(), "host:port")` names a Ray Client server (pyjava passed it to
    `ray.util.connect`): with no ray_address, the code's address is used, bare or as ray://."""
    address = head.client_address if form == "ray://" else head.client_address.removeprefix("ray://")
    code = MODEL_CODE.format(address=address)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ray_address given: no override warning
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # pyspark 3.5's own (distutils)
        out = ray_transform(df, code, SCHEMA, mode="model", run_in="driver", batch_rows=3)
    assert sorted(map(tuple, out.collect())) == [(i, head.port) for (i,) in ROWS]
    assert _driver_is_a_client_of(head)


DATA_CODE = """
from pyjava.api.mlsql import RayContext
ray_context = RayContext.connect(globals(), url="{address}")

def where(row):
    import ray
    return {{"id": row["id"], "gcs_port": int(ray.get_runtime_context().gcs_address.rsplit(":", 1)[1])}}

ray_context.foreach(where)
"""


def test_data_code_string_with_a_bare_client_address(spark, df, head):
    bare = head.client_address.removeprefix("ray://")
    out = ray_transform(df, DATA_CODE.format(address=bare), SCHEMA)
    assert sorted(map(tuple, out.collect())) == [(i, head.port) for (i,) in ROWS]


def test_bare_code_addresses_resolve_by_what_answers_there(head):
    """The rule, against the real servers: the Ray Client port is a Ray Client server, the GCS port is not,
    a port nobody listens on stays as written, and with nothing to ask, Ray Client's port 10001 means ray://."""
    client_bare = head.client_address.removeprefix("ray://")
    assert resolve_code_address(client_bare) == head.client_address
    assert resolve_code_address(head.address) == head.address
    nobody = f"127.0.0.1:{free_port()}"
    assert resolve_code_address(nobody) == nobody
    assert resolve_code_address("head.example:10001", probe=lambda host, port: None) == "ray://head.example:10001"
    assert resolve_code_address("head.example:6379", probe=lambda host, port: None) == "head.example:6379"
    for kept in ("ray://head.example:10001", "local", "auto", "head.example"):
        assert resolve_code_address(kept, probe=lambda host, port: True) == kept


def test_a_client_address_nobody_listens_on_fails_fast_and_keeps_the_connection(spark, df, head):
    cluster.ensure_driver_ray(RayTransformConf(ray_address=head.client_address))
    nobody = f"ray://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(RayConnectionError, match=f"could not reach the Ray Client server at '{nobody}'"):
        ray_transform(df, _where_am_i, SCHEMA, ray_address=nobody)
    assert time.monotonic() - started < 10
    assert _driver_is_a_client_of(head)  # a typo does not cost the working connection


def _child(address: str, *flags: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``cluster._init_ray(address)`` in a fresh interpreter (connect_child.py) without this one's RAY_*."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("RAY_")}
    environment.update(env)
    return run_python("connect_child.py", ["init", address, *flags], environment, timeout_s=120)


def test_a_wrong_token_is_refused_at_once_without_showing_it(head):
    wrong = "0123456789abcdef" * 2
    started = time.monotonic()
    result = _child(head.client_address, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=wrong)
    elapsed = time.monotonic() - started
    assert result.returncode != 0
    assert (
        f"RayConnectionError: the Ray Client server at '{head.client_address}' rejected this process's auth token"
        in result.stderr
    )
    assert wrong not in result.stderr + result.stdout
    assert elapsed < 20, f"the refusal took {elapsed:.0f} s"


def test_no_token_is_refused_at_once(head, tmp_path):
    result = _child(head.client_address, HOME=str(tmp_path))  # no RAY_AUTH_*, no ~/.ray/auth_token
    assert result.returncode != 0
    assert (
        f"RayConnectionError: the Ray Client server at '{head.client_address}' requires an auth token, and this "
        "process sends none" in result.stderr
    )


def test_ray_scheme_on_the_gcs_port_fails_at_once(spark, df, head):
    wrong = f"ray://{head.address}"
    started = time.monotonic()
    with pytest.raises(RayConnectionError, match=f"something answers at '{wrong}', but not a Ray Client server"):
        ray_transform(df, _where_am_i, SCHEMA, ray_address=wrong)
    assert time.monotonic() - started < 10


def test_without_the_client_extra_the_error_says_to_install_it():
    # grpc (what `ray[client]` adds) made unimportable in a child: nothing is uninstalled
    address = f"ray://127.0.0.1:{free_port()}"
    result = _child(address, "--without-grpc")
    assert result.returncode != 0
    assert f"RayConnectionError: ray_address='{address}' is a Ray Client address" in result.stderr
    assert "pip install 'ray[client]'" in result.stderr
