"""Memory of every process a call uses, as the table grows: is it flat from 5M to 50M rows?

Outside ``make bench`` (a 50M-row pass takes minutes here). Each (path, size) runs in a fresh child,
``python bench/memory_run.py --child --path executor --rows 50000000``, on a generated table that is
not cached, so that no process holds the input and what grows with the table is the call's own. A
sampler reads, every 0.2 s, the private resident memory (RssAnon: without mapped files and Ray's
shared-memory object store) of each process under the child, grouped by what it is, and keeps each
group's peak for its largest process.

    .venv/bin/python bench/memory_run.py --rows 5M,50M            # both paths, a table per run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

from common import DEFAULT_DRIVER_MEMORY, DEFAULT_RAY_CPUS, bench_session, noop_write, parse_rows
from driver_memory import MB

MARK = "MEMORY_RESULT "
GROUPS = (
    ("spark_jvm", "java"),
    ("spark_python_worker", "pyspark"),
    ("ray_worker", "ray::"),  # a Ray worker names itself after its task ("ray::IDLE" between tasks)
    ("ray_worker", "default_worker.py"),
    ("ray_system", "/ray/"),
)


def _group_of(command: str) -> str:
    for group, marker in GROUPS:
        if marker in command:
            return group
    return "other"


class _Sampler(threading.Thread):
    """The peak private memory of the largest process of each group, and of the driver itself."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peaks: dict[str, int] = {}
        self._stop_event = threading.Event()

    def sample(self) -> None:
        from spark_ray import own_processes
        from spark_ray.memory_cap import private_memory_bytes

        seen = {"driver_python": private_memory_bytes() or 0}
        for pid in own_processes.descendants():
            group = _group_of(own_processes.command_line(pid))
            seen[group] = max(seen.get(group, 0), private_memory_bytes(pid) or 0)
        for group, size in seen.items():
            self.peaks[group] = max(self.peaks.get(group, 0), size)

    def run(self) -> None:
        while not self._stop_event.wait(0.2):
            self.sample()

    def stop(self) -> dict[str, float]:
        self._stop_event.set()
        self.join()
        return {group: round(size / MB, 1) for group, size in sorted(self.peaks.items())}


def _child(path: str, rows: int) -> dict[str, Any]:
    import pyarrow as pa

    from spark_ray import cluster, ray_transform
    from spark_ray.conf import RayTransformConf

    spark = bench_session(DEFAULT_DRIVER_MEMORY, app_name=f"spark-ray-bench-memory-{path}")
    try:
        cluster.ensure_driver_ray(RayTransformConf(local_ray_cpus=DEFAULT_RAY_CPUS))
        df = spark.range(rows, numPartitions=2).selectExpr(
            "id", "cast(id as double) * 0.5 as x", "cast(id as string) as s"
        )

        def identity(batch: pa.RecordBatch) -> pa.RecordBatch:
            return batch

        def run() -> None:
            if path == "native":
                noop_write(df.mapInArrow(lambda batches: batches, df.schema))
            else:
                noop_write(ray_transform(df, identity, df.schema, run_in=path, kind="arrow"))

        sampler = _Sampler()
        sampler.start()
        start = time.perf_counter()
        run()
        seconds = time.perf_counter() - start
        return {"path": path, "rows": rows, "seconds": round(seconds, 2), "peak_private_mb": sampler.stop()}
    finally:
        spark.stop()
        cluster.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="5M,50M")
    parser.add_argument("--paths", default="native,executor,driver")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(MARK + json.dumps(_child(args.path, int(args.rows))), flush=True)
        return
    for rows in parse_rows(args.rows):
        for path in args.paths.split(","):
            done = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--child", "--path", path, "--rows", str(rows)],
                capture_output=True,
                text=True,
                timeout=3600,
                start_new_session=True,
            )
            lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
            if not lines:
                print(f"{path} {rows:,}: failed\n{done.stderr[-2000:]}", flush=True)
                continue
            print(json.dumps(json.loads(lines[0][len(MARK) :])), flush=True)


if __name__ == "__main__":
    main()
