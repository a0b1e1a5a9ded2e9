"""The child of test_deploy_ray_on_spark.py: Ray on Spark on Spark local-cluster[1,2,2048].

One Ray-on-Spark cluster, started by the first ``ray_transform(..., ray_address="spark")``,
serves the executor path, the driver path and model mode; every Ray task reports the GCS
address and the node it ran on. Then ``spark_ray.shutdown()`` and ``spark.stop()``. The
parent runs this with a PATH that lacks this venv's bin and without Ray's auth variables, so
spark-ray must supply both. Prints one JSON line of findings; the parent asserts on them.

Usage: python ray_on_spark_child.py <marker_dir>  (the Ray temp root, and a marker in every
Spark JVM's command line, so the parent finds whatever this run leaves behind).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from typing import Any

SCHEMA = "id long, twice long, gcs string, node string"


def where(row):
    import ray

    context = ray.get_runtime_context()
    return {"id": row["id"], "twice": row["id"] * 2, "gcs": context.gcs_address, "node": context.get_node_id()}


def model(context):
    import pandas as pd
    import ray

    @ray.remote
    def twice(ids):
        where = ray.get_runtime_context()
        return [(i, i * 2, where.gcs_address, where.get_node_id()) for i in ids]

    ids = [row["id"] for row in context.fetch_once()]
    parts = ray.get([twice.remote(ids[k::2]) for k in range(2)])
    return pd.DataFrame(sorted(r for part in parts for r in part), columns=["id", "twice", "gcs", "node"])


def rows_of(df):
    return sorted([row.id, row.twice, row.gcs, row.node] for row in df.collect())


def processes_with(marker: str) -> list[str]:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from processes import process_tree

    own = os.getpid()
    return [str(pid) for pid in process_tree(marker) if pid != own]


def main(marker_dir: str) -> None:
    from pyspark.sql import SparkSession

    import spark_ray
    from spark_ray import ray_on_spark

    found: dict = {
        "which_ray_before": shutil.which("ray"),
        "auth_mode_before": os.environ.get("RAY_AUTH_MODE"),
    }
    java_marker = f"-Dray_on_spark_test.marker={marker_dir}"
    started = time.monotonic()
    spark = (
        SparkSession.builder.master("local-cluster[1,2,2048]")
        .appName("spark-ray-on-spark-test")
        .config("spark.driver.extraJavaOptions", java_marker)
        .config("spark.executor.extraJavaOptions", java_marker)
        .config("spark.executor.memory", "1g")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    found["spark_start_s"] = round(time.monotonic() - started, 1)
    options: dict[str, Any] = {"ray_address": "spark", "ray_on_spark": {"ray_temp_root_dir": marker_dir}}
    df = spark.range(0, 40, numPartitions=2)
    expected = [[i, 2 * i] for i in range(40)]

    started = time.monotonic()
    executor_rows = rows_of(spark_ray.ray_transform(df, where, SCHEMA, run_in="executor", **options))
    found["first_call_s"] = round(time.monotonic() - started, 1)

    import ray

    running = ray_on_spark.current()
    assert running is not None
    nodes = [node for node in ray.nodes() if node["Alive"]]
    found["cluster"] = {
        "address": running.address,  # as setup_ray_cluster returns it (the head's IP as Spark names the driver)
        "joined": ray.get_runtime_context().gcs_address,  # as the driver's connection reports it
        "setup_args": running.setup_args,
        "started_s": round(running.started_s, 1),
        "temp_dir_under_marker": (running.temp_dir or "").startswith(marker_dir),
        "worker_nodes": {n["NodeID"]: n["Resources"].get("CPU", 0.0) for n in nodes if n["Resources"].get("CPU")},
        "head_cpus": [n["Resources"].get("CPU", 0.0) for n in nodes if not n["Resources"].get("CPU")],
        "spark_slots": spark.sparkContext.defaultParallelism,
    }
    found["which_ray_after"] = shutil.which("ray")
    found["auth_mode_after"] = os.environ.get("RAY_AUTH_MODE")
    found["executor"] = {
        "ok": [r[:2] for r in executor_rows] == expected,
        "where": sorted({(r[2], r[3]) for r in executor_rows}),
    }

    started = time.monotonic()
    driver_rows = rows_of(spark_ray.ray_transform(df, where, SCHEMA, run_in="driver", **options))
    found["driver"] = {
        "ok": [r[:2] for r in driver_rows] == expected,
        "where": sorted({(r[2], r[3]) for r in driver_rows}),
        "s": round(time.monotonic() - started, 1),
    }

    started = time.monotonic()
    model_rows = rows_of(spark_ray.ray_transform(df, model, SCHEMA, mode="model", run_in="driver", **options))
    found["model"] = {
        "ok": [r[:2] for r in model_rows] == expected,
        "where": sorted({(r[2], r[3]) for r in model_rows}),
        "s": round(time.monotonic() - started, 1),
    }
    found["same_cluster"] = ray_on_spark.current() is running

    head = running.handle.head_proc
    started = time.monotonic()
    spark_ray.shutdown()
    found["shutdown_s"] = round(time.monotonic() - started, 1)
    found["after_shutdown"] = {
        "current": ray_on_spark.current() is not None,
        "head_exit_code": head.poll(),
        "ray_initialized": ray.is_initialized(),
    }
    # The worker nodes' Spark jobs are cancelled: Spark has its slots back and runs a job at once.
    deadline = time.monotonic() + 30
    while spark.sparkContext.statusTracker().getActiveJobsIds() and time.monotonic() < deadline:
        time.sleep(0.5)
    found["after_shutdown"]["active_spark_jobs"] = list(spark.sparkContext.statusTracker().getActiveJobsIds())
    found["after_shutdown"]["spark_count"] = spark.range(100, numPartitions=2).count()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        left = [pid for pid in processes_with(os.path.join(marker_dir, "ray-")) if pid]
        if not left:
            break
        time.sleep(0.5)
    found["after_shutdown"]["ray_processes_left"] = left
    spark.stop()
    from processes import write_result

    write_result(found)


if __name__ == "__main__":
    main(sys.argv[1])
