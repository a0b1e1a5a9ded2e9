"""The child of test_ray_workloads_subprocess.py: what needs its own Spark and its own Ray.

Spark local[1] (one task slot, where a pool must still load its model only
pool-size times), a Ray with 2 fake GPUs, a custom resource and an
accelerator type (so num_gpus, resources and accelerator_type can be read
back inside tasks and actors), and a spark.stop() that the session's Spark
cannot afford. Writes its findings with ``processes.write_result``; the parent asserts on them.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from typing import Any

from processes import write_result


class Model:
    def __init__(self, traces: str) -> None:
        self.traces = traces
        open(os.path.join(traces, f"load-{os.getpid()}"), "w").close()

    def __call__(self, batch):
        import pandas as pd

        open(os.path.join(self.traces, f"call-{os.getpid()}-{os.urandom(4).hex()}"), "w").close()
        return pd.DataFrame({"id": batch["id"], "pid": os.getpid()})


def _seen() -> str:
    import ray

    context = ray.get_runtime_context()
    return json.dumps(
        {
            "resources": context.get_assigned_resources(),
            "gpus": context.get_accelerator_ids().get("GPU", []),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        },
        sort_keys=True,
    )


def seen_in_task(row):
    return {"id": row["id"], "seen": _seen()}


class SeenInActor:
    def __call__(self, row):
        return {"id": row["id"], "seen": _seen()}


def main() -> None:
    import ray

    ray.init(
        num_cpus=2,
        num_gpus=2,
        resources={"accel": 4, "accelerator_type:T4": 1},
        include_dashboard=False,
        namespace="spark_ray",
        logging_level=logging.WARNING,
    )
    from spark_ray import close_pools, ray_transform, to_ray_dataset
    from spark_ray.local_spark import local_spark

    spark = local_spark("local[1]", app_name="ray-workloads-child", **{"spark.ui.enabled": "false"})
    found: dict = {}
    try:
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "4")
        df = spark.range(0, 100, numPartitions=4)
        for run_in in ("executor", "driver"):
            traces = tempfile.mkdtemp(prefix="spark-ray-child-")
            out = ray_transform(
                df, Model, "id long, pid long", kind="pandas", run_in=run_in, concurrency=2, batch_rows=4,
                fn_constructor_args=(traces,),
            )  # fmt: skip
            rows = out.collect()
            names = os.listdir(traces)
            found[f"pool_{run_in}"] = {
                "rows": sorted(r.id for r in rows),
                "loads": sum(name.startswith("load-") for name in names),
                "calls": sum(name.startswith("call-") for name in names),
                "serving_pids": len({r.pid for r in rows}),
            }
            close_pools()
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")

        options: dict[str, Any] = {"num_gpus": 1, "resources": {"accel": 1}, "accelerator_type": "T4", "concurrency": 1}
        small = spark.range(0, 2, numPartitions=1)
        for name, code in (("task", seen_in_task), ("actor", SeenInActor)):
            for run_in in ("executor", "driver"):
                seen = {
                    r.seen
                    for r in ray_transform(small, code, "id long, seen string", run_in=run_in, **options).collect()
                }
                found[f"options_{name}_{run_in}"] = [json.loads(s) for s in seen]
                close_pools()

        ds = to_ray_dataset(spark.range(0, 10_000, numPartitions=3).selectExpr("id", "id * 2 as twice"))
    finally:
        spark.stop()  # the Spark workers and their Ray connections go; the blocks must not
    found["after_stop"] = {"count": ds.count(), "sum_id": ds.sum("id"), "sum_twice": ds.sum("twice")}
    ray.shutdown()
    write_result(found)


if __name__ == "__main__":
    main()
