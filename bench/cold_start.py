"""tiny_cold: what the very first job of a fresh process costs, Spark-native vs ray_transform.

Only a new interpreter shows it: in the main benchmark process Spark's Python
workers, the embedded Ray and its workers are already up. So each side runs in
its own child (``python bench/cold_start.py --engine native|ray``) that
creates the SparkSession, then times one job on 6 rows from after the session
exists to collect() done. For ray_transform that includes starting the
embedded Ray (with its defaults, as a first-time user gets it), starting Ray
workers and connecting Spark's Python workers to Ray.

Run as a script, this file is the child; ``measure_cold_start`` is the parent side.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from typing import Any

from common import (
    DEFAULT_DRIVER_MEMORY,
    bench_session,
    emit_result,
    run_child,
    tiny_table,
)

CHILD_TIMEOUT_S = 600.0


def measure_cold_start(driver_memory: str, progress: Callable[[str], None]) -> dict[str, Any]:
    """Run the native child, then the ray_transform child; return both timings.

    Returns ``{"native": {...}, "ray": {...}}``, each with ``session_s`` (the
    SparkSession's creation) and ``first_job_s`` (the measured job).
    """
    results: dict[str, Any] = {}
    for engine in ("native", "ray"):
        progress(f"tiny_cold: fresh process, first {engine} job on 6 rows")
        results[engine] = run_child(
            "cold_start.py", ["--engine", engine, "--driver-memory", driver_memory], CHILD_TIMEOUT_S
        )
        progress(
            f"tiny_cold: {engine}: session {results[engine]['session_s']:.2f} s, "
            f"first job {results[engine]['first_job_s']:.2f} s"
        )
    return results


def _child(engine: str, driver_memory: str) -> dict[str, Any]:
    """In the child: the session, then one timed 6-row job; always stop Spark and Ray."""
    start = time.perf_counter()
    spark = bench_session(driver_memory, app_name=f"spark-ray-bench-cold-{engine}")
    session_s = time.perf_counter() - start
    try:
        job_start = time.perf_counter()
        df = tiny_table(spark)
        if engine == "native":

            def identity(batches: Iterator[Any]) -> Iterator[Any]:
                yield from batches

            rows = df.mapInArrow(identity, df.schema).collect()
        else:
            from spark_ray import ray_transform

            rows = ray_transform(df, lambda row: row, df.schema).collect()
        first_job_s = time.perf_counter() - job_start
        if len(rows) != 6:  # a check that the job did its work, not of its time
            raise RuntimeError(f"the {engine} job returned {len(rows)} rows instead of 6")
        return {"engine": engine, "session_s": session_s, "first_job_s": first_job_s}
    finally:
        spark.stop()
        if engine == "ray":
            from spark_ray import cluster

            cluster.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("native", "ray"), required=True)
    parser.add_argument("--driver-memory", default=DEFAULT_DRIVER_MEMORY)
    args = parser.parse_args()
    emit_result(_child(args.engine, args.driver_memory))


if __name__ == "__main__":
    main()
