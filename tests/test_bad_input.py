"""Bad input a production table can bring: each is survived exactly or refused with an error that names
the thing at fault (column, key, function), and nothing is half-written."""

from __future__ import annotations

import datetime
import decimal
import glob
import os
import re
import signal

import pytest
from processes import result_of, run_python
from py4j.protocol import Py4JJavaError
from pyspark.errors import PythonException
from pyspark.sql import Row
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StructField, StructType

from spark_ray import ResultSchemaError, SchemaError, UserCodeError, ray_transform
from spark_ray.errors import spark_ray_error_in
from spark_ray.spark_compat import PYSPARK_VERSION

BOTH_PATHS = ["executor", "driver"]
KINDS = ["row", "arrow", "pandas"]


def identity(value):
    """Returns its input unchanged, whatever the kind: a row dict, an Arrow batch or a pandas DataFrame."""
    return value


def run(df, *args, **kwargs):
    """Collect the result, so that lazy (executor) and eager (driver) paths fail alike."""
    return ray_transform(df, *args, **kwargs).collect()


def failure(df, *args, **kwargs) -> tuple[BaseException, str]:
    """The error a call raises and the first line of its text a reader meets (blank lines skipped).

    On the executor path Spark's PythonException opens with its own fixed banner line ("An exception was
    thrown from the Python worker..."); what the worker reported comes right after it.
    """
    with pytest.raises(Exception) as caught:
        run(df, *args, **kwargs)
    error = caught.value
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if isinstance(error, PythonException):
        assert lines[0] == "An exception was thrown from the Python worker. Please see the stack trace below."
        lines = lines[1:]
        if PYSPARK_VERSION < (4, 0):  # no SPARK_HIDE_TRACEBACK: the report opens with our frames, our line after
            lines = [line for line in lines if line.startswith("spark_ray.errors.")] or lines
    return error, lines[0]


# --------------------------------------------------------------------------- every type through every kind

ALL_TYPES = (
    "id long, l long, i int, d double, s string, bin binary, b boolean, dec decimal(38,18), dt date, "
    "ts timestamp, arr array<long>, m map<string,long>, st struct<x: long, y: string>"
)
# Longs stay within 2**53: pandas holds a long column with nulls as float64 (as Spark's mapInPandas does), so
# a larger value in such a column cannot survive kind="pandas" exactly.
ALL_TYPES_ROWS = [
    (
        1, 2**52 + 1, 2**31 - 1, 1.5, "中国 é", bytearray(b"\x00\xff\xfe"), True,
        decimal.Decimal("12345678901234567890.123456789012345678"), datetime.date(2024, 2, 29),
        datetime.datetime(2024, 2, 29, 12, 30, 1, 123456), [1, None, 3], {"a": 1, "b": None}, Row(x=1, y="p"),
    ),
    (2, None, None, None, None, None, None, None, None, None, None, None, None),
    (
        3, -(2**53), -(2**31), float("-inf"), "", bytearray(b""), False, decimal.Decimal("-0.000000000000000001"),
        datetime.date(1, 1, 1), datetime.datetime(1970, 1, 1), [], {}, Row(x=None, y=None),
    ),
]  # fmt: skip


@pytest.fixture(scope="module")
def all_types_df(spark):
    return spark.createDataFrame(ALL_TYPES_ROWS, ALL_TYPES).repartition(2)


@pytest.mark.parametrize("run_in", BOTH_PATHS)
@pytest.mark.parametrize("kind", KINDS)
def test_every_type_round_trips_through_every_kind_and_path(all_types_df, kind, run_in):
    out = ray_transform(all_types_df, identity, all_types_df.schema, kind=kind, run_in=run_in)
    assert out.schema == all_types_df.schema
    got = sorted(out.collect(), key=lambda row: row.id)
    assert got == sorted(all_types_df.collect(), key=lambda row: row.id)
    assert got[0].bin == bytearray(b"\x00\xff\xfe") and got[0].m == {"a": 1, "b": None}


