"""Load and leaks (issue 13): a session that runs many calls keeps nothing of them; driver mode holds a
table twice its memory limit without growing past it; and a run ends without Ray ERROR lines.

The 200 calls reuse bench/soak.py's job cycle and census (the same loop runs for an hour there, outside
CI, with the numbers in BENCHMARKS.md), on the test session's SparkSession and embedded Ray. The memory
limit and the quiet exit are measured in a child process (tests/leaks_child.py), so that the memory and
the output concern that driver alone; it runs while the 200 calls do (they wait on Spark and Ray more
than they use the CPU), which saves the module a minute or two, and the census leaves it out.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from dataclasses import asdict

import pytest
from processes import result_of, spark_env

from spark_ray import set_session_conf

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
BENCH_DIR = os.path.join(os.path.dirname(TESTS_DIR), "bench")
CHILD = os.path.join(TESTS_DIR, "leaks_child.py")

JOBS = 200
WARM_UP = 16  # two cycles: every kind of call has run twice, and every per-process cache is full
ROWS = 200
# How much each count may rise between the warm-up and the end without being called a leak. Each job
# kind runs 23 times after the warm-up, so anything left behind once per call of any kind is over these.
SLACK = {
    "threads": 3,
    "fds": 6,
    "other processes": 2,  # the JVM, Spark's Python workers, the embedded Ray's own processes
    "ray workers": 4,  # Ray keeps idle workers a minute (embedded_ray._embedded_worker_pool)
    "ray actors": 2,  # a driver-mode pool's actors are killed at return; GCS learns it a moment later
    "owned refs": 2,
    "store objects": 4,  # freeing a finished task's result is asynchronous
    "private MB": 64,
}

LIMIT_MB = 128  # the driver path's working set measured 50-95 MB here, whatever the table (192-576 MB) or chunk size
# A line Ray's C++ core logs at ERROR level: "[2026-11-23 00:30:57,761 E 18668 18730] core_worker.cc:609: ..."
RAY_CORE_ERROR = re.compile(r"^\[\d{4}-\d\d-\d\d [\d:,.]+ E \d+ \d+\]")


@pytest.fixture(scope="module")
def soak():
    sys.path.insert(0, BENCH_DIR)  # the bench modules import each other as siblings
    try:
        import soak

        yield soak
    finally:
        sys.path.remove(BENCH_DIR)


def _growth(before, after) -> dict[str, float]:
    return {
        "threads": after.threads - before.threads,
        "fds": after.fds - before.fds,
        "other processes": after.others() - before.others(),
        "ray workers": after.ray_workers - before.ray_workers,
        "ray actors": after.ray_actors - before.ray_actors,
        "owned refs": after.owned_refs - before.owned_refs,
        "store objects": after.store_objects - before.store_objects,
        "private MB": after.private_mb - before.private_mb,
    }


class _Child:
    """tests/leaks_child.py, started now and read later; its output goes to files, which never fill up."""

    def __init__(self, directory: str) -> None:
        self.paths = (os.path.join(directory, "stdout"), os.path.join(directory, "stderr"))
        command = [sys.executable, CHILD, "--limit-mb", str(LIMIT_MB)]
        with open(self.paths[0], "w") as stdout, open(self.paths[1], "w") as stderr:
            self.process = subprocess.Popen(
                command, stdout=stdout, stderr=stderr, env=spark_env(), start_new_session=True
            )
        self.done: subprocess.CompletedProcess[str] | None = None

    def finish(self, timeout_s: float) -> subprocess.CompletedProcess[str]:
        """Its exit and output; on a timeout it is killed, and so is whatever it left in its session."""
        if self.done is None:
            note = ""
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                note = f"\n(killed: still running after {timeout_s} s)"
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            with open(self.paths[0]) as stdout, open(self.paths[1]) as stderr:
                out, err = stdout.read(), stderr.read() + note
            self.done = subprocess.CompletedProcess(self.process.args, self.process.returncode, out, err)
        return self.done


@pytest.fixture(scope="module")
def leaks_child(tmp_path_factory):
    child = _Child(str(tmp_path_factory.mktemp("leaks_child")))
    yield child
    child.finish(timeout_s=0)


@pytest.fixture(scope="module")
def child_run(leaks_child):
    """The child's run: a driver-mode call over a table twice the limit, a small executor-path call,
    then Ray stops before Spark."""
    done = leaks_child.finish(timeout_s=900)
    return done, result_of(done)


def test_200_jobs_in_a_row_leave_nothing_behind(spark, soak, tmp_path, leaks_child):
    """Alternating paths, modes and kinds; the driver's threads, fds, child processes, spark-ray's scratch
    files, Ray's actors and the object store's objects are the same after 200 calls as after 16."""
    spill_dir = str(tmp_path / "spill")
    os.makedirs(spill_dir)
    df = soak.input_table(spark, ROWS, partitions=1)  # one Spark task and one Ray task per call: half the time
    jobs = soak.job_cycle()
    assert {job.name.split()[0] for job in jobs} == {"executor", "driver"}
    assert {"model", "data"} <= {word for job in jobs for word in job.name.split()}
    # One thing left behind per call of any one kind would be over every count's slack.
    assert max(amount for what, amount in SLACK.items() if what != "private MB") < (JOBS - WARM_UP) // len(jobs)
    censuses = {}
    set_session_conf(spark, spill_dir=spill_dir)  # a default for the doors that use it (driver, model)
    try:
        for index in range(JOBS):
            soak.check_job(jobs[index % len(jobs)], df, ROWS, {})
            if index + 1 in (WARM_UP, JOBS // 2, JOBS):
                censuses[index + 1] = soak.census(spill_dir, skip=[leaks_child.process.pid])
    finally:
        df.unpersist()
    report = "\n".join(f"after {jobs_done} jobs: {asdict(c)}" for jobs_done, c in censuses.items())
    warm, end = censuses[WARM_UP], censuses[JOBS]
    assert end.spill_entries == 0, f"scratch files left in {spill_dir}:\n{report}"
    grown = {what: amount for what, amount in _growth(warm, end).items() if amount > SLACK[what]}
    assert not grown, f"grew over {JOBS - WARM_UP} jobs: {grown}\n{report}"


def test_driver_mode_holds_twice_its_memory_limit(child_run):
    """The driver's private memory grows by less than the limit while a table of twice the limit (in
    Arrow) streams through it, and every row comes back."""
    _, result = child_run
    assert result["arrow_bytes"] >= 2 * result["limit_bytes"]
    rows = result["rows"]
    assert (result["count"], result["id_sum"]) == (rows, rows * (rows - 1) // 2)
    growth = result["peak_private"] - result["baseline_private"]
    assert 0 < growth < result["limit_bytes"], (
        f"the driver's private memory grew by {growth / 2**20:.0f} MB (limit {LIMIT_MB} MB) for a table of "
        f"{result['arrow_bytes'] / 2**20:.0f} MB"
    )


def test_a_run_ends_without_ray_error_lines(child_run):
    """Spark's Python workers joined to Ray own nothing there between tasks, so when Ray stops first (any
    script that never calls spark.stop()) none of them logs "Attempting to recover N lost objects"."""
    done, result = child_run
    assert result["executor_sum"] == 2 * sum(range(100))  # the executor path ran, so workers joined Ray
    errors = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if RAY_CORE_ERROR.match(line) or "Attempting to recover" in line or " ERROR " in line
    ]
    assert not errors, "\n".join(errors)
    assert done.returncode == 0, done.stderr[-3000:]
