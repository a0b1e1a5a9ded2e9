"""The Ray-workload cases: an actor pool that loads a model, a CPU-bound function on Spark local[1], and
Spark tables as Ray Datasets.

* ``pool_model`` (in process, local[2]): a "model" whose ``__init__`` sleeps
  2 s, as a callable class with ``concurrency=2``, identity per Arrow batch.
  Compared with Spark-native as a difference in seconds: the target is two
  loads' worth (4 s), which one load per shard or partition would blow.
* ``cpu_local1`` (children, ``workloads.py cpu``): the CPU-bound function of
  ``cpu_native`` on a Spark ``local[1]`` session, natively and through
  ``ray_transform`` with 2 Ray CPUs, interleaved round by round in one child.
  Ray adds the cores Spark's single slot lacks: the target is at least 1.6x
  faster (a ratio <= 0.625).
* ``cluster_executor`` (children, ``workloads.py cluster``): identity on a
  Spark ``local-cluster[2,1,1024]`` (two executor JVMs, as on a cluster),
  natively and through ray_transform's executor path, interleaved; the
  target is the executor path's own (<= 1.15x).
* ``to_ray_dataset`` (children, ``workloads.py dataset``): ``to_ray_dataset(df)
  .materialize()`` against ``ray.data.from_arrow(df.toArrow())``, one fresh
  child per method and size, with the driver's peak memory for each.
"""

import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame

from cases import BenchContext, Case, Target, Thunk
from common import noop_write
from spark_ray import ray_transform

MODEL_LOAD_S = 2.0


def _sleepy_model(load_s: float) -> type:
    """A callable class built by a factory, so cloudpickle ships it by value."""

    class SleepyModel:
        def __init__(self) -> None:
            time.sleep(load_s)  # loading the weights

        def __call__(self, batch: pa.RecordBatch) -> pa.RecordBatch:
            return batch

    return SleepyModel


def pool_model(ctx: BenchContext, df: DataFrame) -> Thunk:
    model = _sleepy_model(MODEL_LOAD_S)
    return lambda: noop_write(ray_transform(df, model, df.schema, kind="arrow", concurrency=2))


WORKLOAD_CASES: list[Case] = [
    Case(
        "pool_model",
        f"callable class, __init__ sleeps {MODEL_LOAD_S:g} s, concurrency=2, identity per batch (executor)",
        pool_model,
        target=Target("diff_s", 2 * MODEL_LOAD_S),
    ),
    Case(
        "cpu_local1",
        "Spark local[1]: the CPU-bound fn via ray_transform (2 Ray CPUs) vs natively (subprocess)",
        baseline="cpu_local1_native",
        target=Target("ratio", 1 / 1.6),
        subprocess=True,
    ),
    Case(
        "cluster_executor",
        "Spark local-cluster[2,1,1024] (separate executor JVMs): ray_transform kind=arrow, executor (subprocess)",
        baseline="cluster_executor_native",
        target=Target("ratio", 1.15),
        subprocess=True,
    ),
    Case(
        "to_ray_dataset",
        "to_ray_dataset(df).materialize() vs ray.data.from_arrow(df.toArrow()), + driver peak RSS (subprocess)",
        baseline="from_arrow_dataset",
        subprocess=True,
    ),
]


def measure_cpu_local1(
    sizes: list[int], spin: int, repeat: int, warmup: int, driver_memory: str, progress: Callable[[str], None]
) -> list[dict[str, Any]]:
    """One child per size: both engines on local[1], interleaved; medians and every run."""
    from common import run_child

    found = []
    for rows in sizes:
        progress(f"cpu_local1 rows={rows:,}: fresh local[1] process, {warmup} warm-up + {repeat} runs each")
        args = ["cpu", "--rows", str(rows), "--spin", str(spin), "--repeat", str(repeat), "--warmup", str(warmup)]
        result = run_child("workloads.py", [*args, "--driver-memory", driver_memory], 3600.0)
        progress(f"cpu_local1 rows={rows:,}: native {result['native_s']:.2f} s, ray {result['ray_s']:.2f} s")
        found.append(result)
    return found


def measure_separate_executors(
    sizes: list[int], repeat: int, warmup: int, driver_memory: str, progress: Callable[[str], None]
) -> list[dict[str, Any]]:
    """One child per size: both engines on local-cluster[2,1,1024], interleaved; medians and every run."""
    from common import run_child

    found = []
    for rows in sizes:
        progress(f"cluster_executor rows={rows:,}: fresh local-cluster process, {warmup} warm-up + {repeat} runs each")
        args = ["cluster", "--rows", str(rows), "--repeat", str(repeat), "--warmup", str(warmup)]
        result = run_child("workloads.py", [*args, "--driver-memory", driver_memory], 3600.0)
        progress(f"cluster_executor rows={rows:,}: native {result['native_s']:.2f} s, ray {result['ray_s']:.2f} s")
        found.append(result)
    return found


def measure_datasets(
    sizes: list[int], warmup: int, driver_memory: str, progress: Callable[[str], None]
) -> list[dict[str, Any]]:
    """A fresh child per size and method (peak RSS only goes up); each reports seconds and peak memory."""
    from common import run_child

    found = []
    for rows in sizes:
        for method in ("from_arrow", "spark_ray"):
            progress(f"to_ray_dataset rows={rows:,}: {method} in a fresh process, {warmup} warm-up + 1 run")
            args = ["dataset", "--rows", str(rows), "--method", method, "--driver-memory", driver_memory]
            args += ["--warmup", str(warmup)]
            result = run_child("workloads.py", args, 3600.0)
            progress(
                f"to_ray_dataset rows={rows:,} {method}: {result['seconds']:.2f} s, "
                f"driver peak RSS {result['peak_rss_mb']:.0f} MB (private {result['peak_private_mb']:.0f} MB)"
            )
            found.append(result)
    return found