def test_pandas_kind_sees_maps_as_dicts_as_the_row_kind_does(all_types_df):
    def look(frame):
        shown = [f"{type(m).__name__} {sorted(m)}" if m is not None else "null" for m in frame["m"]]
        return frame.assign(s=shown)

    out = ray_transform(all_types_df, look, all_types_df.schema, kind="pandas")
    assert sorted(row.s for row in out.collect()) == ["dict ['a', 'b']", "dict []", "null"]


def test_spark_batches_with_empty_offsets_buffers_are_cut_into_shards_without_reading_past_them():
    """Found as a Spark worker's segfault in CI (``RecordBatch.nbytes`` in ``Coalescer.add``)."""

    # A column of empty lists of strings whose empty offsets buffer ends where a PROT_NONE page begins
    # (guard_page_child.py): any read of an offset from it is a segfault every time, not only when
    # Spark's buffer happens to end a page.
    # The hazard is real in this pyarrow: nbytes reads the first offset of the empty buffer.
    assert run_python("guard_page_child.py", ["nbytes"], timeout_s=120).returncode == -signal.SIGSEGV
    shards = run_python("guard_page_child.py", ["coalesce"], timeout_s=120)
    assert shards.returncode == 0, shards.stderr
    # One shard of both batches, every row in place, and its offsets complete (nbytes now reads them).
    found = result_of(shards)
    assert (found["shards"], found["tags"], found["ids"]) == (1, [[], [], [], []], [1, 2, 1, 2])
    assert found["nbytes"] > 0


# --------------------------------------------------------------------------- wrong returns


@pytest.fixture(scope="module")
def small_df(spark):
    # One partition: the failing task is the job's only one. With two, Spark kills the other task's
    # Python worker when the first fails, and on pyspark 4.1 the next job's task may then fail on that
    # worker's connection (java.nio.channels.CancelledKeyException) instead of running.
    return spark.createDataFrame([(1, "a"), (2, "b"), (3, "c")], "id long, content string").coalesce(1)


@pytest.mark.parametrize("run_in", BOTH_PATHS)
@pytest.mark.parametrize("returned, count", [((1,), 1), ((1, "a", "extra"), 3)], ids=["short", "long"])
def test_tuple_of_the_wrong_length_names_both_counts(small_df, run_in, returned, count):
    def wrong_width(row):
        return returned

    error, first = failure(small_df, wrong_width, "id long, content string", run_in=run_in)
    assert isinstance(error, (ResultSchemaError, PythonException))
    assert f"returned a row of {count} values, but the schema has 2 columns ['id', 'content']" in first
    assert "function test_tuple_of_the_wrong_length_names_both_counts.<locals>.wrong_width" in first


@pytest.mark.parametrize("run_in", BOTH_PATHS)
def test_extra_keys_are_named(small_df, run_in):
    def with_extras(row):
        return {"id": row["id"], "content": row["content"], "score": 0.5, "lable": "x"}

    error, first = failure(small_df, with_extras, "id long, content string", run_in=run_in)
    assert isinstance(error, (ResultSchemaError, PythonException))
    assert "key(s) ['lable', 'score'] that are not in the schema" in first
    assert "function test_extra_keys_are_named.<locals>.with_extras" in first


def test_input_columns_left_out_of_the_schema_are_dropped_quietly(small_df):
    # Returning the input row whole and letting the schema pick its columns is not an extra key.
    out = ray_transform(small_df, lambda row: row, "id long")
    assert sorted(r.id for r in out.collect()) == [1, 2, 3]
    out = ray_transform(small_df, lambda row: {**row, "twice": row["id"] * 2}, "twice long", run_in="driver")
    assert sorted(r.twice for r in out.collect()) == [2, 4, 6]


