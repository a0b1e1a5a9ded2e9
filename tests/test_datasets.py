"""Spark tables as Ray Datasets and back: rows, columns, types and order survive; the blocks belong to the
driver's keepers (not to Spark's workers), and nothing is held once the Datasets are gone. The spark.stop()
case needs its own Spark and runs in test_ray_workloads_subprocess.py."""

from __future__ import annotations

import datetime

import pyarrow as pa
import pytest

from spark_ray import SchemaError, from_ray_dataset, to_ray_dataset
from spark_ray.datasets import ensure_keepers


def test_to_ray_dataset_keeps_rows_columns_types_and_order(spark):
    import ray

    df = (
        spark.createDataFrame(
            [(i, i * 0.5, f"s{i}", datetime.date(2024, 1, 1 + i % 28), [i, i + 1]) for i in range(500)],
            "id long, x double, s string, d date, tags array<int>",
        )
        .repartition(3, "id")
        .sortWithinPartitions("id")
    )
    expected = [tuple(row) for row in df.collect()]

    ds = to_ray_dataset(df, batch_rows=50)

    assert ds.count() == 500
    assert ds.sum("id") == sum(range(500))
    assert ds.schema().names == ["id", "x", "s", "d", "tags"]
    table = pa.concat_tables([ray.get(ref) for ref in ds.to_arrow_refs()])
    assert table.schema.field("d").type == pa.date32() and table.schema.field("tags").type == pa.list_(pa.int32())
    got = [tuple(row.values()) for row in table.to_pylist()]
    assert got == expected  # Spark's partition order, row for row


def test_the_keepers_drop_their_refs_once_the_driver_holds_them(spark):
    import ray

    ds = to_ray_dataset(spark.range(0, 100, numPartitions=2))
    keepers = ensure_keepers()
    held = ray.get([keepers.handle(node).held.remote() for node, _ in keepers.by_node])
    assert all(not counts for counts in held), held
    assert ds.count() == 100  # still readable: the driver borrows the blocks from their owner


def test_an_empty_table_is_an_empty_dataset_with_its_schema(spark):
    ds = to_ray_dataset(spark.range(0, 0).selectExpr("id", "cast(id as string) as s"))
    assert ds.count() == 0
    assert ds.schema().names == ["id", "s"]


def test_from_ray_dataset_reads_a_pipeline_and_keeps_its_columns(spark):
    import ray

    pipeline = ray.data.range(1000, override_num_blocks=4).map_batches(
        lambda batch: {"id": batch["id"], "square": batch["id"] ** 2, "name": [f"n{i}" for i in batch["id"]]}
    )
    df = from_ray_dataset(spark, pipeline)

    assert df.columns == ["id", "square", "name"]
    assert [f.dataType.simpleString() for f in df.schema.fields] == ["bigint", "bigint", "string"]
    rows = sorted(df.collect())
    assert len(rows) == 1000
    assert rows[7].asDict() == {"id": 7, "square": 49, "name": "n7"}
    assert df.rdd.getNumPartitions() > 1  # read by the executors, in parallel


def test_from_ray_dataset_with_a_schema_matches_by_name_and_casts(spark):
    import ray

    ds = ray.data.from_items([{"b": i, "a": str(i)} for i in range(10)])
    df = from_ray_dataset(spark, ds, schema="a string, b long")
    assert df.columns == ["a", "b"]
    assert sorted((r.a, r.b) for r in df.collect()) == sorted((str(i), i) for i in range(10))


def test_from_ray_dataset_of_tensors_gives_lists(spark):
    import numpy as np
    import ray

    ds = ray.data.from_items([{"id": i, "vec": np.arange(3) + i} for i in range(4)])
    rows = sorted(from_ray_dataset(spark, ds).collect())
    assert [list(r.vec) for r in rows] == [[i, i + 1, i + 2] for i in range(4)]


def test_a_round_trip_gives_the_table_back(spark):
    df = spark.range(0, 300, numPartitions=3).selectExpr("id", "id % 7 as bucket")
    back = from_ray_dataset(spark, to_ray_dataset(df))
    assert sorted(back.collect()) == sorted(df.collect())
    assert back.schema == df.schema


def test_an_empty_ray_dataset_needs_a_schema_or_has_one(spark):
    import ray

    empty = ray.data.range(10).filter(lambda row: row["id"] < 0)
    df = from_ray_dataset(spark, empty, schema="id long")
    assert df.count() == 0 and df.columns == ["id"]
    with pytest.raises(SchemaError):
        from_ray_dataset(spark, ray.data.from_items([{"d": datetime.timedelta(seconds=1)}]))
