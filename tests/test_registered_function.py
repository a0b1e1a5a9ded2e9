"""register_function: a named, vectorized SQL table function with its schema fixed."""

from __future__ import annotations

import warnings

import pyarrow as pa
import pyarrow.compute as pc
import pyspark.sql.functions
import pytest
from pyspark.errors import PythonException
from pyspark.sql.types import LongType, MapType, StringType, StructField, StructType

import spark_ray
from spark_ray import ConfigError, register_function, registered_functions
from spark_ray import registered_function as registered_module
from spark_ray.errors import SparkVersionError
from spark_ray.spark_compat import HAS_ARROW_UDTF, HAS_UDTF_ANALYZE

WHERE_CODE = """
import os, sys
from pyjava.api.mlsql import RayContext
ray_context = RayContext.connect(context, "local")
ray_context.foreach(lambda row: {"id": row["id"], "where": os.path.basename(sys.argv[0])})
"""


@pytest.fixture(scope="module")
def table(spark):
    df = spark.createDataFrame(
        [(i, f"s{i}", {"k": i * 10}) for i in range(40)], "id long, s string, m map<string,long>"
    ).repartition(3)
    df.createOrReplaceTempView("registered_t")
    return df


def _double_ids(batch: pa.RecordBatch) -> pa.RecordBatch:
    return batch.set_column(0, "id", pc.multiply(batch.column(0), 2))


def test_an_arrow_function_runs_on_ray_through_sql(spark, table):
    register_function(spark, "double_ids", _double_ids, "id long, s string, m map<string,long>", kind="arrow")
    out = spark.sql("SELECT * FROM double_ids(TABLE(registered_t)) ORDER BY id")
    assert out.schema == StructType(
        [
            StructField("id", LongType()),
            StructField("s", StringType()),
            StructField("m", MapType(StringType(), LongType())),
        ]
    )
    assert [tuple(row) for row in out.collect()] == [(i * 2, f"s{i}", {"k": i * 10}) for i in range(40)]


def test_a_code_string_runs_in_ray_workers(spark, table):
    register_function(spark, "where_rows", WHERE_CODE, "id long, where string")
    rows = spark.sql("SELECT * FROM where_rows(TABLE(registered_t))").collect()
    assert sorted(row.id for row in rows) == list(range(40))
    assert {row.where for row in rows} == {"default_worker.py"}  # Ray's worker, not Spark's


def test_a_row_function_sees_maps_as_dicts_and_small_batches_keep_every_row(spark, table):
    register_function(spark, "map_values", lambda row: (row["id"], row["m"]["k"]), "id long, k long", batch_rows=7)
    rows = spark.sql("SELECT * FROM map_values(TABLE(registered_t))").collect()
    assert sorted(tuple(row) for row in rows) == [(i, i * 10) for i in range(40)]


def test_python_mode_runs_in_the_spark_worker(spark, table):
    register_function(spark, "where_python", WHERE_CODE, "id long, where string", python_mode="python")
    wheres = {row.where for row in spark.sql("SELECT * FROM where_python(TABLE(registered_t))").collect()}
    assert "default_worker.py" not in wheres and len(wheres) == 1


def test_the_registered_functions_are_listed(spark, table):
    register_function(spark, "listed_fn", _double_ids, "id long, s string, m map<string,long>", kind="arrow")
    entry = next(fn for fn in registered_functions(spark) if fn.name == "listed_fn")
    assert entry.protocol == ("arrow" if HAS_ARROW_UDTF else "rows")  # arrow_udtf: pyspark 4.1+
    assert entry.options == {"kind": "arrow"}
    assert entry.schema.fieldNames() == ["id", "s", "m"]
    assert entry.code_label.startswith("function _double_ids (")
    names = [fn.name for fn in registered_functions(spark)]
    assert names == sorted(names)


def test_the_users_error_reaches_sql_with_its_message(spark, table):
    def fail_on_7(row):
        if row["id"] == 7:
            raise ValueError("seven is not allowed")
        return row

    register_function(spark, "fails_on_7", fail_on_7, "id long")
    with pytest.raises(PythonException, match="seven is not allowed"):
        spark.sql("SELECT * FROM fails_on_7(TABLE(registered_t))").collect()


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("bad name", {}, "needs a SQL name"),
        ("model_fn", {"mode": "model"}, "dataMode=data only"),
        ("driver_fn", {"run_in": "driver"}, "run in the executors"),
        ("typo_fn", {"kindd": "arrow"}, "Did you mean 'kind'"),
    ],
)
def test_options_that_cannot_apply_are_refused(spark, name, options, message):
    with pytest.raises(ConfigError, match=message):
        register_function(spark, name, _double_ids, "id long", **options)


def test_without_a_schema_the_session_schema_is_used_or_the_error_says_so(spark, table):
    with pytest.raises(ConfigError, match="needs a schema"):
        register_function(spark, "no_schema", _double_ids)
    spark_ray.set_session_conf(spark, schema="id long")
    register_function(spark, "session_schema", lambda row: {"id": row["id"] + 1})
    rows = spark.sql("SELECT * FROM session_schema(TABLE(registered_t))").collect()
    assert sorted(row.id for row in rows) == list(range(1, 41))


def test_an_older_pyspark_falls_back_to_the_row_protocol_with_one_warning(spark, table, monkeypatch):
    monkeypatch.delattr(pyspark.sql.functions, "arrow_udtf", raising=False)  # pyspark < 4.1 has none
    monkeypatch.setattr(registered_module, "_WARNED_FALLBACK", [])
    with pytest.warns(UserWarning, match="no arrow_udtf"):
        register_function(spark, "fallback_fn", lambda row: {"id": row["id"], "s": row["s"] + "!"}, "id long, s string")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second registration is silent
        register_function(spark, "fallback_fn2", lambda row: {"id": row["id"]}, "id long")
    rows = spark.sql("SELECT * FROM fallback_fn(TABLE(registered_t))").collect()
    assert sorted(tuple(row) for row in rows) == [(i, f"s{i}!") for i in range(40)]
    assert next(fn for fn in registered_functions(spark) if fn.name == "fallback_fn").protocol == "rows"


def test_the_function_does_not_need_the_tests_module_on_the_workers(spark, table):
    # _double_ids lives in this test module, which Ray's workers cannot import (their sys.path has no
    # tests/ folder; tests/test_user_modules.py checks that): it travels by value.
    register_function(spark, "by_value", _double_ids, "id long, s string, m map<string,long>", kind="arrow")
    assert spark.sql("SELECT max(id) AS top FROM by_value(TABLE(registered_t))").first().top == 78


@pytest.mark.skipif(HAS_UDTF_ANALYZE, reason="this pyspark has UDTF analyze: the generic table function works")
def test_before_pyspark_4_the_generic_function_names_what_is_missing(spark):
    with pytest.raises(
        SparkVersionError, match=r"needs pyspark >= 4\.0 \(this is pyspark 3\.5\.\d+\)\. .*register_function"
    ):
        spark_ray.register(spark)
