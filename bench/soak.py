"""soak: ray_transform jobs in a loop on one SparkSession, to show that nothing grows with the jobs.

A long-lived session (a notebook, a Byzer engine, a scheduler's driver) runs
thousands of calls; anything a call leaves behind (a thread, an fd, a Ray
actor, an object in the store, a scratch file, a process, driver memory)
adds up. This loops small jobs that cycle through both paths (executor,
driver), both modes (data, model) and the kinds (row, rows, arrow, pandas, a
callable class, a pyjava code string), checks every job's result, and every
``--every`` minutes records a ``Census`` of the driver process and of its Ray:

    nice -n 19 timeout 4000 .venv/bin/python bench/soak.py --minutes 60 > /tmp/soak.log 2>&1 &

It prints one table row per sample as it goes and the whole table (and a
JSON line) at the end; numbers from a shared machine say "flat or not",
not how fast. ``tests/test_load_and_leaks.py`` runs the same job cycle and
census 200 times in a row and asserts they stay flat.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from driver_memory import MB, _current_private, _current_rss

ROWS = 400  # small: the loop is about what each call leaves behind, not about throughput
PARTITIONS = 2
SOAK_MARKER = "SOAK_RESULT "

# A pyjava code string, as Byzer scripts hold it ("local": the embedded Ray this process started).
ECHO_CODE = """
from pyjava.api.mlsql import RayContext
ray_context = RayContext.connect(context, "local")
def echo(rows):
    for row in rows:
        yield row
