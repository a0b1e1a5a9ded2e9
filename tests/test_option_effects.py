"""What options and input types do once the data moves: early close cancels Ray work, map columns
reach the code as dicts or Arrow maps, data servers listen where data_server_host says, driver-mode
jobs carry job_group / job_description, batch_rows bounds a Ray task."""

from __future__ import annotations

import re
import socket
import time
import uuid

import pandas as pd
import pyarrow as pa
import pytest
from pyspark.sql import Row

from spark_ray import UserCodeError, ray_transform
from spark_ray.runners import coalesce, in_order


@pytest.fixture
def one_row_arrow_batches(arrow_batch_rows):
    """Spark hands Python one row per Arrow batch, so coalesce sees many small batches."""
    arrow_batch_rows(1)


# --- in_order: work nobody will collect is cancelled -------------------------------------------


def _shard_task():
    """A Ray task per shard: shard 0 answers at once (or fails, if asked to), the others take a minute.

    Defined inside a function so that Ray pickles it by value (the test module is not importable by Ray's workers).
    """
    import ray

    @ray.remote(max_retries=0)
    def shard_task(index: int, fail_first: bool) -> pa.Table:
        import time

        import pyarrow as pa

        if index == 0 and fail_first:
            raise ValueError("shard 0 broke")
        if index > 0:
            # Python-level work: ray.cancel(force=False) interrupts it between two short sleeps
            # (one time.sleep(60) would be interrupted only after the minute).
            for _ in range(600):
                time.sleep(0.1)
        return pa.table({"index": [index]})

    return shard_task


class _Recorder:
    """submit / abandon for in_order over real Ray tasks, remembering what it was given."""

    def __init__(self, fail_first: bool = False) -> None:
        self.task = _shard_task()
        self.fail_first = fail_first
        self.submitted: list = []
        self.abandoned: list = []

    def submit(self, index: int):
        self.submitted.append(self.task.remote(index, self.fail_first))
        return self.submitted[-1]

    def abandon(self, ref) -> None:
        import ray

        self.abandoned.append(ref)
        ray.cancel(ref, force=False)


def test_in_order_abandons_in_flight_ray_tasks_when_closed_early(spark):
    import ray

    recorder = _Recorder()
    results = in_order(iter(range(10)), recorder.submit, ray.get, window=3, abandon=recorder.abandon)
    first = next(results)
    results.close()  # what a limit() does to the partition's generator

    assert first.column("index").to_pylist() == [0]
    assert len(recorder.submitted) == 3  # the window, and no more shards read
    assert recorder.abandoned == recorder.submitted[1:]  # exactly what was still in flight


def test_in_order_abandons_the_rest_when_a_result_fails(spark):
    import ray

    recorder = _Recorder(fail_first=True)
    with pytest.raises(ray.exceptions.RayTaskError, match="shard 0 broke"):
        list(in_order(iter(range(10)), recorder.submit, ray.get, window=3, abandon=recorder.abandon))
    assert len(recorder.submitted) == 3
    assert recorder.abandoned == recorder.submitted[1:]


def test_in_order_keeps_input_order_and_abandons_nothing_when_read_to_the_end(spark):
    import ray

    @ray.remote
    def finish_in_reverse(index: int) -> pa.Table:
        import time

        import pyarrow as pa

        time.sleep(0.1 * (4 - index))  # later shards finish first
        return pa.table({"index": [index]})

    abandoned: list = []
    results = in_order(iter(range(5)), finish_in_reverse.remote, ray.get, window=3, abandon=abandoned.append)
    assert [t.column("index")[0].as_py() for t in results] == [0, 1, 2, 3, 4]
    assert abandoned == []


def _mark_and_wait(marks: str):
    """An arrow-kind function that marks each shard it starts (by its first id), then works half a second."""

    def slow(batch):
        import os
        import time

        first = batch.column("id")[0].as_py()
        with open(os.path.join(marks, f"started-{first}"), "w"):
            pass
        if first > 0:
            time.sleep(0.5)
        return batch

    return slow


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="Spark 4.1 runs a mapInArrow partition to its end under limit(1) (plain df.mapInArrow(...).limit(1) "
    "also processes every batch), so in_order never sees an early close and every shard runs",
)
def test_limit_does_not_wait_for_every_shard_in_executor_mode(spark, tmp_path, one_row_arrow_batches):
    total = 20
    df = spark.range(0, total, numPartitions=1)  # one partition: the limit must stop inside it
    out = ray_transform(df, _mark_and_wait(str(tmp_path)), "id long", kind="arrow", batch_rows=1)
    assert out.limit(1).collect() == [Row(id=0)]
    started = len(list(tmp_path.glob("started-*")))
    assert 1 <= started < total, f"{started} of {total} shards ran for one row"


