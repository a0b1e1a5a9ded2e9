"""Sent by spark-submit from tests/test_deploy_spark_cluster.py: the same ray_transform calls on a
Spark standalone cluster and a two-node `ray start` cluster; prints one JSON line of what ran where.

    deploy_child.py RAY_ADDRESS SPILL_DIR

Every path asks for the custom resource ``alice``, which only one Ray node
has, so the test can tell that Ray's scheduler (not luck) placed the work.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from processes import write_result
from pyspark.sql import SparkSession

import spark_ray
from spark_ray import ray_transform, set_session_conf

SCHEMA = "id long, node string, pid long"


def where_am_i(row: dict) -> dict:
    import ray

    return {"id": row["id"], "node": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}


def model_program(context):
    """Model mode: the program reads the shards in Ray tasks of its own, on the alice node."""
    import ray

    @ray.remote(resources={"alice": 0.5})
    def read_shard(handle):
        from spark_ray.context import RayContext

        node = ray.get_runtime_context().get_node_id()
        return [{"id": row["id"], "node": node, "pid": os.getpid()} for row in RayContext.fetch_once_as_rows(handle)]

    shards = ray.get([read_shard.remote(handle) for handle in context.data_servers()])
    context.build_result([row for shard in shards for row in shard])


def main() -> None:
    ray_address, spill_dir = sys.argv[1:3]
    spark = SparkSession.builder.appName("spark-ray-deploy-test").getOrCreate()
    import ray

    df = spark.range(0, 40, numPartitions=4)
    set_session_conf(spark, spill_dir=spill_dir)  # a default for the doors that use it (driver, model)
    options: dict[str, Any] = {"ray_address": ray_address, "batch_rows": 5}
    found: dict = {"master": spark.sparkContext.master}
    for run_in in ("executor", "driver"):
        out = ray_transform(df, where_am_i, SCHEMA, run_in=run_in, resources={"alice": 0.5}, **options)
        found[run_in] = [row.asDict() for row in out.collect()]
    out = ray_transform(df, model_program, SCHEMA, mode="model", **options)
    found["model"] = [row.asDict() for row in out.collect()]
    found["alice_nodes"] = [node["NodeID"] for node in ray.nodes() if node["Alive"] and "alice" in node["Resources"]]
    found["all_nodes"] = [node["NodeID"] for node in ray.nodes() if node["Alive"]]
    spark.stop()
    spark_ray.shutdown()
    write_result(found)


if __name__ == "__main__":
    main()
