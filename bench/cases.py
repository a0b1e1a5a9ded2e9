"""The in-process benchmark cases: what each one runs, and what it is compared with.

Every case is a function of the shared context and the cached input table
that returns a thunk; the runner times the thunk. All thunks end in the same
noop write (or, for the 6-row cases, the same collect()), so the cases differ
only in how the Python work is done. The user functions are built by small
factories (closures) so that cloudpickle ships them by value to Spark's
Python workers and to Ray, without those processes importing ``bench``.

No ``from __future__ import annotations`` here: Fugue reads the annotations
of the function it is given at run time and needs them as real types.
"""

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession

from common import DEFAULT_RAY_CPUS, noop_write, timed
from spark_ray import cluster, ray_transform
from spark_ray.conf import RayTransformConf

Thunk = Callable[[], Any]


class Skip(Exception):
    """A case that cannot run here (e.g. an optional package is missing); the reason is reported."""


@dataclass(frozen=True)
class Target:
    """A goal from the issue. Reported, never asserted.

    kind "ratio": median / baseline median <= limit; "diff_s": median -
    baseline median <= limit seconds; "growth_mb": memory growth < limit MB.
    """

    kind: str
    limit: float

    @property
    def text(self) -> str:
        if self.kind == "ratio":
            return f"<= {self.limit:g}x"
        if self.kind == "diff_s":
            return f"<= +{self.limit:g} s"
        return f"< {self.limit:g} MB"

    def met(self, value: float) -> bool:
        return value < self.limit if self.kind == "growth_mb" else value <= self.limit


@dataclass
class BenchContext:
    """What the cases share within one run: the session, the calibration, the Ray size."""

    spark: SparkSession
    spin_per_1000_rows: int
    ray_cpus: int | None = None
    _naive_task: Any = None

    def use_ray(self, cpus: int) -> None:
        """Make the embedded Ray have ``cpus`` CPUs, restarting it if it has another size.

        ray_transform then reuses this connection (it asks for the same
        address, namespace and runtime env), so the cases pass nothing else.
        """
        if self.ray_cpus == cpus:
            return
        cluster.shutdown()
        self.ray_cpus = None
        cluster.ensure_driver_ray(RayTransformConf(local_ray_cpus=cpus))
        self.ray_cpus = cpus
        _quiet_ray_data()

    def naive_task(self) -> Any:
        """The hand-written Ray identity task, made once."""
        import ray

        if self._naive_task is None:
            self._naive_task = ray.remote(_identity_table())  # Ray re-exports it after a restart
        return self._naive_task


def _quiet_ray_data() -> None:
    """Ray Data (used by Fugue) logs a progress report per dataset: keep the terminal readable."""
    try:
        import ray.data

        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        if hasattr(context, "enable_operator_progress_bars"):
            context.enable_operator_progress_bars = False
    except ImportError:
        pass
    logging.getLogger("ray.data").setLevel(logging.WARNING)


# ---------------------------------------------------------------- user functions
# Factories, so that each function is a closure pickled by value (see the module docstring).