def test_limit_runs_ray_work_only_for_the_partitions_spark_reads(spark, tmp_path, one_row_arrow_batches):
    total = 20
    df = spark.range(0, total, numPartitions=4)  # 5 rows per partition; limit(1) reads the first partition
    out = ray_transform(df, _mark_and_wait(str(tmp_path)), "id long", kind="arrow", batch_rows=1)
    assert out.limit(1).collect() == [Row(id=0)]
    started = sorted(int(p.name.split("-")[1]) for p in tmp_path.glob("started-*"))
    assert started and set(started) <= set(range(5)), f"shards of other partitions ran: {started}"


# --- batch_rows -------------------------------------------------------------------------------


def _shard_size(rows):
    yield {"n": sum(1 for _ in rows)}


@pytest.mark.parametrize("run_in", ["executor", "driver"])
def test_batch_rows_groups_small_arrow_batches_into_shards(spark, run_in, one_row_arrow_batches):
    df = spark.range(0, 40, numPartitions=1)
    out = ray_transform(df, _shard_size, "n long", kind="rows", batch_rows=4, run_in=run_in)
    assert [r.n for r in out.collect()] == [4] * 10


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="runners.coalesce never splits an incoming Arrow batch: one Spark batch (up to 10,000 rows by "
    "default) larger than batch_rows becomes a single Ray task, though batch_rows is documented as "
    "'at most this many rows per Ray task'",
)
@pytest.mark.parametrize("run_in", ["executor", "driver"])
def test_batch_rows_bounds_the_rows_of_each_ray_task(spark, run_in):
    df = spark.range(0, 40, numPartitions=1)  # one Arrow batch of 40 rows
    out = ray_transform(df, _shard_size, "n long", kind="rows", batch_rows=4, run_in=run_in)
    sizes = [r.n for r in out.collect()]
    assert sum(sizes) == 40
    assert max(sizes) <= 4, f"Ray tasks got {sizes} rows"


def test_coalesce_cuts_at_batch_rows_and_batch_bytes():
    batches = [pa.record_batch({"x": pa.array([i, i], pa.int64())}) for i in range(5)]  # 16 bytes each
    assert [t.num_rows for t in coalesce(batches, max_bytes=1 << 20, max_rows=4)] == [4, 4, 2]
    assert [t.num_rows for t in coalesce(batches, max_bytes=32, max_rows=1000)] == [4, 4, 2]
    empty = pa.record_batch({"x": pa.array([], pa.int64())})
    assert [t.num_rows for t in coalesce([empty, batches[0], empty], 1 << 20, 1000)] == [2]


# --- map-typed input columns --------------------------------------------------------------------

MAP_SCHEMA = (
    "id long, m map<string,double>, ms array<map<string,double>>, s struct<name: string, m: map<string,double>>"
)
MAP_ROWS = [
    (1, {"a": 1.5, "b": -2.0}, [{"x": 1.0}, {}], ("one", {"k": 0.25})),
    (2, {}, [], ("two", {})),
    (3, None, None, None),
    (4, {"中": None}, [None, {"y": 2.0}], ("four", None)),
]
# What _map_value_types finds in each row of the code's input: dicts wherever a map is not null.
EXPECTED_SEEN = {1: "dict", 2: "dict", 3: "", 4: "dict"}
# Rows whose array<map> column holds no map entry at all.
NO_NESTED_MAP_ENTRIES = [MAP_ROWS[1], MAP_ROWS[2]]


def _map_value_types(row) -> str:
    """Type names of every map value in the row (top level, in the array, in the struct)."""
    found = []
    if row["m"] is not None:
        found.append(type(row["m"]).__name__)
    found += [type(m).__name__ for m in row["ms"] or [] if m is not None]
    if row["s"] is not None and row["s"]["m"] is not None:
        found.append(type(row["s"]["m"]).__name__)
    return ",".join(sorted(set(found)))


def _maps_row(row):
    return {**row, "seen": _map_value_types(row)}


def _maps_rows(rows):
    for row in rows:
        yield _maps_row(row)


