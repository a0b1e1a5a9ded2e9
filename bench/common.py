"""What every part of the benchmark shares: the session, the tables, timing, children.

All cases must run on the same SparkSession settings and the same input table,
or their ratios mean nothing; the subprocess measurements (cold start, driver
memory) build their session and table with the same functions for the same
reason. The bench modules import each other as siblings (``python bench/run.py``
puts ``bench/`` first on ``sys.path``); the functions that travel to Spark and
Ray workers are closures, so they are pickled by value and need no import of
these modules on the other side.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from pyspark.sql import DataFrame, SparkSession

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)

MASTER = "local[2]"
# Ray gets as many CPUs as Spark has task slots, so neither engine has more cores to use.
DEFAULT_RAY_CPUS = 2
DEFAULT_DRIVER_MEMORY = "4g"  # local mode's 1g is too small for toArrow() of 10M rows
TINY_ROWS = 6
RESULT_MARKER = "BENCH_RESULT "  # prefix of the JSON line a child prints for its parent


def bench_session(driver_memory: str = DEFAULT_DRIVER_MEMORY, app_name: str = "spark-ray-bench") -> SparkSession:
    """The local[2] SparkSession of every case, in this process or a child.

    local_spark points Spark's Python workers at this interpreter (the venv);
    the UI is off because nobody looks at it and it costs start-up time.
    """
    from spark_ray.local_spark import local_spark

    return local_spark(
        MASTER,
        app_name=app_name,
        **{"spark.ui.enabled": "false", "spark.driver.memory": driver_memory},
    )


def build_table(spark: SparkSession, rows: int) -> DataFrame:
    """The benchmark table (id long, x double, s string), cached and materialized.

    Caching first means every case reads the same in-memory partitions and no
    case pays for generating the data.
    """
    df = spark.range(rows, numPartitions=2).selectExpr("id", "cast(id as double) * 0.5 as x", "cast(id as string) as s")
    df = df.cache()
    df.count()
    return df


def tiny_table(spark: SparkSession) -> DataFrame:
    """A 6-row table with the benchmark's columns, for the fixed-overhead cases."""
    rows = [(i, i * 0.5, str(i)) for i in range(TINY_ROWS)]
    return spark.createDataFrame(rows, "id long, x double, s string")


def noop_write(df: DataFrame) -> None:
    """Evaluate every row of ``df`` without bringing it to the driver (same sink for all cases)."""
    df.write.format("noop").mode("overwrite").save()


def parse_rows(text: str) -> list[int]:
    """``"1000000,10M,20k,1_000"`` -> ``[1000000, 10000000, 20000, 1000]``."""
    sizes = []
    for item in text.split(","):
        item = item.strip().lower().replace("_", "")
        if not item:
            continue
        scale = 1
        if item[-1] in "km":
            scale = 1_000 if item[-1] == "k" else 1_000_000
            item = item[:-1]
        try:
            value = int(float(item) * scale)
        except ValueError:
            raise ValueError(f"cannot read {item!r} as a row count (try 1000000, 1M or 20k)") from None
        if value < 1:
            raise ValueError(f"row counts must be positive, got {text!r}")
        sizes.append(value)
    if not sizes:
        raise ValueError(f"no row counts in {text!r}")
    return sizes


def settle(spark: SparkSession) -> None:
    """Collect garbage in Python and in the JVM before a timed run, and give Spark's cleaner a moment.

    Without it, the locally checkpointed results of earlier driver-mode runs stay
    in Spark's storage memory until the JVM happens to collect them (Spark forces
    that only every 30 minutes), and a later run, of any case, pays for evicting
    them to disk: the same driver-mode call measured 1.3x to 2.3x native in one
    session depending on what earlier runs had left.
    """
    gc.collect()
    spark.sparkContext._jvm.System.gc()  # type: ignore[union-attr]
    time.sleep(0.5)  # ContextCleaner drops the blocks of collected RDDs on its own thread


def timed(thunk: Callable[[], Any]) -> float:
    """Wall-clock seconds of one call."""
    start = time.perf_counter()
    thunk()
    return time.perf_counter() - start


def emit_result(payload: dict[str, Any]) -> None:
    """A child's answer to its parent: one marked JSON line on stdout."""
    sys.stdout.write(RESULT_MARKER + json.dumps(payload) + "\n")
    sys.stdout.flush()


class ChildError(RuntimeError):
    """A measurement subprocess failed, timed out or printed no result."""


def run_child(script: str, args: list[str], timeout_s: float) -> dict[str, Any]:
    """Run ``bench/<script>`` in a fresh interpreter and return the JSON it emitted.

    The child gets its own process group so that, on a timeout or an
    interrupt, it is stopped together with everything it started (its JVM,
    its Ray processes) and nothing outlives the benchmark.
    """
    command = [sys.executable, os.path.join(BENCH_DIR, script), *args]
    child = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        start_new_session=True,
    )
    try:
        stdout, stderr = child.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise ChildError(f"{script} {' '.join(args)} did not finish within {timeout_s:.0f} s") from None
    finally:
        _stop_group(child)  # also whatever the child left behind in its group
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            if child.returncode != 0:
                break
            return json.loads(line[len(RESULT_MARKER) :])
    tail = "\n".join((stderr or "").strip().splitlines()[-15:])
    raise ChildError(f"{script} {' '.join(args)} exited with {child.returncode} and no result:\n{tail}")


def _stop_group(child: subprocess.Popen[str]) -> None:
    """Stop the child's process group (its pid is the group id): politely, then for good.

    After a normal exit this only sends SIGTERM to whatever the child left in
    its group; a child still running gets 10 s to stop before SIGKILL.
    """
    try:
        os.killpg(child.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return  # the group is empty: nothing left to stop
    try:
        child.wait(timeout=10.0)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return
        child.wait(timeout=10.0)