@pytest.mark.parametrize("run_in", BOTH_PATHS)
@pytest.mark.parametrize("returned", [42, "id", b"id", 1.5], ids=["int", "str", "bytes", "float"])
def test_a_row_function_returning_neither_dict_nor_tuple(small_df, run_in, returned):
    def scalar(row):
        return returned

    error, first = failure(small_df, scalar, "id long", run_in=run_in)
    assert isinstance(error, (ResultSchemaError, PythonException))
    assert "function test_a_row_function_returning_neither_dict_nor_tuple.<locals>.scalar" in first
    assert f"returned {returned!r} ({type(returned).__name__}) for a row" in first
    assert "return a dict, a tuple, None, or an iterable of those" in first


@pytest.mark.parametrize("run_in", BOTH_PATHS)
def test_a_rows_function_returning_a_scalar(small_df, run_in):
    def count_them(rows):
        return sum(1 for _ in rows)

    error, first = failure(small_df, count_them, "id long", kind="rows", run_in=run_in)
    assert "function test_a_rows_function_returning_a_scalar.<locals>.count_them" in first
    assert "(kind='rows') must return an iterable of rows" in first
    assert first.endswith("got 3 (int)")


@pytest.mark.parametrize("run_in", BOTH_PATHS)
def test_a_generator_that_raises_halfway_shows_the_users_traceback_and_writes_nothing(spark, tmp_path, run_in):
    df = spark.range(0, 1000, numPartitions=1)  # small shards: 700 rows are written before the failure

    def halfway(rows):
        for row in rows:
            if row["id"] == 700:
                raise ValueError("row 700 is corrupt")
            yield {"id": row["id"]}

    target = str(tmp_path / "out")
    # pyspark 3.5 reports a failed write as the JVM's error, with the worker's report inside it.
    with pytest.raises((UserCodeError, PythonException, Py4JJavaError)) as caught:
        ray_transform(df, halfway, "id long", kind="rows", run_in=run_in, batch_rows=100).write.parquet(target)
    message = str(caught.value)
    assert "function test_a_generator_that_raises_halfway" in message
    assert "raised ValueError: row 700 is corrupt" in message
    assert 'raise ValueError("row 700 is corrupt")' in message  # the user's own line, from their traceback
    assert ", in halfway" in message
    assert glob.glob(os.path.join(target, "**", "*.parquet"), recursive=True) == []


# --------------------------------------------------------------------------- model mode

NO_OUTPUT_CODE = """
from pyjava.api.mlsql import RayContext
ray_context = RayContext.connect(context, "local")
rows = [row for shard in ray_context.data_servers() for row in ray_context.fetch_once_as_rows(shard)]
"""


@pytest.mark.parametrize("run_in", BOTH_PATHS)
def test_model_code_that_never_builds_a_result(small_df, run_in):
    with pytest.raises(UserCodeError) as caught:
        ray_transform(small_df, NO_OUTPUT_CODE, "id long", mode="model", run_in=run_in)
    first = str(caught.value).splitlines()[0]
    assert first.startswith("model-mode code set no output: call context.set_output([[pd.Series, ...]]) or ")
    assert "context.build_result(rows)" in first
    assert re.search(r"\(code string <ray_transform code [0-9a-f]{8}> did none of these\)$", first)


# --------------------------------------------------------------------------- shapes of tables


@pytest.mark.parametrize("run_in", BOTH_PATHS)
@pytest.mark.parametrize("kind", ["row", "rows", "arrow", "pandas"])
def test_empty_dataframe_gives_an_empty_result_of_the_schema(spark, all_types_df, kind, run_in):
    empty = all_types_df.limit(0)
    out = ray_transform(empty, identity if kind != "rows" else iter, all_types_df.schema, kind=kind, run_in=run_in)
    assert out.collect() == []
    assert out.schema == all_types_df.schema