def _maps_arrow(batch):
    import pyarrow as pa

    schema = batch.schema
    seen = ",".join(
        [
            str(schema.field("m").type),
            str(schema.field("ms").type.value_type),
            str(schema.field("s").type.field("m").type),
        ]
    )
    return pa.RecordBatch.from_arrays(
        list(batch.columns) + [pa.array([seen] * batch.num_rows, pa.string())], names=schema.names + ["seen"]
    )


MAP_FUNCTIONS = {"row": _maps_row, "rows": _maps_rows, "arrow": _maps_arrow}
ARROW_MAP = "map<string, double>"


def _check_map_round_trip(spark, rows, kind, run_in) -> None:
    df = spark.createDataFrame(rows, MAP_SCHEMA).coalesce(1)  # all rows in one Arrow batch
    out = ray_transform(df, MAP_FUNCTIONS[kind], MAP_SCHEMA + ", seen string", kind=kind, run_in=run_in)
    got = sorted(out.collect(), key=lambda r: r.id)

    assert [(r.id, r.m, r.ms, None if r.s is None else tuple(r.s)) for r in got] == rows  # round trip
    if kind == "arrow":
        assert {r.seen for r in got} == {",".join([ARROW_MAP] * 3)}
    else:
        assert [r.seen for r in got] == [EXPECTED_SEEN[r.id] for r in got]


@pytest.mark.parametrize("run_in", ["executor", "driver"])
@pytest.mark.parametrize("kind", list(MAP_FUNCTIONS))
def test_map_columns_reach_the_code_as_dicts_or_arrow_maps(spark, kind, run_in):
    _check_map_round_trip(spark, MAP_ROWS, kind, run_in)


@pytest.mark.parametrize("run_in", ["executor", "driver"])
def test_map_columns_without_any_nested_map_entry(spark, run_in):
    """Spark sends the empty key and value vectors without offsets; pyarrow's ``nbytes`` read past them
    and crashed the Spark worker now and then (see ``runners.Coalescer``)."""
    _check_map_round_trip(spark, NO_NESTED_MAP_ENTRIES, "row", run_in)


# --- data_server_host (model mode) -----------------------------------------------------------------


def _serving_program(ctx):
    """Model-mode program: where each shard is served (and that it answers there), then the rows."""
    addresses = [str(handle) for handle in ctx.data_servers()]
    for address in addresses:
        host, _, port = address.rpartition(":")
        socket.create_connection((host, int(port)), timeout=10).close()
    rows = list(ctx.fetch_once())
    return pd.DataFrame(
        {"id": [r["id"] for r in rows], "tag": [r["tag"] for r in rows], "servers": [",".join(addresses)] * len(rows)}
    )


@pytest.mark.parametrize("option, host", [(None, "127.0.0.1"), ("127.0.0.1", "127.0.0.1"), ("localhost", "localhost")])
def test_model_data_servers_listen_where_data_server_host_says(spark, option, host):
    rows = [(i, f"t{i}") for i in range(6)]
    df = spark.createDataFrame(rows, "id long, tag string").repartition(2)
    options = {} if option is None else {"data_server_host": option}
    out = ray_transform(
        df, _serving_program, "id long, tag string, servers string", mode="model", run_in="driver", **options
    )
    got = out.collect()
    assert sorted((r.id, r.tag) for r in got) == rows
    servers = {address for r in got for address in r.servers.split(",")}
    assert servers and all(re.fullmatch(rf"{re.escape(host)}:\d+", s) for s in servers), servers


# --- job_group and job_description ---------------------------------------------------------------

_LOCAL_KEYS = ("spark.jobGroup.id", "spark.job.description", "spark.job.interruptOnCancel")


@pytest.fixture
def caller_group(spark):
    """The caller's own job group and a property of theirs; all removed after the test."""
    sc = spark.sparkContext
    sc.setJobGroup("callers-group", "the caller's jobs", interruptOnCancel=False)
    sc.setLocalProperty("callers.own.property", "kept")
    yield sc
    for key in (*_LOCAL_KEYS, "callers.own.property"):
        sc.setLocalProperty(key, None)


def _callers_properties(sc) -> tuple:
    return tuple(sc.getLocalProperty(key) for key in (*_LOCAL_KEYS, "callers.own.property"))


CALLERS = ("callers-group", "the caller's jobs", "false", "kept")


def _jobs_of_group(sc, group: str) -> list[int]:
    """Job ids Spark's status store lists for ``group`` (its listener runs asynchronously: wait a little)."""
    deadline = time.monotonic() + 30
    while True:
        ids = list(sc.statusTracker().getJobIdsForGroup(group))
        if ids or time.monotonic() > deadline:
            return sorted(ids)
        time.sleep(0.2)


