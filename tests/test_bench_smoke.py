"""The benchmark's in-process cases still run and report, on a tiny table (no timings asserted).

`make bench` takes minutes and runs outside CI; this keeps its cases and its
report from rotting between full runs. It reuses the test session's Spark and
Ray, so it costs seconds.
"""

from __future__ import annotations

import json
import os
import sys

import pytest

BENCH_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")
pytestmark = pytest.mark.needs_spark4(reason="the bench's naive case is df.toArrow(), new in pyspark 4.0")
ROWS = 3_000
# Everything in-process that needs no optional package and no Ray of another size.
SMOKE_CASES = [
    "spark_native",
    "executor_arrow",
    "driver_arrow",
    "executor_row",
    "naive",
    "cpu_native",
    "cpu_bound_2cpu",
]


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, BENCH_DIR)  # the bench modules import each other as siblings
    try:
        import cases
        import common
        import report
        import run

        yield cases, common, report, run
    finally:
        sys.path.remove(BENCH_DIR)


def test_bench_cases_run_and_report(spark, bench, tmp_path):
    cases, common, report, run = bench
    ctx = cases.BenchContext(spark=spark, spin_per_1000_rows=10, ray_cpus=common.DEFAULT_RAY_CPUS)
    df = common.build_table(spark, ROWS)
    try:
        groups = cases.run_groups(cases.select_cases(SMOKE_CASES, quick=True))
        # The cases on the default Ray are timed together, round by round; the CPU-bound one on its own.
        assert [[case.name for case in group] for group in groups] == [SMOKE_CASES[:-1], ["cpu_bound_2cpu"]]
        results = []
        for group in groups:
            results += run.measure(group, ctx, df, ROWS, warmup=0, repeat=1, progress=lambda message: None)
    finally:
        df.unpersist()
    run.compare(results)

    assert [r.case for r in results] == SMOKE_CASES
    assert all(r.note in ("", "vs cpu_native") and len(r.runs_s) == 1 and r.median_s > 0 for r in results), [
        (r.case, r.note) for r in results
    ]
    by_case = {r.case: r for r in results}
    assert by_case["spark_native"].ratio is None and by_case["driver_arrow"].ratio is not None
    assert by_case["cpu_bound_2cpu"].baseline == "cpu_native"
    _assert_targets_reported(cases, results)

    table = report.format_table(results)
    assert all(name in table for name in SMOKE_CASES) and "3,000" in table
    _, latest = report.write_json({"results": results}, str(tmp_path), "smoke")
    with open(latest, encoding="utf-8") as saved:
        assert [r["case"] for r in json.load(saved)["results"]] == SMOKE_CASES


# The SQL cases' floors and the registered function (the generic function is left out: it would register
# `ray_transform` again in the shared session, under this test's settings).
SQL_SMOKE_CASES = ["spark_native", "executor_arrow", "udtf_floor", "arrow_udtf_floor", "sql_registered"]


def test_bench_sql_floors_run_and_report_against_their_baselines(spark, bench):
    cases, common, _, run = bench
    ctx = cases.BenchContext(spark=spark, spin_per_1000_rows=10, ray_cpus=common.DEFAULT_RAY_CPUS)
    df = common.build_table(spark, ROWS)
    try:
        (group,) = cases.run_groups(cases.select_cases(SQL_SMOKE_CASES, quick=True))
        results = run.measure(group, ctx, df, ROWS, warmup=0, repeat=1, progress=lambda message: None)
    finally:
        df.unpersist()
    run.compare(results)

    by_case = {r.case: r for r in results}
    assert sorted(by_case) == sorted(SQL_SMOKE_CASES)
    assert all(len(r.runs_s) == 1 and r.median_s > 0 for r in results), [(r.case, r.note) for r in results]
    assert by_case["arrow_udtf_floor"].baseline == "spark_native" and by_case["arrow_udtf_floor"].ratio is not None
    assert by_case["sql_registered"].baseline == "executor_arrow"
    _assert_targets_reported(cases, results)


def _assert_targets_reported(cases, results) -> None:
    """Each result carries its case's target (whatever the number) and whether the measurement met it."""
    targets = {r.case: cases.CASES_BY_NAME[r.case].target for r in results}
    assert any(target is not None for target in targets.values())
    for r in results:
        target = targets[r.case]
        if target is None:
            assert r.target is None and r.met is None, r
            continue
        assert r.target == target.text, r
        assert r.met == target.met(r.ratio if target.kind == "ratio" else r.diff_s), r
