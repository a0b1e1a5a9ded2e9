"""spark-ray benchmark: ray_transform side by side with Spark-native and hand-written Ray.

    .venv/bin/python bench/run.py                    # 1M and 10M rows, medians of 3 after a warm-up
    .venv/bin/python bench/run.py --quick            # 20k rows, 1 run: a smoke test
    .venv/bin/python bench/run.py --only executor_arrow,tiny_warm --rows 100k

Every case runs on the same cached DataFrame in one local[2] SparkSession and
is compared with Spark's own mapInArrow on that DataFrame, because a ratio to
the native floor says more than seconds that depend on the machine. The cold
start and the driver's memory need fresh processes and run in children after
the in-process cases. Targets are reported, never asserted: a slow run still
writes its table, JSON and chart.
"""

from __future__ import annotations

import argparse
import datetime
import shlex
import signal
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from cases import (
    CASES_BY_NAME,
    BenchContext,
    Case,
    Skip,
    Target,
    calibrate_spin,
    run_groups,
    select_cases,
)
from common import (
    BENCH_DIR,
    DEFAULT_DRIVER_MEMORY,
    DEFAULT_RAY_CPUS,
    MASTER,
    TINY_ROWS,
    ChildError,
    bench_session,
    build_table,
    parse_rows,
    settle,
    timed,
    tiny_table,
)
from report import Result, format_table, machine_info, write_chart, write_json

DEFAULT_ROWS = "1000000,10000000"
QUICK_ROWS = "20000"
# The 6-row cases take under a second: always take the median of several runs.
TINY_MIN_REPEAT, TINY_MIN_REPEAT_QUICK = 5, 3


class Interrupt:
    """Makes Ctrl-C stop the whole run, even when it lands inside a Spark call.

    PySpark's own SIGINT handler cancels the running jobs and raises
    KeyboardInterrupt, but py4j may turn that into an ordinary error that
    would be recorded as one failed case while the run went on. The flag set
    here lets ``measure`` tell the two apart.
    """

    requested = False

    @classmethod
    def install(cls) -> None:
        """Wrap the current SIGINT handler (call after the SparkSession exists, so it wraps PySpark's)."""
        previous = signal.getsignal(signal.SIGINT)

        def handler(signum: int, frame: Any) -> None:
            cls.requested = True
            if callable(previous) and previous is not signal.default_int_handler:
                try:
                    previous(signum, frame)  # PySpark's: cancels the running Spark jobs
                except KeyboardInterrupt:
                    raise
                except Exception:  # noqa: BLE001, S110 - e.g. PySpark's handler once its context is stopped
                    pass
            raise KeyboardInterrupt

        signal.signal(signal.SIGINT, handler)

    @classmethod
    def check(cls) -> None:
        if cls.requested:
            raise KeyboardInterrupt


