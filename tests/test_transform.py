"""ray_transform end to end: every code kind through every engine path."""

from __future__ import annotations

import datetime
import decimal
import math

import pandas as pd
import pyarrow as pa
import pytest
from pyspark.sql import Row
from pyspark.sql.types import (
    ArrayType,
    DoubleType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
)

from spark_ray import ray_transform

# (run_in, python_mode): the executor and driver paths on Ray, and the no-Ray path.
PATHS = [("executor", "ray"), ("driver", "ray"), ("executor", "python")]
PATH_IDS = ["executor-ray", "driver-ray", "no-ray"]

SEED_ROWS = [(9, "1", 0.0), (10, "2", 0.0), (11, "中国", 0.0), (12, "e", 0.0), (13, "5", 0.0), (14, "4", 0.0)]
SEED_SCHEMA = "st(field(id,long),field(content,string),field(label,double))"


@pytest.fixture(scope="module")
def seed_df(spark):
    return (
        spark.createDataFrame(SEED_ROWS, "id long, content string, label double")
        .repartition(2)
        .sortWithinPartitions("id")
    )


def collect_sorted(df, key="id"):
    return sorted((tuple(row) for row in df.collect()), key=lambda row: row[0] if key == "id" else row)


def double_id_row(row):
    return {"id": row["id"] * 2, "content": row["content"] + "!", "label": row["label"] + 1}


def double_id_rows(rows):
    for row in rows:
        yield double_id_row(row)


def double_id_arrow(batch: pa.RecordBatch) -> pa.RecordBatch:
    import pyarrow.compute as pc

    return pa.RecordBatch.from_arrays(
        [
            pc.multiply(batch.column("id"), 2),
            pc.binary_join_element_wise(batch.column("content"), pa.scalar("!"), ""),
            pc.add(batch.column("label"), 1.0),
        ],
        names=["id", "content", "label"],
    )


