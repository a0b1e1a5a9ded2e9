"""Ray workloads that need their own Spark and Ray, run once in a child process (ray_workloads_child.py):
a pool on Spark local[1] loads its model pool-size times in both paths; num_gpus, resources and
accelerator_type reach tasks and actors; a Dataset made by to_ray_dataset survives spark.stop()."""

from __future__ import annotations

import os
import sys

import pytest
from processes import result_of, run_child

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ray_workloads_child.py")


@pytest.fixture(scope="module")
def found():
    """Run the child once for the module; stop its whole process group whatever happens."""
    done = run_child([sys.executable, CHILD], dict(os.environ, RAY_USAGE_STATS_ENABLED="0"), 600.0)
    return result_of(done)


@pytest.mark.parametrize("run_in", ["executor", "driver"])
def test_on_spark_local_1_a_pool_of_2_loads_twice_over_28_batches(found, run_in):
    pool = found[f"pool_{run_in}"]
    assert pool["rows"] == list(range(100))
    assert pool["calls"] == 28
    assert pool["loads"] == 2 and pool["serving_pids"] == 2


@pytest.mark.parametrize("code", ["task", "actor"])
@pytest.mark.parametrize("run_in", ["executor", "driver"])
def test_gpus_custom_resources_and_accelerator_type_reach_tasks_and_actors(found, code, run_in):
    (seen,) = found[f"options_{code}_{run_in}"]
    resources = seen["resources"]
    assert resources["GPU"] == 1.0 and resources["accel"] == 1.0
    assert resources["accelerator_type:T4"] == pytest.approx(0.001)
    assert len(seen["gpus"]) == 1 and seen["cuda_visible_devices"] == seen["gpus"][0]


def test_a_dataset_from_spark_survives_spark_stop(found):
    assert found["after_stop"] == {"count": 10_000, "sum_id": sum(range(10_000)), "sum_twice": 2 * sum(range(10_000))}
