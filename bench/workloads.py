"""The children of the Ray-workload cases (see workload_cases.py), each in a fresh process.

    python bench/workloads.py cpu --rows N --spin S [--repeat 3 --warmup 1 --sizing auto|fixed]
        Spark local[1] + an embedded Ray with 2 CPUs: the CPU-bound function
        natively (mapInArrow) and through ray_transform, interleaved
        (``--sizing fixed``: the shard sizes before auto sizing, for comparison).
    python bench/workloads.py cluster --rows N [--repeat 3 --warmup 1]
        Spark on local-cluster[2,1,1024] (separate executor JVMs) + an embedded
        Ray with 2 CPUs: identity natively (mapInArrow) and through
        ray_transform's executor path, interleaved.
    python bench/workloads.py dataset --rows N --method spark_ray|from_arrow [--warmup 1]
        to_ray_dataset(df).materialize(), or ray.data.from_arrow(df.toArrow()),
        timed once after the warm-ups, with the driver's peak RSS and sampled
        peak private memory (RssAnon) over all the calls, and both before
        the first call (the table built and cached).

Each prints one BENCH_RESULT line for the parent and always stops Spark and Ray.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from cases import _cpu_batch, _cpu_batches
from common import DEFAULT_DRIVER_MEMORY, build_table, emit_result, noop_write, settle, timed
from driver_memory import MB, _current_private, _current_rss, _peak_rss, _Sampler


def tree_cpu_seconds() -> float:
    """CPU seconds (user + system) used so far by this process and every live descendant (its JVM,
    Spark's Python workers, the embedded Ray's processes); Linux /proc. Other users' load on a shared
    machine is not in it, so it says how much work a run needed where wall time cannot."""
    import os

    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        used[int(entry)] = (int(fields[11]) + int(fields[12])) / ticks
    mine = {os.getpid()}
    grew = True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in mine} - mine
        mine |= children
        grew = bool(children)
    return sum(used.get(pid, 0.0) for pid in mine)


def _session(master: str, driver_memory: str) -> Any:
    from spark_ray.local_spark import local_spark

    return local_spark(
        master,
        app_name="spark-ray-bench-workloads",
        **{"spark.ui.enabled": "false", "spark.driver.memory": driver_memory},
    )


def _interleaved(spark: Any, thunks: dict[str, Any], repeat: int, warmup: int) -> dict[str, Any]:
    """Each thunk once per round, ``warmup`` + ``repeat`` rounds: medians, every run, and the CPU seconds
    of the process tree per measured run."""
    times: dict[str, list[float]] = {name: [] for name in thunks}
    warmups: dict[str, list[float]] = {name: [] for name in thunks}
    cpu_s: dict[str, list[float]] = {name: [] for name in thunks}
    for round_index in range(warmup + repeat):
        for name, thunk in thunks.items():
            settle(spark)
            before = tree_cpu_seconds()
            seconds = timed(thunk)
            (warmups if round_index < warmup else times)[name].append(seconds)
            if round_index >= warmup:
                cpu_s[name].append(tree_cpu_seconds() - before)
    found: dict[str, Any] = {}
    for name in thunks:
        found[f"{name}_s"] = statistics.median(times[name])
        found[f"{name}_runs_s"] = times[name]
        found[f"{name}_warmups_s"] = warmups[name]
        found[f"{name}_cpu_s"] = cpu_s[name]  # what the work needed, whatever the load
    return found


def cpu(rows: int, spin: int, repeat: int, warmup: int, driver_memory: str, sizing: str = "auto") -> dict[str, Any]:
    from spark_ray import cluster, ray_transform
    from spark_ray.conf import RayTransformConf

    spark = _session("local[1]", driver_memory)
    try:
        cluster.ensure_driver_ray(RayTransformConf(local_ray_cpus=2))
        df = build_table(spark, rows)
        native_fn, ray_fn = _cpu_batches(spin), _cpu_batch(spin)
        thunks = {
            "native": lambda: noop_write(df.mapInArrow(native_fn, df.schema)),
            "ray": lambda: noop_write(ray_transform(df, ray_fn, df.schema, kind="arrow", batch_sizing=sizing)),
        }
        return {"rows": rows, "batch_sizing": sizing, **_interleaved(spark, thunks, repeat, warmup)}
    finally:
        spark.stop()
        cluster.shutdown()


CLUSTER_MASTER = "local-cluster[2,1,1024]"


def separate_executors(rows: int, repeat: int, warmup: int, driver_memory: str) -> dict[str, Any]:
    """Identity over Arrow batches on ``CLUSTER_MASTER`` (two executor JVMs, one core each): Spark's
    own mapInArrow, and ray_transform's executor path, whose Python workers join the embedded Ray."""
    from spark_ray import cluster, ray_transform
    from spark_ray.conf import RayTransformConf

    spark = _session(CLUSTER_MASTER, driver_memory)
    try:
        cluster.ensure_driver_ray(RayTransformConf(local_ray_cpus=2))
        df = build_table(spark, rows)

        def identity(batches: Any) -> Any:
            yield from batches

        def same(batch: Any) -> Any:
            return batch

        thunks = {
            "native": lambda: noop_write(df.mapInArrow(identity, df.schema)),
            "ray": lambda: noop_write(ray_transform(df, same, df.schema, kind="arrow")),
        }
        return {"rows": rows, "master": CLUSTER_MASTER, **_interleaved(spark, thunks, repeat, warmup)}
    finally:
        spark.stop()
        cluster.shutdown()