def double_id_pandas(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(id=frame["id"] * 2, content=frame["content"] + "!", label=frame["label"] + 1)


EXPECTED_DOUBLED = [(2 * i, c + "!", label + 1) for i, c, label in SEED_ROWS]


@pytest.mark.parametrize("run_in, python_mode", PATHS, ids=PATH_IDS)
@pytest.mark.parametrize(
    "kind, fn",
    [("row", double_id_row), ("rows", double_id_rows), ("arrow", double_id_arrow), ("pandas", double_id_pandas)],
)
def test_every_kind_on_every_path(seed_df, run_in, python_mode, kind, fn):
    out = ray_transform(seed_df, fn, SEED_SCHEMA, run_in=run_in, python_mode=python_mode, kind=kind)
    assert out.schema == StructType(
        [StructField("id", LongType()), StructField("content", StringType()), StructField("label", DoubleType())]
    )
    assert collect_sorted(out) == EXPECTED_DOUBLED


@pytest.mark.parametrize("run_in, python_mode", PATHS, ids=PATH_IDS)
def test_row_function_may_drop_split_and_use_tuples(seed_df, run_in, python_mode):
    def fan_out(row):
        if row["id"] % 2:
            return None  # dropped
        return [(row["id"], "a"), Row(id=row["id"], tag="b")]  # several rows, by position and by name

    out = ray_transform(seed_df, fan_out, "id long, tag string", run_in=run_in, python_mode=python_mode)
    assert sorted(map(tuple, out.collect())) == [(i, t) for i in (10, 12, 14) for t in ("a", "b")]


def test_lambdas_and_closures_travel(seed_df):
    offset = 1000
    out = ray_transform(seed_df, lambda row: (row["id"] + offset,), "id long")
    assert sorted(r.id for r in out.collect()) == [i + 1000 for i, _, _ in SEED_ROWS]


@pytest.mark.parametrize("run_in, python_mode", PATHS, ids=PATH_IDS)
def test_order_is_kept_within_partitions(spark, run_in, python_mode):
    # Small shards force many Ray tasks per partition, several in flight at once.
    df = spark.range(0, 20_000, numPartitions=2)
    out = ray_transform(
        df, lambda rows: ({"id": r["id"]} for r in rows), "id long",
        kind="rows", run_in=run_in, python_mode=python_mode, batch_rows=700, tasks_per_partition=3,
    )  # fmt: skip
    assert [r.id for r in out.collect()] == list(range(20_000))
    assert out.rdd.getNumPartitions() == 2  # both paths keep the input's partitions
    per_partition = out.rdd.glom().map(lambda rows: [r.id for r in rows]).collect()
    assert per_partition == [list(range(10_000)), list(range(10_000, 20_000))]


@pytest.mark.parametrize("run_in, python_mode", PATHS, ids=PATH_IDS)
def test_empty_dataframe(spark, run_in, python_mode):
    empty = spark.createDataFrame([], "id long, content string")
    out = ray_transform(empty, lambda row: row, "id long, content string", run_in=run_in, python_mode=python_mode)
    assert out.collect() == []
    assert out.schema.fieldNames() == ["id", "content"]


@pytest.mark.parametrize("run_in, python_mode", PATHS, ids=PATH_IDS)
def test_partitions_without_rows(spark, run_in, python_mode):
    df = spark.createDataFrame([(1,), (2,)], "id long").repartition(6)  # at least four empty partitions
    assert sum(1 for size in df.rdd.glom().map(len).collect() if size == 0) >= 4
    out = ray_transform(df, lambda row: {"id": row["id"] * 10}, "id long", run_in=run_in, python_mode=python_mode)
    assert sorted(r.id for r in out.collect()) == [10, 20]


@pytest.mark.parametrize("run_in", ["executor", "driver"])
def test_200k_rows(spark, run_in):
    df = spark.range(0, 200_000, numPartitions=3).selectExpr(
        "id", "cast(id as string) as s", "cast(id as double) * 0.5 as x"
    )
    out = ray_transform(
        df, lambda row: {"id": row["id"], "s": row["s"] + "x", "x": row["x"] * 2}, "id long, s string, x double",
        run_in=run_in, batch_rows=50_000,
    )  # fmt: skip
    summary = out.selectExpr(
        "count(*) as n", "sum(id) as ids", "sum(x) as xs", "count_if(s = concat(id, 'x')) as ok"
    ).first()
    assert (summary.n, summary.ids, summary.xs, summary.ok) == (
        200_000,
        199_999 * 100_000,
        199_999 * 100_000.0,
        200_000,
    )


NESTED_STRUCT = StructType(
    [
        StructField("id", LongType()),
        StructField("tags", ArrayType(StringType())),
        StructField("attrs", MapType(StringType(), DoubleType())),
        StructField("point", StructType([StructField("x", DoubleType()), StructField("label", StringType())])),
    ]
)
NESTED_FORMS = {
    "dsl": "st(field(id,long),field(tags,array(string)),field(attrs,map(string,double)),"
    "field(point,st(field(x,double),field(label,string))))",
    "ddl": "id long, tags array<string>, attrs map<string,double>, point struct<x: double, label: string>",
    "json": NESTED_STRUCT.json(),
    "structtype": NESTED_STRUCT,
}


@pytest.mark.parametrize("form", list(NESTED_FORMS))
@pytest.mark.parametrize("run_in", ["executor", "driver"])
def test_nested_types_in_every_schema_form(spark, form, run_in):
    df = spark.createDataFrame([(1,), (2,)], "id long")

    def nest(row):
        i = row["id"]
        return {"id": i, "tags": ["a", "中"] * i, "attrs": {"k": i * 1.5}, "point": {"x": float(i), "label": f"p{i}"}}

    out = ray_transform(df, nest, NESTED_FORMS[form], run_in=run_in)
    assert out.schema == NESTED_STRUCT
    rows = sorted(out.collect(), key=lambda r: r.id)
    assert [(r.id, r.tags, r.attrs, r.point.x, r.point.label) for r in rows] == [
        (1, ["a", "中"], {"k": 1.5}, 1.0, "p1"),
        (2, ["a", "中", "a", "中"], {"k": 3.0}, 2.0, "p2"),
    ]


@pytest.mark.parametrize("run_in, python_mode", PATHS, ids=PATH_IDS)
def test_nulls_nan_and_unicode_round_trip(spark, run_in, python_mode):
    rows = [(1, None, float("nan"), "中国"), (2, "é😀", None, None), (3, "", -0.0, "a\x00b")]
    df = spark.createDataFrame(rows, "id long, s string, x double, t string")
    out = ray_transform(
        df, lambda row: row, "id long, s string, x double, t string", run_in=run_in, python_mode=python_mode
    )
    got = sorted(out.collect(), key=lambda r: r.id)
    assert [r.s for r in got] == [None, "é😀", ""]
    assert [r.t for r in got] == ["中国", None, "a\x00b"]
    assert math.isnan(got[0].x) and got[1].x is None and str(got[2].x) == "-0.0"


def test_every_primitive_type_round_trips(spark):
    schema = (
        "b boolean, y byte, h short, i int, l long, f float, d double, m decimal(10,2), "
        "dt date, ts timestamp, bin binary, s string"
    )
    row = (
        True, 7, 300, 70000, 2**40, 1.5, 2.25, decimal.Decimal("12.34"), datetime.date(2024, 2, 29),
        datetime.datetime(2024, 2, 29, 12, 30, 1, 123456), bytearray(b"\x00\xff"), "ok",
    )  # fmt: skip
    df = spark.createDataFrame([row], schema)
    for run_in in ("executor", "driver"):
        out = ray_transform(df, lambda r: r, schema, run_in=run_in)
        assert tuple(out.first()) == row


def test_safe_conversions_happen(spark):
    df = spark.createDataFrame([(1,)], "id long")
    out = ray_transform(
        df,
        lambda row: {"as_double": row["id"], "as_long": 3.0, "as_short": 5},
        "as_double double, as_long long, as_short short",
    )
    assert tuple(out.first()) == (1.0, 3, 5)
    assert [f.dataType.simpleString() for f in out.schema] == ["double", "bigint", "smallint"]


def test_python_mode_runs_inside_spark_workers_and_ray_mode_in_ray_tasks(seed_df):
    def where(row):
        import ray

        in_ray_task = ray.is_initialized() and ray.get_runtime_context().get_task_id() is not None
        return {"id": row["id"], "in_ray_task": in_ray_task}

    for python_mode, expected in (("ray", True), ("python", False)):
        out = ray_transform(seed_df, where, "id long, in_ray_task boolean", python_mode=python_mode)
        assert {r.in_ray_task for r in out.collect()} == {expected}
