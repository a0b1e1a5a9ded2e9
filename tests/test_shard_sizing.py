"""Shards sized to the work: the first shard is one incoming batch, a slow function's partition is cut
into many shards, a cheap one's into few big ones, and batch_rows / batch_bytes still override."""

from __future__ import annotations

import pyarrow as pa
import pytest

from spark_ray import ray_transform
from spark_ray.runners import coalesce
from spark_ray.shard_sizing import MAX_WINDOW, ShardSizer, stamp, take_timing, window_for


@pytest.fixture
def thousand_row_arrow_batches(arrow_batch_rows):
    arrow_batch_rows(1000)


def test_the_sizer_starts_with_one_batch_then_aims_at_the_target():
    sizer = ShardSizer(max_rows=1_000_000, max_bytes=1 << 30, target_s=0.25)
    assert sizer.row_limit() == 1  # before any timing: the next incoming batch alone
    sizer.observe(rows=10_000, seconds=1.0)  # 100 us per row
    assert sizer.row_limit() == 2_500
    for _ in range(20):
        sizer.observe(rows=10_000, seconds=0.0001)  # it became cheap
    assert sizer.row_limit() == 1_000_000  # capped by batch_rows


def test_a_coalescer_with_a_sizer_follows_it():
    batches = [pa.record_batch({"x": pa.array(range(10), pa.int64())}) for _ in range(10)]
    sizer = ShardSizer(max_rows=1000, max_bytes=1 << 30)
    shards = coalesce(batches, 1 << 30, 1000, sizer)
    assert next(shards).num_rows == 10  # one batch
    sizer.observe(rows=10, seconds=10 * 0.25 / 30)  # 30 rows make the target
    assert next(shards).num_rows == 30
    assert sum(shard.num_rows for shard in shards) == 60


def test_a_stamp_travels_in_the_schema_metadata_and_comes_off():
    table = pa.table({"x": [1, 2]}).replace_schema_metadata({b"mine": b"kept"})
    stamped = stamp(table, 0.5, 7)
    plain, timing = take_timing(stamped)
    assert timing == (7, 0.5)
    assert plain.schema.metadata == {b"mine": b"kept"} and plain.equals(table)
    assert take_timing(pa.table({"x": [1]}))[1] is None


def test_the_window_fills_the_ray_cpus_from_the_partitions_spark_runs():
    assert window_for(slots=2, parallel=2) == 2  # local[2], 2 Ray CPUs: as before
    assert window_for(slots=1, parallel=2) == 3  # local[1], 2 Ray CPUs: two at work, one being read
    assert window_for(slots=1, parallel=8) == 9
    assert window_for(slots=1, parallel=float("inf")) == MAX_WINDOW


def _shard_sizes(rows):
    yield {"n": sum(1 for _ in rows)}


def _slow_shard_sizes(rows):
    import time

    n = sum(1 for _ in rows)
    time.sleep(n * 0.0002)  # 0.2 ms per row: 1,250 rows make the 0.25 s target
    yield {"n": n}


def test_a_slow_function_gets_many_small_shards(spark, thousand_row_arrow_batches):
    df = spark.range(0, 20_000, numPartitions=1)
    sizes = [r.n for r in ray_transform(df, _slow_shard_sizes, "n long", kind="rows").collect()]
    assert sum(sizes) == 20_000
    assert sizes[0] == 1_000  # the first shard is the first Arrow batch
    assert len(sizes) >= 8 and max(sizes) <= 5_000, sizes


def test_a_cheap_function_gets_big_shards(spark, thousand_row_arrow_batches):
    df = spark.range(0, 50_000, numPartitions=1)
    sizes = [r.n for r in ray_transform(df, _shard_sizes, "n long", kind="rows").collect()]
    assert sum(sizes) == 50_000
    assert sizes[0] == 1_000 and max(sizes) > 10_000, sizes


@pytest.mark.parametrize("run_in", ["executor", "driver"])
def test_batch_rows_still_fixes_the_size(spark, thousand_row_arrow_batches, run_in):
    df = spark.range(0, 10_000, numPartitions=1)
    out = ray_transform(df, _slow_shard_sizes, "n long", kind="rows", batch_rows=5_000, run_in=run_in)
    assert [r.n for r in out.collect()] == [5_000, 5_000]