class Progress:
    """Timestamped progress lines, so that a run of many minutes is never silent."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def __call__(self, message: str) -> None:
        print(f"[{self.elapsed():7.1f}s] {message}", flush=True)


def tiny_repeat(args: argparse.Namespace) -> int:
    return max(args.repeat, TINY_MIN_REPEAT_QUICK if args.quick else TINY_MIN_REPEAT)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark ray_transform against Spark-native mapInArrow, hand-written Ray and Fugue.",
        epilog="Cases: " + ", ".join(CASES_BY_NAME),
    )
    parser.add_argument(
        "--rows",
        default=None,
        help=f"comma list of row counts, e.g. 1000000,10M (default {DEFAULT_ROWS}; --quick: {QUICK_ROWS})",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="measured runs per case and size, after the warm-up; the median is reported (default 3; --quick: 1)",
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before the measured ones (default 1)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 20k rows, 1 repetition, no subprocess cases (tiny_cold, driver_rss) unless named in --only",
    )
    parser.add_argument("--out", default=None, help="where the JSON and PNG go (default bench/results)")
    parser.add_argument("--only", default=None, help="comma list of cases to run (their baselines are added)")
    parser.add_argument(
        "--driver-memory",
        default=DEFAULT_DRIVER_MEMORY,
        help=f"spark.driver.memory of every session (default {DEFAULT_DRIVER_MEMORY})",
    )
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    args = parser.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup cannot be negative")
    try:
        args.sizes = parse_rows(args.rows or (QUICK_ROWS if args.quick else DEFAULT_ROWS))
        args.only_list = [name.strip() for name in args.only.split(",") if name.strip()] if args.only else None
        args.cases = select_cases(args.only_list, args.quick)
    except ValueError as error:
        parser.error(str(error))
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    args.out = args.out or f"{BENCH_DIR}/results"
    return args


def measure(
    cases: list[Case], ctx: BenchContext, df: Any, rows: int, warmup: int, repeat: int, progress: Progress
) -> list[Result]:
    """Time cases at one size: ``warmup`` untimed-for-the-median runs, then ``repeat`` timed ones.

    Several cases given together run interleaved, one call of each per round,
    so that a busy machine's drift over minutes touches them all alike; they
    must be able to share one Ray size (``ray_cpus`` equal or None). Warm-ups
    absorb what only the first call pays (Python and Ray worker start-up,
    Spark's code generation), which tiny_cold measures on its own. Every call
    starts from collected heaps (``settle``), whatever the case before it left. A missing
    package or a failing case becomes a note in the report, not a crash.
    """
    results = {
        case.name: Result(
            case=case.name,
            rows=rows,
            baseline=case.baseline,
            what=case.what,
            target=case.target.text if case.target else None,
        )
        for case in cases
    }
    by_name = {case.name: case for case in cases}
    thunks = {}
    for case in cases:
        if case.build is None:
            raise ValueError(f"case {case.name} runs in a subprocess, not here")
        try:
            thunks[case.name] = case.build(ctx, df)
        except Skip as reason:
            results[case.name].note = str(reason)
            progress(f"{case.name} rows={rows:,}: skipped ({reason})")
    for phase, count in (("warm-up", warmup), ("run", repeat)):
        for index in range(count):
            for name, thunk in list(thunks.items()):
                Interrupt.check()
                label = f"{name} rows={rows:,} {phase} {index + 1}/{count}"
                try:
                    ray_cpus = by_name[name].ray_cpus
                    if ray_cpus is not None:
                        ctx.use_ray(ray_cpus)
                    settle(ctx.spark)
                    seconds = timed(thunk)
                except Exception as error:  # noqa: BLE001 - one broken case must not lose the others' numbers
                    if Interrupt.requested:
                        raise KeyboardInterrupt from error
                    traceback.print_exc()
                    message = str(error).splitlines()[0][:120] if str(error) else ""
                    results[name].note = f"error: {type(error).__name__}: {message}"
                    progress(f"{label}: FAILED ({results[name].note})")
                    del thunks[name]
                    continue
                (results[name].warmups_s if phase == "warm-up" else results[name].runs_s).append(seconds)
                progress(f"{label}: {seconds:.3f} s")
    for name in thunks:
        runs = results[name].runs_s
        results[name].median_s = statistics.median(runs) if runs else None
    return [results[case.name] for case in cases]


def run_in_process(args: argparse.Namespace, progress: Progress, facts: dict[str, Any], results: list[Result]) -> None:
    """The cases that share the benchmark's own SparkSession and embedded Ray.

    Results are appended to ``results`` as they come, so an interrupted run keeps them.
    """
    cases = [case for case in args.cases if not case.subprocess]
    if not cases:
        return
    spin = 0
    if any(case.name.startswith("cpu_") for case in cases):
        spin, check_ms = calibrate_spin()  # before Spark starts, on a quiet interpreter
        facts["calibration"] = {"spin_iterations_per_1000_rows": spin, "measured_ms_per_1000_rows": round(check_ms, 3)}
        progress(f"calibrated the CPU-bound function: {spin:,} loop iterations per 1,000 rows = {check_ms:.2f} ms")
    progress(f"starting Spark ({MASTER}, driver memory {args.driver_memory})")
    spark = bench_session(args.driver_memory)
    Interrupt.install()
    facts["spark_version"] = spark.version
    ctx = BenchContext(spark=spark, spin_per_1000_rows=spin)
    try:
        if any(case.ray_cpus is not None for case in cases):
            # Up before the first case, so that Spark-native runs beside an idle Ray like the others.
            progress(f"starting the embedded Ray ({DEFAULT_RAY_CPUS} CPUs)")
            ctx.use_ray(DEFAULT_RAY_CPUS)
        groups = run_groups(cases)
        for rows in args.sizes if groups else []:
            progress(f"building and caching the table: {rows:,} rows")
            df = build_table(spark, rows)
            try:
                for group in groups:
                    results.extend(measure(group, ctx, df, rows, args.warmup, args.repeat, progress))
            finally:
                _release(df)
        tiny_cases = [case for case in cases if case.tiny]
        if tiny_cases:
            tiny = tiny_table(spark)
            results.extend(measure(tiny_cases, ctx, tiny, TINY_ROWS, max(args.warmup, 1), tiny_repeat(args), progress))
    finally:
        progress("stopping Spark and Ray")
        # Spark first: its Python workers hold Ray connections that should close before Ray does.
        spark.stop()
        from spark_ray import cluster

        cluster.shutdown()


def _release(df: Any) -> None:
    """Drop a size's cached table; never let that hide the error or interrupt that got us here."""
    try:
        df.unpersist(blocking=True)
    except Exception:  # noqa: BLE001, S110 - the session is stopped right after anyway
        pass


def run_subprocess_cases(
    args: argparse.Namespace, progress: Progress, results: list[Result], facts: dict[str, Any] | None = None
) -> None:
    """tiny_cold, driver_rss and the workload children: each measurement in fresh child processes,
    appended to ``results``."""
    names = {case.name for case in args.cases if case.subprocess}
    if "cpu_local1" in names:
        results.extend(_cpu_local1_results(args, progress, facts if facts is not None else {}))
    if "cluster_executor" in names:
        results.extend(_cluster_results(args, progress))
    if "to_ray_dataset" in names:
        results.extend(_dataset_results(args, progress))
    if "tiny_cold" in names:
        from cold_start import measure_cold_start

        results.extend(_cold_results(lambda: measure_cold_start(args.driver_memory, progress), progress))
    if "driver_rss" in names:
        from driver_memory import measure_driver_rss

        results.extend(_rss_results(lambda: measure_driver_rss(args.sizes, args.driver_memory, progress), progress))


def _cpu_local1_results(args: argparse.Namespace, progress: Progress, facts: dict[str, Any]) -> list[Result]:
    """cpu_local1: native and Ray medians per size, from one local[1] child per size."""
    from workload_cases import measure_cpu_local1

    if "calibration" not in facts:
        spin, check_ms = calibrate_spin()
        facts["calibration"] = {"spin_iterations_per_1000_rows": spin, "measured_ms_per_1000_rows": round(check_ms, 3)}
    spin = facts["calibration"]["spin_iterations_per_1000_rows"]
    return _pair_results(
        "cpu_local1",
        "Spark local[1]: the CPU-bound fn in mapInArrow (subprocess)",
        lambda: measure_cpu_local1(args.sizes, spin, args.repeat, args.warmup, args.driver_memory, progress),
        progress,
    )


def _cluster_results(args: argparse.Namespace, progress: Progress) -> list[Result]:
    """cluster_executor: native and Ray medians per size, from one local-cluster child per size."""
    from workload_cases import measure_separate_executors

    return _pair_results(
        "cluster_executor",
        "Spark local-cluster[2,1,1024]: Spark-native mapInArrow identity (subprocess)",
        lambda: measure_separate_executors(args.sizes, args.repeat, args.warmup, args.driver_memory, progress),
        progress,
    )


def _pair_results(
    name: str, native_what: str, measure: Callable[[], list[dict[str, Any]]], progress: Progress
) -> list[Result]:
    """Results of a child that ran Spark-native and ray_transform interleaved: ``<name>_native`` and ``name``."""
    case = CASES_BY_NAME[name]
    try:
        measured = measure()
    except (ChildError, OSError, KeyError, ValueError) as error:
        progress(f"{name}: FAILED ({error})")
        return [Result(name, None, what=case.what, note=f"error: {str(error).splitlines()[0][:120]}")]
    results = []
    for m in measured:
        results.append(
            Result(
                f"{name}_native",
                m["rows"],
                median_s=m["native_s"],
                runs_s=m["native_runs_s"],
                warmups_s=m["native_warmups_s"],
                what=native_what,
            )
        )
        results.append(
            Result(
                name,
                m["rows"],
                median_s=m["ray_s"],
                runs_s=m["ray_runs_s"],
                warmups_s=m["ray_warmups_s"],
                baseline=f"{name}_native",
                target=case.target.text if case.target else None,
                what=case.what,
                note=_cpu_note(m),
                extra={"native_cpu_s": m.get("native_cpu_s"), "ray_cpu_s": m.get("ray_cpu_s")},
            )
        )
    return results


def _cpu_note(measured: dict[str, Any]) -> str:
    """CPU seconds of the process tree per run: what the work needed, beside the wall time it took."""
    native, ray = measured.get("native_cpu_s"), measured.get("ray_cpu_s")
    if not native or not ray:
        return ""
    return f"CPU s per run: native {statistics.median(native):.1f}, ray {statistics.median(ray):.1f}"


def _dataset_results(args: argparse.Namespace, progress: Progress) -> list[Result]:
    """to_ray_dataset: seconds and driver peak memory of both ways to a Ray Dataset, per size."""
    from workload_cases import measure_datasets

    case = CASES_BY_NAME["to_ray_dataset"]
    try:
        measured = measure_datasets(args.sizes, args.warmup, args.driver_memory, progress)
    except (ChildError, OSError, KeyError, ValueError) as error:
        progress(f"to_ray_dataset: FAILED ({error})")
        return [Result("to_ray_dataset", None, what=case.what, note=f"error: {str(error).splitlines()[0][:120]}")]
    results = []
    for m in measured:
        memory = (
            f"driver peak RSS {m['peak_rss_mb']:.0f} MB (before {m['before_rss_mb']:.0f} MB), "
            f"private {m['peak_private_mb']:.0f} MB (before {m['before_private_mb']:.0f} MB)"
        )
        spark_ray = m["method"] == "spark_ray"
        results.append(
            Result(
                "to_ray_dataset" if spark_ray else "from_arrow_dataset",
                m["rows"],
                median_s=m["seconds"],
                runs_s=[m["seconds"]],
                warmups_s=m.get("warmups_s", []),
                baseline="from_arrow_dataset" if spark_ray else None,
                what=case.what if spark_ray else "ray.data.from_arrow(df.toArrow()).materialize() (subprocess)",
                note=memory,
                extra=m,
            )
        )
    return results


def _cold_results(measure_fn: Callable[[], dict[str, Any]], progress: Progress) -> list[Result]:
    case = CASES_BY_NAME["tiny_cold"]
    target = case.target.text if case.target else None
    try:
        cold = measure_fn()
    except (ChildError, OSError, KeyError, ValueError) as error:
        progress(f"tiny_cold: FAILED ({error})")
        return [
            Result(
                "tiny_cold",
                TINY_ROWS,
                baseline="cold_native",
                target=target,
                what=case.what,
                note=f"error: {str(error).splitlines()[0][:120]}",
            )
        ]
    native, ray = cold["native"], cold["ray"]
    return [
        Result(
            "cold_native",
            TINY_ROWS,
            median_s=native["first_job_s"],
            runs_s=[native["first_job_s"]],
            what="first job in a fresh process: Spark mapInArrow on 6 rows + collect()",
            note=f"baseline of tiny_cold; session start {native['session_s']:.1f} s",
            extra=native,
        ),
        Result(
            "tiny_cold",
            TINY_ROWS,
            median_s=ray["first_job_s"],
            runs_s=[ray["first_job_s"]],
            baseline="cold_native",
            target=target,
            what=case.what,
            note=f"incl. Ray start; session start {ray['session_s']:.1f} s",
            extra=ray,
        ),
    ]


def _rss_results(measure_fn: Callable[[], list[dict[str, Any]]], progress: Progress) -> list[Result]:
    case = CASES_BY_NAME["driver_rss"]
    try:
        measured = measure_fn()
    except (ChildError, OSError, KeyError, ValueError) as error:
        progress(f"driver_rss: FAILED ({error})")
        return [Result("driver_rss", None, what=case.what, note=f"error: {str(error).splitlines()[0][:120]}")]
    results = [
        Result(
            "driver_rss",
            m["rows"],
            median_s=m["seconds"],
            runs_s=[m["seconds"]],
            what=case.what,
            note=_rss_note(m),
            extra=m,
        )
        for m in measured
    ]
    if len(measured) >= 2:
        first, last = measured[0], measured[-1]
        growth = last["peak_rss_mb"] - first["peak_rss_mb"]
        target = case.target or Target("growth_mb", 200.0)
        results.append(
            Result(
                "driver_rss_growth",
                None,
                rows_label=f"{first['rows']:,} -> {last['rows']:,}",
                growth_mb=growth,
                target=target.text,
                met=target.met(growth),
                what="peak driver RSS, largest size minus smallest",
                note=f"{first['peak_rss_mb']:.0f} MB -> {last['peak_rss_mb']:.0f} MB",
            )
        )
    return results


def _rss_note(measured: dict[str, Any]) -> str:
    note = f"peak driver RSS {measured['peak_rss_mb']:.0f} MB (before the call {measured['before_rss_mb']:.0f} MB)"
    if measured.get("sampled_peak_private_mb") is not None:
        note += (
            f"; private {measured['sampled_peak_private_mb']:.0f} MB (before {measured['before_private_mb']:.0f} MB)"
        )
    return note


def compare(results: list[Result]) -> None:
    """Fill in ratio or difference to the baseline at the same size, and whether the target is met."""
    medians = {(r.case, r.rows): r.median_s for r in results if r.median_s is not None}
    for result in results:
        if result.median_s is None or result.baseline is None:
            continue
        base = medians.get((result.baseline, result.rows))
        if base is None:
            result.note = (result.note + "; " if result.note else "") + f"no {result.baseline} time to compare with"
            continue
        case = CASES_BY_NAME.get(result.case)
        target: Target | None = case.target if case else None
        if target is not None and target.kind == "diff_s":
            result.diff_s = result.median_s - base
            result.met = target.met(result.diff_s)
        else:
            result.ratio = result.median_s / base if base > 0 else None
            if target is not None and result.ratio is not None:
                result.met = target.met(result.ratio)
        if result.baseline not in ("spark_native", "tiny_native", "cold_native"):
            result.note = (result.note + "; " if result.note else "") + f"vs {result.baseline}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for case in CASES_BY_NAME.values():
            print(f"{case.name:16} {case.what}")
        return 0
    progress = Progress()
    started = datetime.datetime.now()
    names = ", ".join(case.name for case in args.cases)
    progress(
        f"cases: {names}; rows: {', '.join(f'{n:,}' for n in args.sizes)}; "
        f"{args.warmup} warm-up + {args.repeat} measured run(s) each"
    )
    facts: dict[str, Any] = {}
    results: list[Result] = []
    interrupted = failed = False
    Interrupt.install()
    try:
        run_in_process(args, progress, facts, results)
        Interrupt.check()
        run_subprocess_cases(args, progress, results, facts)
    except KeyboardInterrupt:
        interrupted = True
        progress("interrupted: reporting what was measured so far")
    except Exception:  # noqa: BLE001 - a broken set-up still reports the cases that ran
        traceback.print_exc()
        failed = True
        progress("the run failed: reporting what was measured so far")
    compare(results)

    print()
    print(format_table(results))
    print()
    machine = machine_info()
    payload = {
        "started": started.isoformat(timespec="seconds"),
        "seconds": round(progress.elapsed(), 1),
        "interrupted": interrupted,
        "failed": failed,
        "command": " ".join(shlex.quote(part) for part in [sys.executable, *sys.argv]),
        "settings": {
            "master": MASTER,
            "ray_cpus": DEFAULT_RAY_CPUS,
            "rows": args.sizes,
            "repeat": args.repeat,
            "warmup": args.warmup,
            "tiny_repeat": tiny_repeat(args),
            "quick": args.quick,
            "only": args.only_list,
            "driver_memory": args.driver_memory,
            "sink": "df.write.format('noop') (collect() for the 6-row cases)",
        },
        "machine": machine,
        **facts,
        "results": results,
    }
    stamp = started.strftime("%Y%m%d-%H%M%S")
    path, latest = write_json(payload, args.out, stamp)
    print(f"results: {path}\n         {latest}")
    title = (
        f"spark-ray bench: median of {args.repeat} run(s) after {args.warmup} warm-up, {stamp}\n"
        f"{MASTER}, Ray {DEFAULT_RAY_CPUS} CPUs; {machine['cpu_count']} cores, {machine['memory_gb']} GB; "
        f"pyspark {machine['pyspark']}, ray {machine['ray']}, pyarrow {machine['pyarrow']}"
    )
    chart = write_chart(results, f"{args.out}/latest.png", title)
    if chart:
        print(f"chart:   {chart}")
    return 130 if interrupted else 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