ray_context.map_iter(echo)
"""


@dataclass(frozen=True)
class Job:
    """One kind of call in the cycle: how to run it on the input, and the (count, sum of id) it must give."""

    name: str
    run: Callable[[DataFrame, dict[str, Any]], DataFrame]
    expected: Callable[[int], tuple[int, int]]
    summary: tuple[str, str] = ("count(*)", "coalesce(sum(id), 0)")  # (rows, sum of id) of the output


def _same(rows: int) -> tuple[int, int]:
    return rows, rows * (rows - 1) // 2


def _doubled(rows: int) -> tuple[int, int]:
    return rows, rows * (rows - 1)


# Model mode's output is one row: the rows and the sum of id its code counted.
MODEL_SUMMARY = ("sum(rows)", "sum(total)")


def job_cycle() -> list[Job]:
    """The jobs the loop repeats: every path, both modes, every kind, Ray tasks and an actor pool.

    The functions are made here, as closures, so that cloudpickle sends them by value: Spark's and
    Ray's workers cannot import this file (the bench modules import each other as siblings).
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    def bang(row: dict[str, Any]) -> dict[str, Any]:
        return {"id": row["id"], "s": row["s"] + "!"}

    def double_arrow(batch: pa.RecordBatch) -> pa.RecordBatch:
        return pa.RecordBatch.from_arrays([pc.multiply(batch.column(0), 2), batch.column(1)], names=["id", "s"])

    def double_pandas(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(id=frame["id"] * 2)

    def pass_rows(rows: Any) -> Any:
        yield from rows

    class Tagger:
        """A callable class: an actor pool, made and closed by the call."""

        def __init__(self) -> None:
            self.suffix = "?"

        def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
            return {"id": row["id"], "s": row["s"] + self.suffix}

    def summarize(context: Any) -> pd.DataFrame:
        """Model mode: a Ray task per shard, results gathered by the code."""
        import ray

        from spark_ray.shard_server import fetch_table

        @ray.remote
        def shard_sum(shard: Any) -> tuple[int, int]:
            table = fetch_table(shard)
            return table.num_rows, int(pc.sum(table.column("id")).as_py() or 0)

        parts = ray.get([shard_sum.remote(shard) for shard in context.data_servers()])
        return pd.DataFrame({"rows": [sum(p[0] for p in parts)], "total": [sum(p[1] for p in parts)]})

    schema = "id long, s string"
    summary = "rows long, total long"
    return [
        Job("executor data row", lambda df, o: _call(df, bang, schema, run_in="executor", **o), _same),
        Job("driver data arrow", lambda df, o: _call(df, double_arrow, schema, run_in="driver", kind="arrow", **o),
            _doubled),
        Job("executor model", lambda df, o: _call(df, summarize, summary, mode="model", run_in="executor", **o),
            _same, MODEL_SUMMARY),
        Job("driver model", lambda df, o: _call(df, summarize, summary, mode="model", run_in="driver", **o),
            _same, MODEL_SUMMARY),
        Job("executor data pandas", lambda df, o: _call(df, double_pandas, schema, kind="pandas", **o), _doubled),
        Job("driver data rows", lambda df, o: _call(df, pass_rows, schema, run_in="driver", kind="rows", **o), _same),
        Job("driver data class", lambda df, o: _call(df, Tagger, schema, run_in="driver", concurrency=1, **o), _same),
        Job("executor data code", lambda df, o: _call(df, ECHO_CODE, schema, run_in="executor", **o), _same),
    ]  # fmt: skip


def _call(df: DataFrame, code: Any, schema: str, **options: Any) -> DataFrame:
    from spark_ray import ray_transform

    return ray_transform(df, code, schema, **options)


def check_job(job: Job, df: DataFrame, rows: int, options: dict[str, Any]) -> None:
    """Run ``job`` and compare its (count, sum) with what it must give; raise AssertionError if not."""
    got = tuple(job.run(df, options).selectExpr(*job.summary).first())  # type: ignore[arg-type]
    want = job.expected(rows)
    if got != want:
        raise AssertionError(f"{job.name}: (rows, sum of id) {got}, expected {want}")


def input_table(spark: SparkSession, rows: int = ROWS, partitions: int = PARTITIONS) -> DataFrame:
    """The cached input of every job: ids and their text (two partitions: both Spark task slots join Ray)."""
    df = spark.range(rows, numPartitions=partitions).selectExpr("id", "cast(id as string) as s").cache()
    df.count()
    return df


# ---------------------------------------------------------------------------------------------- census


@dataclass
class Census:
    """What could grow with the number of jobs, in the driver process and its Ray."""

    threads: int
    fds: int
    rss_mb: float
    private_mb: float
    children: int  # every descendant process: the JVM, Spark's Python workers, the embedded Ray's processes
    ray_workers: int  # of those, Ray's worker processes (their number follows Ray's idle-worker pool)
    spill_entries: int  # files and directories under spark-ray's scratch dir
    ray_actors: int  # actors of this Ray that are not dead
    owned_refs: int  # ObjectRefs the driver holds
    store_objects: int  # objects in the Ray object store, every owner

    def others(self) -> int:
        """Descendant processes that are not Ray workers: these should not vary at all."""
        return self.children - self.ray_workers


def _descendants(root: int, skip: Collection[int] = ()) -> list[tuple[int, str]]:
    """(pid, command line) of every live descendant of ``root``, from /proc, but for ``skip`` and theirs."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                fields = stat.read().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            parents[int(entry)] = int(fields[1])
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found - set(skip)
        found |= frontier
    result = []
    for pid in sorted(found):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                result.append((pid, cmdline.read().replace(b"\0", b" ").decode(errors="replace")))
        except OSError:
            continue
    return result


def _is_ray_worker(command: str) -> bool:
    return command.startswith("ray::") or "default_worker.py" in command


def _count_entries(path: str) -> int:
    return sum(len(dirs) + len(files) for _, dirs, files in os.walk(path)) if os.path.isdir(path) else 0


def _store_objects() -> int:
    """Objects in the object store across the cluster, as `ray memory --stats-only` reports them."""
    import re

    import ray
    from ray._private.internal_api import memory_summary

    text = memory_summary(address=ray.get_runtime_context().gcs_address, stats_only=True)
    found = re.search(r"Plasma memory usage \S+ MiB, (\d+) objects", text)
    if found is None:
        raise RuntimeError(f"no object count in Ray's memory summary:\n{text}")
    return int(found.group(1))


def census(spill_dir: str, skip: Collection[int] = ()) -> Census:
    """Count everything a job could leave behind (after a garbage collection, so only what is held).

    ``skip``: child processes that are no part of this session (a test's own child), with their trees.
    """
    import ray
    from ray._private import state as ray_state

    gc.collect()
    processes = _descendants(os.getpid(), skip)
    actors = ray_state.actors()  # type: ignore[attr-defined]
    core_worker = ray._private.worker.global_worker.core_worker
    return Census(
        threads=len(os.listdir("/proc/self/task")),
        fds=len(os.listdir("/proc/self/fd")),
        rss_mb=_current_rss() / MB,
        private_mb=(_current_private() or 0) / MB,
        children=len(processes),
        ray_workers=sum(1 for _, command in processes if _is_ray_worker(command)),
        spill_entries=_count_entries(spill_dir),
        ray_actors=sum(1 for actor in actors.values() if actor.get("State") != "DEAD"),
        owned_refs=len(core_worker.get_all_reference_counts()),
        store_objects=_store_objects(),
    )


# ---------------------------------------------------------------------------------------------- the loop


@dataclass
class Sample:
    """One row of the soak table: the census after ``jobs`` jobs, and the job times since the last row."""

    minute: float
    jobs: int
    failures: int
    census: Census
    mean_job_s: float
    max_job_s: float

    def row(self) -> str:
        c = self.census
        return (
            f"| {self.minute:6.1f} | {self.jobs:5d} | {self.failures:3d} | {c.rss_mb:7.0f} | {c.private_mb:7.0f} | "
            f"{c.threads:7d} | {c.fds:4d} | {c.others():8d} | {c.ray_workers:7d} | {c.ray_actors:6d} | "
            f"{c.store_objects:7d} | {c.owned_refs:4d} | {c.spill_entries:5d} | {self.mean_job_s:6.2f} | "
            f"{self.max_job_s:6.2f} |"
        )


HEADER = (
    "| minute |  jobs | err | RSS MB | private MB | threads | fds | processes | Ray workers | actors | "
    "objects | refs | spill | mean s |  max s |\n"
    "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
)


def soak(minutes: float, every_minutes: float, rows: int, print_row: Callable[[str], None]) -> list[Sample]:
    """Loop the job cycle for ``minutes`` on one session; a ``Sample`` after the first cycle (the warm-up)
    and every ``every_minutes`` after. A failed job is counted, its traceback printed, and the loop goes on."""
    from spark_ray import cluster, set_session_conf
    from spark_ray.conf import RayTransformConf
    from spark_ray.local_spark import local_spark

    spark = local_spark("local[2]", app_name="spark-ray-soak", **{"spark.ui.enabled": "false"})
    spill_dir = tempfile.mkdtemp(prefix="spark-ray-soak-")
    samples: list[Sample] = []
    try:
        cluster.ensure_driver_ray(RayTransformConf(local_ray_cpus=2))
        df = input_table(spark, rows)
        jobs = job_cycle()
        set_session_conf(spark, spill_dir=spill_dir)  # a default for the doors that use it (driver, model)
        options: dict[str, Any] = {}
        start = time.monotonic()
        deadline = start + minutes * 60
        next_sample = None
        done = failures = 0
        times: list[float] = []
        print_row(HEADER)
        while True:
            job = jobs[done % len(jobs)]
            began = time.monotonic()
            try:
                check_job(job, df, rows, options)
            except Exception:
                failures += 1
                traceback.print_exc()
                sys.stderr.flush()
            times.append(time.monotonic() - began)
            done += 1
            now = time.monotonic()
            warmed_up = done == len(jobs)
            finished = now >= deadline and done % len(jobs) == 0  # the loop ends on a whole cycle
            if warmed_up or finished or (next_sample is not None and now >= next_sample):
                sample = Sample((now - start) / 60, done, failures, census(spill_dir), statistics.fmean(times),
                                max(times))  # fmt: skip
                samples.append(sample)
                print_row(sample.row())
                times = []
                next_sample = now + every_minutes * 60
            if finished:
                break
    finally:
        spark.stop()
        cluster.shutdown()
        shutil.rmtree(spill_dir, ignore_errors=True)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="how long to loop (whole cycles)")
    parser.add_argument("--every", type=float, default=5.0, help="minutes between two samples")
    parser.add_argument("--rows", type=int, default=ROWS, help="rows of the input table")
    args = parser.parse_args()

    def print_row(line: str) -> None:
        print(line, flush=True)

    samples = soak(args.minutes, args.every, args.rows, print_row)
    print("\nthe whole run:\n" + HEADER)
    for sample in samples:
        print(sample.row())
    print(SOAK_MARKER + json.dumps([dict(asdict(s), census=asdict(s.census)) for s in samples]), flush=True)


if __name__ == "__main__":
    main()