@pytest.mark.parametrize("run_in", BOTH_PATHS)
def test_a_50_mb_value_passes_through_intact(spark, run_in):
    size = 50 * 1024 * 1024
    # Made by the tasks, from the id: a constant would be folded into the plan and shipped with every task.
    df = spark.range(0, 3, numPartitions=1).selectExpr(
        "id", f"CASE WHEN id = 1 THEN repeat('ab', CAST(id * {size // 2} AS INT)) ELSE 'x' END AS s"
    )
    df = df.withColumn("bin", F.unhex(F.concat(F.col("s"), F.lit("ff"))).cast("binary"))
    out = ray_transform(df, identity, df.schema, run_in=run_in)
    digest = ["id", "length(s) AS n", "sha2(s, 256) AS h", "length(bin) AS nb", "sha2(bin, 256) AS hb"]
    assert sorted(out.selectExpr(*digest).collect()) == sorted(df.selectExpr(*digest).collect())
    assert out.where("id = 1").selectExpr("length(s)", "length(bin)").first() == (size, size // 2 + 1)


@pytest.fixture(scope="module")
def wide_df(spark):
    """4 rows of 10,000 long columns (and an id), c{i} = id + i.

    Built from Arrow data (a LocalRelation): Spark plans a table this wide slowly, and a projection of
    10,000 expressions would be planned again by every job that reads it.
    """
    import pyarrow as pa

    table = pa.table({"id": list(range(4)), **{f"c{i}": [row + i for row in range(4)] for i in range(WIDTH)}})
    return spark.createDataFrame(table.to_pandas()).repartition(2)  # pyspark 3.5 takes no Arrow table here


WIDTH = 10_000


@pytest.mark.parametrize("run_in", BOTH_PATHS)
def test_a_10000_column_table(wide_df, run_in):
    out = ray_transform(wide_df, identity, wide_df.schema, kind="arrow", run_in=run_in)
    assert len(out.schema) == WIDTH + 1 and out.schema == wide_df.schema
    rows = sorted(out.collect(), key=lambda row: row.id)
    assert [(row.id, row.c0, row[WIDTH]) for row in rows] == [(i, i, i + WIDTH - 1) for i in range(4)]
    assert all(list(row) == [row.id] + [row.id + i for i in range(WIDTH)] for row in rows)


@pytest.mark.parametrize("run_in", BOTH_PATHS)
@pytest.mark.parametrize("kind", KINDS)
def test_column_names_with_spaces_dots_and_non_ascii(spark, kind, run_in):
    schema = "`order id` long, `a.b` string, `名字` string, `ünï cødé.x y` double"
    df = spark.createDataFrame([(1, "x", "张三", 0.5), (2, None, "李四", None)], schema)
    out = ray_transform(df, identity, schema, kind=kind, run_in=run_in)
    assert out.columns == ["order id", "a.b", "名字", "ünï cødé.x y"]
    assert sorted(tuple(row) for row in out.collect()) == [(1, "x", "张三", 0.5), (2, None, "李四", None)]


@pytest.mark.parametrize(
    "schema",
    [
        "id long, content string, id double",
        "st(field(id,long),field(id,string))",
        StructType([StructField("id", LongType()), StructField("id", LongType())]),
    ],
    ids=["ddl", "dsl", "structtype"],
)
def test_duplicate_output_column_names_fail_at_the_call(small_df, schema):
    with pytest.raises(SchemaError) as caught:
        ray_transform(small_df, identity, schema)  # no action: the call itself refuses
    assert "duplicate field name 'id'" in str(caught.value)


# --------------------------------------------------------------------------- what the user reads first

SPARK_BANNER = "An exception was thrown from the Python worker. Please see the stack trace below."


@pytest.mark.parametrize("python_mode", ["ray", "python"])
@pytest.mark.needs_spark4(reason="pyspark 3.5 has no SPARK_HIDE_TRACEBACK: its worker report opens with our frames")
def test_executor_error_leads_with_our_line_after_sparks_banner(small_df, python_mode):
    def label_as_number(row):
        return {"id": row["id"], "content": row["content"]}

    with pytest.raises(PythonException) as caught:
        run(small_df, label_as_number, "id long, content long", python_mode=python_mode)
    lines = [line for line in str(caught.value).splitlines() if line.strip()]
    # pyspark writes the banner on the driver; everything after it is the worker's report, which is ours.
    assert lines[0].strip() == SPARK_BANNER
    assert lines[1].startswith(
        "spark_ray.errors.ResultSchemaError: column 'content' expects long, but function "
        "test_executor_error_leads_with_our_line_after_sparks_banner.<locals>.label_as_number ("
    )
    assert lines[1].endswith("returned 'a' (str) in row 0 of its output: Could not convert 'a' with type str: "
                             "tried to convert to int64")  # fmt: skip
    assert not any(line.startswith("Traceback") for line in lines)  # none of our frames before or after it


CODE_THAT_FAILS = """from pyjava.api.mlsql import RayContext
ray_context = RayContext.connect(context, "local")

def echo(row):
    return {"id": row["id"] // (row["id"] - 2)}

ray_context.foreach(echo)
"""


@pytest.mark.needs_spark4(reason="pyspark 3.5 has no SPARK_HIDE_TRACEBACK: its worker report opens with our frames")
def test_executor_user_error_leads_with_function_line_and_keeps_the_users_traceback(small_df):
    with pytest.raises(PythonException) as caught:
        run(small_df, CODE_THAT_FAILS, "id long")
    lines = [line for line in str(caught.value).splitlines() if line.strip()]
    assert lines[0].strip() == SPARK_BANNER
    assert re.fullmatch(
        r"spark_ray\.errors\.UserCodeError: function echo \(<ray_transform code [0-9a-f]{8}>, line 4\) raised "
        r"ZeroDivisionError: integer division or modulo by zero",
        lines[1],
    )
    assert lines[2] == "Traceback (most recent call last):"  # the user's own, and only theirs
    assert re.fullmatch(r'  File "<ray_transform code [0-9a-f]{8}>", line 5, in echo', lines[3])
    assert lines[4].strip() == 'return {"id": row["id"] // (row["id"] - 2)}'
    assert "spark_ray/" not in str(caught.value)


def test_spark_ray_error_in_gives_our_error_back_from_sparks(small_df):
    with pytest.raises(PythonException) as caught:
        run(small_df, CODE_THAT_FAILS, "id long")
    error = spark_ray_error_in(caught.value)
    assert isinstance(error, UserCodeError)
    assert re.fullmatch(r"function echo \(<ray_transform code [0-9a-f]{8}>, line 4\) raised ZeroDivisionError: "
                        r"integer division or modulo by zero", error.message)  # fmt: skip
    assert error.user_traceback.startswith("Traceback (most recent call last):\n")
    assert 'return {"id": row["id"] // (row["id"] - 2)}' in error.user_traceback
    assert str(error).splitlines()[0] == error.message

    with pytest.raises(PythonException) as caught:
        run(small_df, lambda row: {"id": row["content"]}, "id long")
    error = spark_ray_error_in(caught.value)
    assert isinstance(error, ResultSchemaError)
    assert str(error).startswith(
        "column 'id' expects long, but function test_spark_ray_error_in_gives_our_error_back_from_sparks.<locals>"
        ".<lambda> ("
    )
    assert spark_ray_error_in(ValueError("no spark_ray error in here")) is None


def test_model_mode_in_an_executor_raises_our_error_not_sparks(small_df):
    code = "context.set_output([[[1, 2, 3], ['a', 'b', 'c']]])\n"
    with pytest.raises(UserCodeError) as caught:
        ray_transform(small_df, code, "id long, n long", mode="model", run_in="executor")
    assert str(caught.value).splitlines()[0] == (
        "the code string raised ResultSchemaError: column 'n' expects long, but set_output returned 'a' (str): "
        "a column of string cannot become long"
    )
    assert "line 1, in <module>" in caught.value.user_traceback
    assert isinstance(caught.value.__context__, PythonException)  # Spark's error stays reachable

    def bad_frame(context):
        import pandas as pd

        return pd.DataFrame({"id": [1], "n": ["a"]})

    with pytest.raises(ResultSchemaError, match=r"^column 'n' expects long, but set_output returned 'a' \(str\)"):
        ray_transform(small_df, bad_frame, "id long, n long", mode="model", run_in="executor")
