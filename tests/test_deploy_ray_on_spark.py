"""Ray on Spark (ray_address="spark"): the sizing rule and the option, without a cluster; then one
child process (ray_on_spark_child.py) on Spark local-cluster[1,2,2048] that starts the cluster once,
runs the executor path, the driver path and model mode on it, calls spark_ray.shutdown() and stops
Spark, leaving no Ray or Spark process behind. The child starts with a PATH that lacks this venv's bin
and without Ray's auth variables, which spark-ray must supply to Ray's node processes."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import pytest
from processes import BIN, kill_pids, process_tree, result_of, run_child, spark_env, wait_gone

from spark_ray import ConfigError
from spark_ray.conf import RayTransformConf, resolve_conf
from spark_ray.ray_on_spark_sizing import SparkShape, default_setup_args, setup_args

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ray_on_spark_child.py")


# --- the sizing rule and the option (no cluster) -------------------------------


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        (SparkShape("local-cluster[1,2,2048]", False, 1, 2), (1, 1)),
        (SparkShape("local-cluster[2,1,1024]", False, 2, 1), (1, 1)),
        (SparkShape("spark://m:7077", False, 10, 8, gpus_per_executor=2), (10, 4)),
        (SparkShape("yarn", False, 3, 5), (3, 2)),
        (SparkShape("spark://m:7077", False, 4, 2, task_cpus=2), (2, 2)),  # whole executors, half of them
    ],
)
def test_ray_gets_half_the_cores_in_nodes_of_half_an_executor(shape, expected):
    args = default_setup_args(shape)
    assert (args["max_worker_nodes"], args["num_cpus_worker_node"]) == expected
    assert args["num_gpus_worker_node"] == shape.gpus_per_executor
    used = args["max_worker_nodes"] * args["num_cpus_worker_node"]
    assert used <= shape.cores - shape.task_cpus  # a Spark task always fits beside the nodes


def test_local_masters_get_half_the_slots_as_one_cpu_nodes():
    assert default_setup_args(SparkShape("local[4]", True, 1, 4)) == {"max_worker_nodes": 2}


@pytest.mark.parametrize(
    "shape", [SparkShape("local[1]", True, 1, 1), SparkShape("local-cluster[1,1,1024]", False, 1, 1)]
)
def test_an_application_with_one_slot_is_refused(shape):
    with pytest.raises(ConfigError, match=r"at least 2 task slots, and .* has 1: each Ray worker node holds"):
        default_setup_args(shape)


def test_ray_on_spark_option_goes_over_the_rule(spark):
    conf = resolve_conf(
        None, {"rayOnSpark": '{"max_worker_nodes": 1, "head_node_options": {"disable_usage_stats": null}}'}
    )
    args = setup_args(spark.sparkContext, conf)  # the session's local[2]
    assert args == {
        "max_worker_nodes": 1,
        "head_node_options": {"include_dashboard": False, "disable_usage_stats": None},
    }


def test_unknown_ray_on_spark_argument_names_the_nearest(spark):
    conf = RayTransformConf(ray_on_spark={"max_worker_node": 2})
    with pytest.raises(ConfigError, match=r"'max_worker_node' is not a parameter of .*Did you mean 'max_worker_nodes'"):
        setup_args(spark.sparkContext, conf)


def test_local_masters_refuse_node_cpus(spark):
    conf = RayTransformConf(ray_on_spark={"num_cpus_worker_node": 1, "num_gpus_worker_node": 0})
    with pytest.raises(ConfigError, match=r"cannot be set on a local master \(local\[2\]\)"):
        setup_args(spark.sparkContext, conf)


# --- one real cluster in a child process ---------------------------------------


@pytest.fixture(scope="module")
def found():
    """Run the child once; whatever happens, kill every process it left (the Ray head runs in a
    process group of its own, so it is found by the marker in its command line)."""
    marker_dir = tempfile.mkdtemp(prefix="ros-", dir="/tmp")  # short: Ray's socket paths live under it
    env = spark_env(RAY_USAGE_STATS_ENABLED="0")
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p and os.path.abspath(p) != BIN)
    for key in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_ADDRESS", "RAY_ON_SPARK_START_HOOK"):
        env.pop(key, None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.path.dirname(os.path.dirname(CHILD)), env.get("PYTHONPATH")]))
    try:
        done = run_child([sys.executable, CHILD, marker_dir], env, 900.0)
    finally:
        left = wait_gone(process_tree(marker_dir), 60.0)
        kill_pids(left)
        wait_gone(left, 10.0)
        shutil.rmtree(marker_dir, ignore_errors=True)
    result = result_of(done)
    result["left_after_exit"] = left
    return result


def test_the_cluster_is_sized_by_the_rule_and_the_option(found):
    cluster = found["cluster"]
    assert cluster["setup_args"]["max_worker_nodes"] == 1 and cluster["setup_args"]["num_cpus_worker_node"] == 1
    assert cluster["setup_args"]["head_node_options"] == {"include_dashboard": False}
    assert cluster["temp_dir_under_marker"]
    assert list(cluster["worker_nodes"].values()) == [1.0]
    assert cluster["head_cpus"] == [0.0]  # Ray on Spark's head runs no tasks
    assert cluster["spark_slots"] == 2


def test_ray_and_its_token_are_supplied_to_ray_processes(found):
    assert found["which_ray_before"] is None and found["auth_mode_before"] is None
    assert found["which_ray_after"] == os.path.join(BIN, "ray")
    assert found["auth_mode_after"] == "token"


@pytest.mark.parametrize("path", ["executor", "driver", "model"])
def test_every_path_runs_its_tasks_on_the_ray_on_spark_cluster(found, path):
    result = found[path]
    assert result["ok"]  # every row, in order, with its computed column
    assert result["where"], "no Ray task reported where it ran"
    # The driver and every Ray task are on the cluster setup_ray_cluster started (its GCS port; Ray names
    # the host by its own IP where Spark named it 127.0.0.1), and the executors joined it by that address.
    cluster = found["cluster"]
    assert cluster["joined"].rpartition(":")[2] == cluster["address"].rpartition(":")[2]
    assert {gcs for gcs, _ in result["where"]} == {cluster["joined"]}
    assert {node for _, node in result["where"]} <= set(found["cluster"]["worker_nodes"])
    assert found["same_cluster"]


def test_shutdown_stops_the_cluster_and_gives_spark_its_slots_back(found):
    after = found["after_shutdown"]
    assert not after["current"] and not after["ray_initialized"]
    assert after["head_exit_code"] is not None
    assert after["active_spark_jobs"] == [] and after["spark_count"] == 100
    assert after["ray_processes_left"] == []
    assert found["left_after_exit"] == []
