"""The Ray-workload bench cases still run and report (no timings asserted): the actor-pool case on a tiny
table with a short load, and the subprocess cases registered with their baselines and targets."""

from __future__ import annotations

import os
import sys

import pytest

BENCH_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, BENCH_DIR)
    try:
        import cases
        import common
        import run
        import workload_cases

        yield cases, common, run, workload_cases
    finally:
        sys.path.remove(BENCH_DIR)


def test_the_pool_case_runs_and_reports_a_difference(spark, bench, monkeypatch):
    cases, common, run, workload_cases = bench
    monkeypatch.setattr(workload_cases, "MODEL_LOAD_S", 0.1)
    ctx = cases.BenchContext(spark=spark, spin_per_1000_rows=10, ray_cpus=common.DEFAULT_RAY_CPUS)
    df = common.build_table(spark, 3_000)
    try:
        selected = cases.select_cases(["pool_model"], quick=True)
        assert [case.name for case in selected] == ["spark_native", "pool_model"]
        results = run.measure(selected, ctx, df, 3_000, warmup=0, repeat=1, progress=lambda message: None)
    finally:
        df.unpersist()
        from spark_ray import close_pools

        close_pools()
    run.compare(results)
    pool = {r.case: r for r in results}["pool_model"]
    target = cases.CASES_BY_NAME["pool_model"].target
    assert pool.note == "" and pool.diff_s is not None
    # The report carries the case's goal and whether this run met it, whatever the goal's number.
    assert target is not None and target.kind == "diff_s"
    assert pool.target == target.text and pool.met == target.met(pool.diff_s)


def test_the_subprocess_workload_cases_are_registered_with_their_goals(bench):
    cases, _, run, _ = bench
    cpu = cases.CASES_BY_NAME["cpu_local1"]
    assert cpu.subprocess and cpu.baseline == "cpu_local1_native" and cpu.target.kind == "ratio"
    separate = cases.CASES_BY_NAME["cluster_executor"]
    assert separate.subprocess and separate.baseline == "cluster_executor_native" and separate.target.kind == "ratio"
    dataset = cases.CASES_BY_NAME["to_ray_dataset"]
    assert dataset.subprocess and dataset.baseline == "from_arrow_dataset"
    args = run.parse_args(["--only", "cpu_local1,to_ray_dataset", "--rows", "1k"])
    assert [case.name for case in args.cases] == ["cpu_local1", "to_ray_dataset"]
    assert "cpu_local1" not in {case.name for case in run.parse_args(["--quick"]).cases}
