"""Connecting to Ray: the embedded one by default, an existing cluster by address."""

from __future__ import annotations

import os
import sys

import pytest
from conftest import stop_after_spark
from processes import RayCluster, free_port, run_python

from spark_ray import RayTransformConf, cluster, own_processes, ray_transform


def _where_am_i(row):
    import ray

    return {"id": row["id"], "gcs": ray.get_runtime_context().gcs_address}


@pytest.fixture
def existing_cluster(spark, tmp_path_factory):
    """A `ray start --head` cluster on this machine, started and stopped by this fixture.

    It gets its own temp dir so that stopping it touches only its processes; it
    is stopped after the session's Spark workers (connected to it) are gone.
    """
    head = RayCluster.start_head(str(tmp_path_factory.mktemp("ray-cluster")), num_cpus=1)
    stop_after_spark(head.stop)
    try:
        yield head.address
    finally:
        cluster.ensure_driver_ray(RayTransformConf())  # back to the embedded Ray for later tests


def test_existing_cluster_by_address_serves_driver_and_executors(spark, existing_cluster):
    df = spark.createDataFrame([(1,), (2,), (3,)], "id long").repartition(2)
    for run_in in ("executor", "driver"):
        out = ray_transform(df, _where_am_i, "id long, gcs string", run_in=run_in, ray_address=existing_cluster)
        rows = out.collect()
        assert sorted(r.id for r in rows) == [1, 2, 3]
        ports = {r.gcs.rsplit(":", 1)[1] for r in rows}
        assert ports == {existing_cluster.rsplit(":", 1)[1]}, f"tasks ran on {ports}, not on the cluster asked for"


def test_embedded_ray_is_used_by_default(spark):
    import ray

    embedded = ray.get_runtime_context().gcs_address
    out = ray_transform(spark.createDataFrame([(1,)], "id long"), _where_am_i, "id long, gcs string")
    assert out.first().gcs == embedded


def test_unreachable_address_names_it():
    # ray.init refuses a second connection in one process: try from a fresh one.
    port = free_port()
    env = dict(os.environ, RAY_gcs_rpc_server_connect_timeout_s="3")
    result = run_python("connect_child.py", ["init", f"127.0.0.1:{port}"], env)
    assert result.returncode != 0
    assert f"RayConnectionError: could not connect to the Ray cluster at '127.0.0.1:{port}'" in result.stderr


def _gcs_system_config() -> dict:
    """The system config our embedded Ray's GCS server was started with (from its command line)."""
    import base64
    import json

    for pid in own_processes.descendants():
        args = own_processes.command_line(pid).split()
        if args and args[0].endswith("gcs_server"):
            encoded = next(arg.split("=", 1)[1] for arg in args if arg.startswith("--config_list="))
            return json.loads(base64.b64decode(encoded))
    raise AssertionError("no gcs_server started by this process")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_embedded_ray_keeps_idle_workers_for_spark_workers(spark):
    import ray

    cpus = int(ray.cluster_resources()["CPU"])
    config = _gcs_system_config()
    assert config["num_workers_soft_limit"] == 2 * cpus + 2
    assert config["idle_worker_killing_time_threshold_ms"] == 60_000
