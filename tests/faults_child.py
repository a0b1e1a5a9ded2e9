"""Run by tests/test_faults.py in a process of its own: faults that must not touch the test session's
Spark or Ray. Prints one JSON line (after ``FAULTS_RESULT ``) of what happened.

    faults_child.py spark-executor-killed MARKER_DIR    # local-cluster[2,1,1024], the embedded Ray
    faults_child.py ray-node-killed RAY_ADDRESS MARKER_DIR
    faults_child.py embedded-ray-killed                 # RAY_TMPDIR names the embedded Ray's own dir
    faults_child.py raylet-hangs-at-start               # RAY_TMPDIR as above

Each mode causes its fault for real (SIGKILL of a JVM, of a Ray node's processes, of the embedded
Ray's processes) at a moment the user code signals through a file in MARKER_DIR, so the fault lands
mid-job rather than before or after it; one (raylet-hangs-at-start) freezes the first raylet as it starts.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from processes import kill_pids, process_tree, spark_executors, wait_gone, write_result

ROWS = 80


def report(found: dict[str, Any]) -> None:
    write_result(found)


def wait_for_file(path: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return True
        time.sleep(0.05)
    return False


def slow_double(trigger_file: str, trigger: int) -> Callable[[dict], dict]:
    """A row function that takes 0.1 s a row and appends its pid to ``trigger_file`` at row ``trigger``,
    so that the fault can land at a chosen point of the job (e.g. while Spark's second wave runs)."""

    def double(row: dict) -> dict:
        if row["id"] == trigger:
            with open(trigger_file, "a", encoding="ascii") as mark:
                mark.write(f"{os.getpid()}\n")
        time.sleep(0.1)
        return {"id": row["id"], "twice": 2 * row["id"]}

    return double


def failed_tasks(sc: Any, group: str) -> int:
    """How many task attempts of the job group failed (Spark reran them): the fault's trace in Spark."""
    tracker = sc.statusTracker()
    total = 0
    for job_id in tracker.getJobIdsForGroup(group):
        job = tracker.getJobInfo(job_id)
        for stage_id in job.stageIds if job is not None else []:
            stage = tracker.getStageInfo(stage_id)
            total += stage.numFailedTasks if stage is not None else 0
    return total


def executor_of(pid: int, executors: dict[int, str]) -> int | None:
    """The executor JVM among ``executors`` that ``pid`` descends from (a Spark Python worker's JVM)."""
    while pid > 1:
        if pid in executors:
            return pid
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
                pid = int(stat.read().rsplit(") ", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            return None
    return None


# --------------------------------------------------------------------------- Spark executor killed


def spark_executor_killed(marker_dir: str) -> None:
    """local-cluster[2,1,1024]: two one-core executors, four partitions of 20 rows. In each path, one
    executor JVM is SIGKILLed while the second wave of tasks runs (each executor then holds a block of
    the first wave, and runs a task of the second): Spark reruns what it lost; the output must be exact."""
    os.environ["PYSPARK_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession

    import spark_ray
    from spark_ray import ray_transform

    spark = (
        SparkSession.builder.master("local-cluster[2,1,1024]")
        .appName("spark-ray-faults-executor-killed")
        .config("spark.executor.memory", "1g")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .getOrCreate()
    )
    sc = spark.sparkContext
    found: dict[str, Any] = {"app_id": sc.applicationId}
    df = spark.range(0, ROWS, numPartitions=4)
    schema = "id long, twice long"
    options: dict[str, Any] = {"batch_rows": 5, "local_ray_cpus": 2}
    trigger_row = 65  # row 5 of partition 3: the second wave

    def kill_one_executor_at(trigger: str, pick: Callable[[dict[int, str]], int | None]) -> dict[str, Any]:
        """In the background: once ``trigger`` exists, SIGKILL the executor ``pick`` chooses."""
        outcome: dict[str, Any] = {}

        def watch() -> None:
            if not wait_for_file(trigger, 120.0):
                outcome["error"] = "the trigger never came"
                return
            executors = spark_executors(sc.applicationId)
            victim = pick(executors)
            if victim is None:
                outcome["error"] = f"no executor to kill among {executors}"
                return
            os.kill(victim, signal.SIGKILL)
            outcome["killed_executor"] = executors[victim]
            outcome["gone"] = wait_gone([victim], 30.0) == []
            with open(trigger + ".killed", "w", encoding="ascii"):
                pass

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        outcome["thread"] = thread
        return outcome

    def registered_executors() -> int:
        return int(sc._jsc.sc().getExecutorMemoryStatus().size()) - 1  # without the driver's block manager

    def run(path: str, call: Callable[[], list], trigger: str, pick: Callable[[dict[int, str]], int | None]) -> None:
        deadline = time.monotonic() + 120.0  # the master replaces a killed executor: each path starts with two
        while registered_executors() < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        outcome = kill_one_executor_at(trigger, pick)
        outcome["executors_at_start"] = registered_executors()
        sc.setJobGroup(f"faults-{path}", f"faults {path}")
        try:
            rows = call()
        except Exception as error:  # noqa: BLE001 - the error's text is what the test shows
            rows = []
            outcome["error"] = f"{type(error).__name__}: {error}"[:3000]
        outcome.pop("thread").join(60.0)
        found[path] = {
            "rows": sorted([row["id"], row["twice"]] for row in rows),
            "failed_tasks": failed_tasks(sc, f"faults-{path}"),
            **outcome,
        }

    def busy_executor(executors: dict[int, str]) -> int | None:
        """An executor running a task now (the one that waits for the trigger row's shard), so that the
        kill lands on the job whatever the timing; else the first one."""
        summaries = sc._jsc.sc().statusStore().executorList(True)
        busy = {summaries.apply(i).id() for i in range(summaries.size()) if summaries.apply(i).activeTasks() > 0}
        running = [pid for pid, executor_id in executors.items() if executor_id in busy]
        candidates = running or list(executors)
        return min(candidates, key=lambda pid: executors[pid]) if candidates else None

    for run_in in ("executor", "driver"):
        path = f"{run_in}_data"
        trigger = os.path.join(marker_dir, f"trigger-{path}")
        fn = slow_double(trigger, trigger_row)
        group: dict[str, Any] = {"job_group": f"faults-{path}"} if run_in == "driver" else {}

        def call(run_in: str = run_in, group: dict[str, Any] = group, fn: Any = fn) -> list[dict[str, Any]]:
            return [row.asDict() for row in ray_transform(df, fn, schema, run_in=run_in, **options, **group).collect()]

        run(path, call, trigger, busy_executor)

    # Model mode runs the program in one Spark task: kill the executor whose Python worker runs it.
    def model_program(context: Any) -> None:
        import ray

        from spark_ray.context import RayContext

        mark = os.path.join(marker_dir, "model")
        if not os.path.exists(mark):  # the first attempt: say where it runs, and wait to be killed
            with open(mark + ".tmp", "w", encoding="ascii") as out:
                out.write(str(os.getpid()))
            os.rename(mark + ".tmp", mark)  # whole, for the watcher
            wait_for_file(mark + ".killed", 60.0)
            time.sleep(30.0)  # the JVM is gone; Spark will not take this attempt's output

        @ray.remote
        def read(handle: Any) -> list[dict]:
            return [{"id": row["id"], "twice": 2 * row["id"]} for row in RayContext.fetch_once_as_rows(handle)]

        context.build_result(
            [row for rows in ray.get([read.remote(h) for h in context.data_servers()]) for row in rows]
        )

    model_mark = os.path.join(marker_dir, "model")

    def model_executor(executors: dict[int, str]) -> int | None:
        with open(model_mark, encoding="ascii") as mark:
            return executor_of(int(mark.read()), executors)

    run(
        "model",
        lambda: [
            row.asDict()
            for row in ray_transform(
                df, model_program, schema, mode="model", job_group="faults-model", **options
            ).collect()
        ],
        model_mark,
        model_executor,
    )
    found["executors_at_end"] = sorted(spark_executors(sc.applicationId).values())
    spark.stop()
    spark_ray.shutdown()
    report(found)


# --------------------------------------------------------------------------- Ray node killed


def ray_node_killed(ray_address: str, marker_dir: str) -> None:
    """A two-node Ray cluster whose second node alone has the resource ``alice``: the executor path's tasks
    run there, and that node's processes are SIGKILLed mid-job. The call must end (the test's timeout
    guards it): finished with every row, or failed naming the node."""
    import spark_ray
    from spark_ray import ray_transform
    from spark_ray.local_spark import local_spark

    spark = local_spark("local[2]", app_name="spark-ray-faults-node-killed", **{"spark.ui.enabled": "false"})
    import ray

    options: dict[str, Any] = {"ray_address": ray_address, "resources": {"alice": 0.5}, "batch_rows": 5}
    ray_transform(spark.range(0, 1), lambda row: row, "id long", **options).collect()  # joins the cluster
    alice = [node["NodeID"] for node in ray.nodes() if node["Alive"] and "alice" in node["Resources"]]
    found: dict[str, Any] = {"alice": alice, "nodes": len(ray.nodes())}
    outcome: dict[str, Any] = {}
    trigger = os.path.join(marker_dir, "trigger")

    def kill_alice() -> None:
        if not wait_for_file(trigger, 120.0):
            outcome["kill_error"] = "the trigger never came"
            return
        pids = process_tree(alice[0])  # its raylet (with --node_id), and the raylet's workers and agents
        kill_pids(pids)
        outcome["killed_pids"] = len(pids)
        outcome["left"] = wait_gone(pids, 30.0)

    watcher = threading.Thread(target=kill_alice, daemon=True)
    watcher.start()
    df = spark.range(0, 40, numPartitions=2)
    started = time.monotonic()
    try:
        out = ray_transform(df, slow_double(trigger, 12), "id long, twice long", **options)
        found["finished"] = sorted([row["id"], row["twice"]] for row in out.collect())
    except Exception as error:  # noqa: BLE001 - the error's text is what the test checks
        found["error"] = f"{type(error).__name__}: {error}"
    found["seconds"] = round(time.monotonic() - started, 1)
    watcher.join(60.0)
    found.update(outcome)
    spark.stop()
    spark_ray.shutdown()
    report(found)


# --------------------------------------------------------------------------- the embedded Ray killed


def embedded_ray_killed() -> None:
    """One call on the embedded Ray; then every process of that Ray is SIGKILLed (found by its temp dir,
    RAY_TMPDIR); the next calls, in every path, must start a new embedded Ray and give exact results."""
    import spark_ray
    from spark_ray import ray_transform
    from spark_ray.local_spark import local_spark

    ray_dir = os.environ["RAY_TMPDIR"]
    spark = local_spark("local[2]", app_name="spark-ray-faults-embedded-killed", **{"spark.ui.enabled": "false"})
    import ray

    df = spark.range(0, 20, numPartitions=2)
    schema = "id long, twice long"

    def double(row: dict) -> dict:
        return {"id": row["id"], "twice": 2 * row["id"]}

    def model(context: Any) -> None:
        from spark_ray.context import RayContext

        context.build_result([double(row) for row in RayContext.collect_from(context.data_servers())])

    def rows_of(out: Any) -> list[list[int]]:
        return sorted([row["id"], row["twice"]] for row in out.collect())

    found: dict[str, Any] = {"before": rows_of(ray_transform(df, double, schema))}
    found["gcs_before"] = ray.get_runtime_context().gcs_address
    pids = process_tree(ray_dir)
    kill_pids(pids)
    found["killed"] = len(pids)
    found["left"] = wait_gone(pids, 30.0)
    calls = {
        "executor": lambda: ray_transform(df, double, schema),
        "driver": lambda: ray_transform(df, double, schema, run_in="driver"),
        "model": lambda: ray_transform(df, model, schema, mode="model"),
    }
    for path, call in calls.items():
        try:
            found[path] = rows_of(call())
        except Exception as error:  # noqa: BLE001 - the error's text is what the test checks
            found[path] = f"{type(error).__name__}: {error}"[-4000:]
    found["gcs_after"] = ray.get_runtime_context().gcs_address if ray.is_initialized() else None
    spark.stop()
    spark_ray.shutdown()
    report(found)


# --------------------------------------------------------------------------- the raylet hangs at start


def raylet_hangs_at_start() -> None:
    """The first raylet the embedded Ray starts is stopped (SIGSTOP, as an overloaded machine or a raylet
    stuck before its first log line would look) before it can register; Ray gives up after its fixed 30 s.
    The call must stop what that attempt started, start Ray again, and give exact results."""
    import spark_ray
    from spark_ray import own_processes, ray_transform
    from spark_ray.local_spark import local_spark

    spark = local_spark("local[2]", app_name="spark-ray-faults-raylet-hangs", **{"spark.ui.enabled": "false"})
    ray_dir = os.environ["RAY_TMPDIR"]
    first_attempt: dict[str, Any] = {}
    done = threading.Event()

    def stop_the_first_raylet() -> None:
        while not done.is_set():
            ours = {pid: own_processes.command_line(pid) for pid in own_processes.descendants()}
            raylets = [pid for pid, args in ours.items() if "/raylet/raylet" in args]
            if raylets:
                os.kill(raylets[0], signal.SIGSTOP)
                first_attempt["raylet"] = raylets[0]
                first_attempt["pids"] = sorted(pid for pid, args in ours.items() if ray_dir in args)
                return
            time.sleep(0.01)

    watcher = threading.Thread(target=stop_the_first_raylet, daemon=True)
    watcher.start()
    df = spark.range(0, 20, numPartitions=2)
    try:
        out = ray_transform(df, lambda row: {"id": row["id"], "twice": 2 * row["id"]}, "id long, twice long")
        found: dict[str, Any] = {"rows": sorted([row["id"], row["twice"]] for row in out.collect())}
    except Exception as error:  # noqa: BLE001 - the error's text is what the test checks
        found = {"rows": f"{type(error).__name__}: {error}"[-4000:]}
    done.set()
    found["first_attempt"] = first_attempt
    found["first_attempt_left"] = wait_gone(first_attempt.get("pids", []), 10.0)
    spark.stop()
    spark_ray.shutdown()
    report(found)


def main() -> None:
    mode, args = sys.argv[1], sys.argv[2:]
    modes: dict[str, Callable[..., None]] = {
        "spark-executor-killed": spark_executor_killed,
        "ray-node-killed": ray_node_killed,
        "embedded-ray-killed": embedded_ray_killed,
        "raylet-hangs-at-start": raylet_hangs_at_start,
    }
    modes[mode](*args)


if __name__ == "__main__":
    main()