def _description(sc, job_id: int) -> str | None:
    """A job's description, from the JVM's status store (PySpark's SparkJobInfo has none)."""
    description = sc._jsc.sc().statusStore().job(job_id).description()
    return description.get() if description.isDefined() else None


def _double(row):
    return {"id": row["id"] * 2}


@pytest.fixture(scope="module")
def ids_df(spark):
    return spark.createDataFrame([(1,), (2,), (3,)], "id long").repartition(2)


def test_driver_mode_jobs_carry_the_group_and_description_then_the_callers_come_back(spark, ids_df, caller_group):
    sc = caller_group
    group = f"spark-ray-test-{uuid.uuid4().hex}"
    out = ray_transform(
        ids_df, _double, "id long", run_in="driver", job_group=group, job_description="doubling for the test"
    )
    assert _callers_properties(sc) == CALLERS

    jobs = _jobs_of_group(sc, group)
    assert jobs, f"no Spark job ran under {group}"
    assert {_description(sc, job) for job in jobs} == {"doubling for the test"}

    # The caller's next job is theirs again.
    assert sorted(r.id for r in out.collect()) == [2, 4, 6]
    assert ids_df.count() == 3
    assert set(_jobs_of_group(sc, "callers-group")) and not set(_jobs_of_group(sc, "callers-group")) & set(jobs)
    assert _jobs_of_group(sc, group) == jobs


def test_driver_mode_names_its_jobs_by_default(spark, ids_df):
    sc = spark.sparkContext
    assert sc.getLocalProperty("spark.jobGroup.id") is None
    store = sc._jsc.sc().statusStore()

    def all_jobs() -> list:
        jobs = store.jobsList(None)  # a Scala Seq of JobData
        return [jobs.apply(i) for i in range(jobs.size())]

    before = {job.jobId() for job in all_jobs()}
    ray_transform(ids_df, _double, "id long", run_in="driver")
    assert sc.getLocalProperty("spark.jobGroup.id") is None  # no group left behind
    deadline = time.monotonic() + 30
    while True:
        new = [job for job in all_jobs() if job.jobId() not in before]
        if new or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert new
    groups = {job.jobGroup().get() for job in new if job.jobGroup().isDefined()}
    descriptions = {job.description().get() for job in new if job.description().isDefined()}
    assert len(groups) == 1 and next(iter(groups)).startswith("spark-ray-"), groups
    assert descriptions == {"spark-ray ray_transform[_double] run_in=driver mode=data"}


def test_driver_mode_restores_the_callers_group_after_a_failure(spark, ids_df, caller_group):
    def broken(row):
        raise ValueError(f"no {row['id']}")

    with pytest.raises(UserCodeError, match="ValueError: no "):
        ray_transform(ids_df, broken, "id long", run_in="driver", job_group=f"g-{uuid.uuid4().hex}")
    assert _callers_properties(caller_group) == CALLERS


def test_model_mode_on_the_driver_runs_under_the_group_and_description(spark, ids_df, caller_group):
    sc = caller_group
    group = f"spark-ray-test-{uuid.uuid4().hex}"

    def program(ctx):  # runs on the driver, in the caller's thread: it sees the call's local properties
        ids = [row["id"] for row in ctx.fetch_once()]
        return pd.DataFrame(
            {
                "n": [len(ids)],
                "grp": [sc.getLocalProperty("spark.jobGroup.id")],
                "description": [sc.getLocalProperty("spark.job.description")],
            }
        )

    out = ray_transform(
        ids_df, program, "n long, grp string, description string", mode="model", run_in="driver",
        job_group=group, job_description="model for the test",
    )  # fmt: skip
    assert tuple(out.first()) == (3, group, "model for the test")
    assert _jobs_of_group(sc, group)  # reading the table ran Spark jobs in that group
    assert _callers_properties(sc) == CALLERS


def test_model_mode_in_an_executor_runs_under_the_group(spark, ids_df, caller_group):
    sc = caller_group
    group = f"spark-ray-test-{uuid.uuid4().hex}"

    def program(ctx):
        return pd.DataFrame({"n": [sum(1 for _ in ctx.fetch_once())]})

    out = ray_transform(
        ids_df, program, "n long", mode="model", run_in="executor", job_group=group, job_description="model job"
    )
    assert out.first().n == 3
    jobs = _jobs_of_group(sc, group)
    assert jobs and {_description(sc, job) for job in jobs} == {"model job"}
    assert _callers_properties(sc) == CALLERS
