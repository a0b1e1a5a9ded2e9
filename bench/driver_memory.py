"""driver_rss: how much memory the driver's Python process needs in run_in="driver" mode.

Driver mode streams the table through the driver, so its memory should stay
about flat as the table grows (a partition or two plus the shards in flight),
not grow with the table. A process's peak RSS only ever goes up, so each size
runs in a fresh child (``python bench/driver_memory.py --rows N``) that builds
the same cached table, runs the driver_arrow case once and reports its peak
RSS (``getrusage(RUSAGE_SELF).ru_maxrss``), the RSS before the call, and the
peaks seen by a sampler during the call: RSS, and the process's private
memory alone (RssAnon, on Linux), which leaves out the pages of Ray's
shared-memory object store that the driver maps to read results.

Run as a script, this file is the child; ``measure_driver_rss`` is the parent side.
"""

from __future__ import annotations

import argparse
import resource
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from common import (
    DEFAULT_DRIVER_MEMORY,
    DEFAULT_RAY_CPUS,
    bench_session,
    build_table,
    emit_result,
    noop_write,
    run_child,
)

CHILD_TIMEOUT_S = 3600.0
MB = 1024 * 1024


def measure_driver_rss(sizes: list[int], driver_memory: str, progress: Callable[[str], None]) -> list[dict[str, Any]]:
    """One child per size, smallest first; each result has ``rows`` and ``peak_rss_mb``."""
    results = []
    for rows in sorted(sizes):
        progress(f"driver_rss rows={rows:,}: fresh process, driver_arrow once")
        result = run_child("driver_memory.py", ["--rows", str(rows), "--driver-memory", driver_memory], CHILD_TIMEOUT_S)
        progress(
            f"driver_rss rows={rows:,}: peak {result['peak_rss_mb']:.0f} MB "
            f"(before the call {result['before_rss_mb']:.0f} MB, call {result['seconds']:.2f} s)"
        )
        results.append(result)
    return results


def _current_rss() -> int:
    """This process's resident set size in bytes (Linux /proc; psutil elsewhere)."""
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * resource.getpagesize()


def _current_private() -> int | None:
    """Resident memory that is this process's own (RssAnon), without mapped shared memory; Linux only.

    RSS also counts the pages of Ray's shared-memory object store that the
    driver maps to read results; this is the part that could grow with data.
    """
    from spark_ray.memory_cap import private_memory_bytes

    return private_memory_bytes()


def _peak_rss() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


class _Sampler(threading.Thread):
    """Samples this process's RSS every 20 ms and keeps the largest."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = _current_rss()
        self.peak_private = _current_private()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.02):
            self.peak = max(self.peak, _current_rss())
            private = _current_private()
            if private is not None and self.peak_private is not None:
                self.peak_private = max(self.peak_private, private)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return max(self.peak, _current_rss())


def _child(rows: int, driver_memory: str) -> dict[str, Any]:
    """In the child: set up like the main run, then one driver_arrow call; always stop Spark and Ray."""
    import pyarrow as pa

    from spark_ray import cluster, ray_transform
    from spark_ray.conf import RayTransformConf

    spark = bench_session(driver_memory, app_name="spark-ray-bench-rss")
    try:
        df = build_table(spark, rows)
        cluster.ensure_driver_ray(RayTransformConf(local_ray_cpus=DEFAULT_RAY_CPUS))

        def identity(batch: pa.RecordBatch) -> pa.RecordBatch:
            return batch

        before = _current_rss()
        before_private = _current_private()
        sampler = _Sampler()
        sampler.start()
        start = time.perf_counter()
        noop_write(ray_transform(df, identity, df.schema, run_in="driver", kind="arrow"))
        seconds = time.perf_counter() - start
        sampled = sampler.stop()
        return {
            "rows": rows,
            "seconds": seconds,
            "before_rss_mb": before / MB,
            "peak_rss_mb": _peak_rss() / MB,
            "sampled_peak_rss_mb": sampled / MB,
            "before_private_mb": None if before_private is None else before_private / MB,
            "sampled_peak_private_mb": None if sampler.peak_private is None else sampler.peak_private / MB,
        }
    finally:
        spark.stop()
        cluster.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--driver-memory", default=DEFAULT_DRIVER_MEMORY)
    args = parser.parse_args()
    emit_result(_child(args.rows, args.driver_memory))


if __name__ == "__main__":
    main()
