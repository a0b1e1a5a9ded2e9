"""A Spark standalone cluster and a two-node `ray start` cluster, as users deploy them, on loopback.

The Spark worker and the Ray node that has the custom resource ``alice``
each run in a mount namespace of their own where the driver's spill dir is
an empty directory: they stand for other hosts, so a path of the driver's
disk that leaked to them would fail the job instead of passing unnoticed.
"""

from __future__ import annotations

import os

import pytest
from processes import RayCluster, SparkStandalone, result_of, spark_submit, wait_gone

CHILD = os.path.join(os.path.dirname(__file__), "deploy_child.py")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """A two-node Ray cluster (token auth; the second node has ``alice``) and a Spark master + worker."""
    root = tmp_path_factory.mktemp("deploy")
    driver_only = root / "driver-only"
    driver_only.mkdir()
    ray_head = RayCluster.start_head(str(root / "ray"), num_cpus=1)
    spark = None
    try:
        ray_head.add_node(num_cpus=1, resources={"alice": 1}, hide=[str(driver_only)])
        spark = SparkStandalone.start(str(root), cores=2, hide=[str(driver_only)])
        yield ray_head, spark, str(driver_only), str(root)
    finally:
        pids = ray_head.processes() + ([p.pid for p in spark.processes] if spark else [])
        if spark is not None:
            spark.stop()
        ray_head.stop()
        assert wait_gone(pids, 30.0) == [], "the cluster left processes behind"


def _submit(deployment, env: dict[str, str]):
    ray_head, spark, driver_only, root = deployment
    done = spark_submit(spark.master_url, CHILD, [ray_head.address, driver_only], timeout_s=480.0, env=env)
    errors = "\n".join(line for line in done.stderr.splitlines() if " INFO " not in line)
    assert done.returncode == 0, f"spark-submit failed:\n{done.stdout[-3000:]}\n{errors[-8000:]}"
    return result_of(done), done


def test_spark_submit_runs_every_path_on_the_ray_node_that_has_the_resource(deployment):
    ray_head, spark, driver_only, root = deployment
    found, done = _submit(deployment, {"RAY_AUTH_MODE": "token"})  # the token: ~/.ray/auth_token
    assert found["master"] == spark.master_url
    assert len(found["all_nodes"]) == 2 and len(found["alice_nodes"]) == 1
    alice = found["alice_nodes"][0]
    for path in ("executor", "driver", "model"):
        rows = found[path]
        assert sorted(row["id"] for row in rows) == list(range(40)), path
        assert {row["node"] for row in rows} == {alice}, f"{path}: work ran off the node with alice"
    assert os.listdir(driver_only) == [], "the driver's spill dir kept files after the jobs"

    # The token reached every process that needed it and showed in none of their outputs.
    with open(os.path.expanduser("~/.ray/auth_token"), encoding="utf-8") as token_file:
        token = token_file.read().strip()
    assert len(token) >= 16
    logs = [done.stdout, done.stderr]
    for folder, _, files in os.walk(os.path.join(root, "work")):
        for name in files:
            with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as log:
                logs.append(log.read())
    assert all(token not in text for text in logs), "the Ray token appeared in a log"