def _identity_batches() -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    def identity(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        yield from batches

    return identity


def _identity_batch() -> Callable[[pa.RecordBatch], pa.RecordBatch]:
    def identity(batch: pa.RecordBatch) -> pa.RecordBatch:
        return batch

    return identity


def _identity_row() -> Callable[[dict], dict]:
    return lambda row: row


def _identity_table() -> Callable[[pa.Table], pa.Table]:
    def identity(table: pa.Table) -> pa.Table:
        return table

    return identity


def _cpu_batch(spin_per_1000_rows: int) -> Callable[[pa.RecordBatch], pa.RecordBatch]:
    """kind="arrow": about 1 ms of Python per 1,000 rows, then the batch unchanged."""

    def cpu_bound(batch: pa.RecordBatch) -> pa.RecordBatch:
        acc = 0
        for i in range(spin_per_1000_rows * batch.num_rows // 1000):
            acc = (acc * 31 + i) & 0xFFFFF
        return batch

    return cpu_bound


def _cpu_batches(spin_per_1000_rows: int) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The same work as _cpu_batch, as a Spark mapInArrow function."""
    per_batch = _cpu_batch(spin_per_1000_rows)

    def cpu_bound(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            yield per_batch(batch)

    return cpu_bound


def calibrate_spin(target_s_per_row: float = 1e-6, rows: int = 20_000) -> tuple[int, float]:
    """Loop iterations per 1,000 rows that make the CPU-bound function take ``target_s_per_row``.

    Calibrated once, in the driver, on the very function the cases run (the
    workers run the same interpreter on the same cores): measure, rescale,
    three times. Returns (iterations per 1,000 rows, measured ms per 1,000 rows).
    """
    batch = pa.RecordBatch.from_pydict({"id": pa.array(range(rows), pa.int64())})
    per_1000 = 10_000
    for _ in range(3):
        seconds = _best_of(_cpu_batch(per_1000), batch)
        per_1000 = max(1, round(per_1000 * target_s_per_row * rows / seconds))
    return per_1000, _best_of(_cpu_batch(per_1000), batch) * 1000 * 1000 / rows


def _best_of(fn: Callable[[pa.RecordBatch], Any], batch: pa.RecordBatch, times: int = 3) -> float:
    fn(batch)  # warm
    return min(timed(lambda: fn(batch)) for _ in range(times))


# ---------------------------------------------------------------- the cases


def spark_native(ctx: BenchContext, df: DataFrame) -> Thunk:
    """Spark's own mapInArrow with an identity function: the floor."""
    fn = _identity_batches()
    return lambda: noop_write(df.mapInArrow(fn, df.schema))


def executor_arrow(ctx: BenchContext, df: DataFrame) -> Thunk:
    fn = _identity_batch()
    return lambda: noop_write(ray_transform(df, fn, df.schema, run_in="executor", kind="arrow"))


def driver_arrow(ctx: BenchContext, df: DataFrame) -> Thunk:
    """The call runs the Ray work and returns a checkpointed DataFrame; the noop write reads it."""
    fn = _identity_batch()
    return lambda: noop_write(ray_transform(df, fn, df.schema, run_in="driver", kind="arrow"))


def executor_row(ctx: BenchContext, df: DataFrame) -> Thunk:
    fn = _identity_row()
    return lambda: noop_write(ray_transform(df, fn, df.schema, run_in="executor", kind="row"))


def naive(ctx: BenchContext, df: DataFrame) -> Thunk:
    """What a user writes by hand: the whole table through the driver, Ray tasks, back to Spark."""
    import ray

    task = ctx.naive_task()
    spark = ctx.spark
    schema = df.schema

    def run() -> None:
        table = df.toArrow()
        step = max(1, math.ceil(table.num_rows / 4))
        slices = [table.slice(start, step) for start in range(0, table.num_rows, step)]
        result = pa.concat_tables(ray.get([task.remote(piece) for piece in slices]))
        noop_write(spark.createDataFrame(result, schema))  # pyspark 4 takes a pyarrow Table

    return run


def fugue(ctx: BenchContext, df: DataFrame) -> Thunk:
    """Fugue's transform on its Ray engine, given the Spark DataFrame, back into Spark.

    Fugue returns a Ray Dataset; its Arrow blocks come back to the driver and
    become a Spark DataFrame the same way as in the naive case.
    """
    try:
        import fugue.api as fa
    except ImportError:
        raise Skip("fugue: not installed") from None
    import ray

    spark = ctx.spark
    schema = df.schema

    def identity(table: pa.Table) -> pa.Table:  # Fugue picks the Arrow interface from these annotations
        return table

    def run() -> None:
        dataset = fa.transform(df, identity, schema="*", engine="ray", as_fugue=False)
        table = pa.concat_tables(ray.get(dataset.to_arrow_refs()))
        noop_write(spark.createDataFrame(table, schema))

    return run


def cpu_native(ctx: BenchContext, df: DataFrame) -> Thunk:
    """The CPU-bound function in Spark's mapInArrow: the baseline of the cpu_bound cases."""
    fn = _cpu_batches(ctx.spin_per_1000_rows)
    return lambda: noop_write(df.mapInArrow(fn, df.schema))


def cpu_bound(ctx: BenchContext, df: DataFrame) -> Thunk:
    """The CPU-bound function through ray_transform (executor, kind="arrow") on the current Ray."""
    fn = _cpu_batch(ctx.spin_per_1000_rows)
    return lambda: noop_write(ray_transform(df, fn, df.schema, kind="arrow"))


def tiny_native(ctx: BenchContext, df: DataFrame) -> Thunk:
    """Six rows through Spark's mapInArrow and collect(): Spark's own fixed cost."""
    fn = _identity_batches()
    return lambda: df.mapInArrow(fn, df.schema).collect()


def tiny_warm(ctx: BenchContext, df: DataFrame) -> Thunk:
    """Six rows through ray_transform (per-row, executor) and collect(), warm."""
    fn = _identity_row()
    return lambda: ray_transform(df, fn, df.schema).collect()


@dataclass(frozen=True)
class Case:
    """One row of the report.

    Attributes:
        name: what --only and the report call it.
        what: one line for the README and the JSON.
        build: returns the thunk to time; None for the subprocess cases.
        baseline: the case the ratio or difference is taken against.
        target: the issue's goal, if it set one.
        ray_cpus: the size the embedded Ray must have; None if the case does not use Ray.
        tiny: runs once on the 6-row table instead of at every size.
        subprocess: measured in child processes (cold start, driver memory).
    """

    name: str
    what: str
    build: Callable[[BenchContext, DataFrame], Thunk] | None = None
    baseline: str | None = "spark_native"
    target: Target | None = None
    ray_cpus: int | None = DEFAULT_RAY_CPUS
    tiny: bool = False
    subprocess: bool = False


def _sql_cases() -> list[Case]:
    from sql_cases import SQL_CASES  # it builds on this module's Case, so it is read after CASES exists

    return SQL_CASES


CASES: list[Case] = [
    Case("spark_native", "Spark mapInArrow identity (the floor)", spark_native, baseline=None, ray_cpus=None),
    Case(
        "executor_arrow",
        "ray_transform identity, kind=arrow, run_in=executor",
        executor_arrow,
        target=Target("ratio", 1.15),
    ),
    Case(
        "driver_arrow",
        "ray_transform identity, kind=arrow, run_in=driver (+ noop write of the result)",
        driver_arrow,
        target=Target("ratio", 1.5),
    ),
    Case(
        "executor_row",
        "ray_transform identity per row (lambda row: row), kind=row, run_in=executor",
        executor_row,
        target=Target("ratio", 2.5),
    ),
    Case("naive", "hand-written: df.toArrow() -> 4 Ray tasks -> concat -> createDataFrame", naive),
    Case("fugue", "fugue.api.transform(df, fn, engine='ray') -> Arrow -> createDataFrame", fugue),
    Case("cpu_native", "~1 us/row of pure-Python work in Spark mapInArrow", cpu_native, ray_cpus=None),
    Case(
        "cpu_bound_1cpu",
        "the same work via ray_transform (executor, arrow), embedded Ray with 1 CPU",
        cpu_bound,
        baseline="cpu_native",
        ray_cpus=1,
    ),
    Case(
        "cpu_bound_2cpu",
        "the same work via ray_transform (executor, arrow), embedded Ray with 2 CPUs",
        cpu_bound,
        baseline="cpu_native",
        ray_cpus=2,
    ),
    Case(
        "tiny_native",
        "6 rows: Spark mapInArrow + collect(), warm",
        tiny_native,
        baseline=None,
        ray_cpus=None,
        tiny=True,
    ),
    Case(
        "tiny_warm",
        "6 rows: ray_transform (kind=row) + collect(), warm",
        tiny_warm,
        baseline="tiny_native",
        target=Target("diff_s", 0.15),
        tiny=True,
    ),
    Case(
        "tiny_cold",
        "first job in a fresh process: ray_transform on 6 rows incl. Ray start, vs Spark's first job",
        baseline="cold_native",
        target=Target("diff_s", 3.0),
        tiny=True,
        subprocess=True,
    ),
    Case(
        "driver_rss",
        "peak RSS of the driver Python process running driver_arrow, per size (subprocess)",
        baseline=None,
        target=Target("growth_mb", 200.0),
        subprocess=True,
    ),
]
CASES += _sql_cases()


def _workload_cases() -> list[Case]:
    from workload_cases import WORKLOAD_CASES  # built on this module's Case, like the SQL cases

    return WORKLOAD_CASES


CASES += _workload_cases()


def _model_cases() -> list[Case]:
    from model_cases import MODEL_CASES  # built on this module's Case, like the SQL cases

    return MODEL_CASES


CASES += _model_cases()
CASES_BY_NAME = {case.name: case for case in CASES}


def select_cases(only: list[str] | None, quick: bool) -> list[Case]:
    """The cases to run, in report order, with the baselines they need.

    Without --only, everything runs, except that --quick leaves out the
    subprocess cases (each starts its own Spark and Ray). Naming a case in
    --only always runs it.
    """
    if only is None:
        wanted = {case.name for case in CASES if not (quick and case.subprocess)}
    else:
        unknown = [name for name in only if name not in CASES_BY_NAME]
        if unknown:
            raise ValueError(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(CASES_BY_NAME)}")
        wanted = set(only)
    for name in list(wanted):
        baseline = CASES_BY_NAME[name].baseline
        if baseline in CASES_BY_NAME:
            wanted.add(baseline)
    return [case for case in CASES if case.name in wanted]


def run_groups(cases: list[Case]) -> list[list[Case]]:
    """Per-size groups, each timed interleaved: the cases on the default Ray, then 1 CPU, then 2 CPUs again.

    Within a group every round runs each case once, so a machine that slows
    down for a few minutes (a shared VM does) slows every case of the group
    alike and leaves their ratios alone; timing one case after the other put
    that drift into the ratios. cpu_bound_1cpu and cpu_bound_2cpu each run
    right after a fresh Ray start of their size (as the issue asks), and the
    next size begins on the default Ray without another restart.
    """
    sized = [case for case in cases if not case.tiny and not case.subprocess]
    cpu_cases = sorted(
        (case for case in sized if case.name.startswith("cpu_bound_")), key=lambda case: case.ray_cpus or 0
    )
    others = [case for case in sized if case not in cpu_cases]
    return ([others] if others else []) + [[case] for case in cpu_cases]