def dataset(rows: int, method: str, driver_memory: str, warmup: int = 1) -> dict[str, Any]:
    import ray

    from spark_ray import cluster, to_ray_dataset
    from spark_ray.conf import RayTransformConf

    spark = _session("local[2]", driver_memory)
    try:
        cluster.ensure_driver_ray(RayTransformConf(local_ray_cpus=2))
        ray.data.DataContext.get_current().enable_progress_bars = False
        df = build_table(spark, rows)

        def make() -> Any:
            if method == "spark_ray":
                return to_ray_dataset(df).materialize()
            return ray.data.from_arrow(df.toArrow()).materialize()

        settle(spark)
        before, before_private = _current_rss(), _current_private()
        sampler = _Sampler()  # from before the first call: peaks of warm-ups and the timed call alike
        sampler.start()
        warmups = []
        for _ in range(warmup):  # the first call starts Spark's Python workers and joins them to Ray
            warmups.append(timed(lambda: make().count()))
            settle(spark)
        start = time.perf_counter()
        ds = make()
        seconds = time.perf_counter() - start
        sampler.stop()
        counted = ds.count()
        return {
            "rows": rows,
            "method": method,
            "seconds": seconds,
            "warmups_s": warmups,
            "count": counted,
            "before_rss_mb": before / MB,
            "peak_rss_mb": _peak_rss() / MB,
            "before_private_mb": (before_private or 0) / MB,
            "peak_private_mb": (sampler.peak_private or 0) / MB,
        }
    finally:
        spark.stop()
        cluster.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    cpu_args = sub.add_parser("cpu")
    cpu_args.add_argument("--rows", type=int, required=True)
    cpu_args.add_argument("--spin", type=int, required=True)
    cpu_args.add_argument("--repeat", type=int, default=3)
    cpu_args.add_argument("--warmup", type=int, default=1)
    cpu_args.add_argument("--driver-memory", default=DEFAULT_DRIVER_MEMORY)
    cpu_args.add_argument("--sizing", choices=("auto", "fixed"), default="auto", help="ray_transform's batch_sizing")
    cluster_args = sub.add_parser("cluster")
    cluster_args.add_argument("--rows", type=int, required=True)
    cluster_args.add_argument("--repeat", type=int, default=3)
    cluster_args.add_argument("--warmup", type=int, default=1)
    cluster_args.add_argument("--driver-memory", default=DEFAULT_DRIVER_MEMORY)
    dataset_args = sub.add_parser("dataset")
    dataset_args.add_argument("--rows", type=int, required=True)
    dataset_args.add_argument("--method", choices=("spark_ray", "from_arrow"), required=True)
    dataset_args.add_argument("--driver-memory", default=DEFAULT_DRIVER_MEMORY)
    dataset_args.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()
    if args.what == "cpu":
        emit_result(cpu(args.rows, args.spin, args.repeat, args.warmup, args.driver_memory, args.sizing))
    elif args.what == "cluster":
        emit_result(separate_executors(args.rows, args.repeat, args.warmup, args.driver_memory))
    else:
        emit_result(dataset(args.rows, args.method, args.driver_memory, args.warmup))


if __name__ == "__main__":
    main()
