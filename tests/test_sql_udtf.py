"""The Spark SQL table function: SELECT * FROM ray_transform(TABLE(t), '<code>', '<schema>'[, '<options>'])."""

from __future__ import annotations

import pytest
from pyspark.errors import AnalysisException, PythonException

from spark_ray import set_session_conf
from spark_ray.schema import parse_schema
from sql_ext import register

SEED_ROWS = [(9, "1", 0.0), (10, "2", 0.0), (11, "中国", 0.0), (12, "e", 0.0), (13, "5", 0.0), (14, "4", 0.0)]
SEED_SCHEMA = "st(field(id,long),field(content,string),field(label,double))"

# Seed 000's data-mode code, with the embedded Ray as its address.
ECHO_CODE = """
from pyjava.api.mlsql import RayContext
ray_context = RayContext.connect(context, "local")
def echo(rows):
    for row in rows:
        yield row
ray_context.map_iter(echo)
"""
WHERE_CODE = """
import os, sys
from pyjava.api.mlsql import RayContext
ray_context = RayContext.connect(context, "local")
ray_context.foreach(lambda row: {"id": row["id"], "where": os.path.basename(sys.argv[0])})
"""
RAY_WORKER = "default_worker.py"

pytestmark = pytest.mark.needs_spark4(
    reason="the generic ray_transform table function takes its schema per query, through a UDTF's analyze"
)


@pytest.fixture(scope="module")
def seed(spark):
    df = spark.createDataFrame(SEED_ROWS, "id long, content string, label double").repartition(2)
    df.createOrReplaceTempView("udtf_seed")
    register(spark)
    return df


def rows(df):
    return sorted(tuple(row) for row in df.collect())


def test_seed_rows_come_back_intact_through_ray(spark, seed):
    out = spark.sql(f"SELECT * FROM ray_transform(TABLE(udtf_seed), :code, '{SEED_SCHEMA}')", args={"code": ECHO_CODE})
    assert out.schema == parse_schema(SEED_SCHEMA)
    assert rows(out) == SEED_ROWS


def test_code_and_ddl_schema_as_plain_sql_literals(spark, seed):
    code = (
        "from pyjava.api.mlsql import RayContext\\n"
        'rc = RayContext.connect(context, "local")\\n'
        'rc.foreach(lambda row: {"id": row["id"] * 2, "tag": row["content"] + "!"})'
    )
    out = spark.sql(
        f"SELECT id, tag FROM ray_transform(TABLE(udtf_seed), '{code}', 'id long, tag string') WHERE id > 20"
    )
    assert rows(out) == [(22, "中国!"), (24, "e!"), (26, "5!"), (28, "4!")]


def test_options_choose_the_engine_and_partitioning(spark, seed):
    query = "SELECT * FROM ray_transform(TABLE(udtf_seed), :code, 'id long, where string', :options)"
    on_ray = spark.sql(query, args={"code": WHERE_CODE, "options": "num_cpus=1"})
    assert on_ray.rdd.getNumPartitions() == 2  # one function instance per input partition
    assert {row.where for row in on_ray.collect()} == {RAY_WORKER}

    one_stream = spark.sql(query, args={"code": WHERE_CODE, "options": "runIn=driver;num_gpus=0"})
    assert one_stream.rdd.getNumPartitions() == 1  # runIn=driver: a single instance streams the table
    assert sorted(row.id for row in one_stream.collect()) == [r[0] for r in SEED_ROWS]

    no_ray = spark.sql(query, args={"code": WHERE_CODE, "options": '{"pythonMode": "python", "batchRows": 2}'})
    collected = no_ray.collect()
    assert sorted(row.id for row in collected) == [r[0] for r in SEED_ROWS]
    assert RAY_WORKER not in {row.where for row in collected}


def test_json_schema_and_the_session_schema(spark, seed):
    as_json = parse_schema("id long, where string").json()
    out = spark.sql(
        "SELECT * FROM ray_transform(TABLE(udtf_seed), :code, :schema)", args={"code": WHERE_CODE, "schema": as_json}
    )
    assert out.columns == ["id", "where"]
    # Without a schema argument, the session's schema (as of register) is used.
    set_session_conf(spark, schema="st(field(id,long),field(where,string))", pythonMode="python")
    register(spark, "ray_transform_session")
    out = spark.sql("SELECT * FROM ray_transform_session(TABLE(udtf_seed), :code)", args={"code": WHERE_CODE})
    assert sorted(row.id for row in out.collect()) == [r[0] for r in SEED_ROWS]
    assert RAY_WORKER not in {row.where for row in out.collect()}


@pytest.mark.parametrize(
    "arguments, words",
    [
        ("TABLE(udtf_seed), :code, 'id long', 'runin2=driver'", "Did you mean 'run_in'"),
        ("TABLE(udtf_seed), :code, 'st(field(id,lon))'", "SchemaParseError"),
        ("TABLE(udtf_seed), :code, 'id long', 'dataMode=model'", "dataMode=data only"),
        ("TABLE(udtf_seed), 'x = 1', 'id long'", "declared no function"),
    ],
)
def test_mistakes_fail_at_analysis(spark, seed, arguments, words):
    with pytest.raises(AnalysisException) as caught:
        spark.sql(f"SELECT * FROM ray_transform({arguments})", args={"code": ECHO_CODE})
    assert words in str(caught.value)


def test_user_code_errors_keep_their_traceback(spark, seed):
    code = """
from pyjava.api.mlsql import RayContext
ray_context = RayContext.connect(context, "local")
def boom(row):
    return {"id": row["id"] // 0}
ray_context.foreach(boom)
"""
    with pytest.raises(PythonException) as caught:
        spark.sql("SELECT * FROM ray_transform(TABLE(udtf_seed), :code, 'id long')", args={"code": code}).collect()
    message = str(caught.value)
    assert "ZeroDivisionError" in message and 'return {"id": row["id"] // 0}' in message


def test_spark_ray_register_is_the_documented_door(spark, seed):
    import spark_ray

    spark_ray.register(spark, "ray_transform_from_spark_ray")
    out = spark.sql(f"SELECT * FROM ray_transform_from_spark_ray(TABLE(udtf_seed), :code, '{SEED_SCHEMA}')",
                    args={"code": ECHO_CODE})  # fmt: skip
    assert rows(out) == SEED_ROWS


SHARD_CODE = """
from pyjava.api.mlsql import RayContext
ray_context = RayContext.connect(context, "local")
def tag_with_shard(rows):
    rows = list(rows)
    for row in rows:
        yield {"id": row["id"], "shard_first": rows[0]["id"], "shard_rows": len(rows)}
ray_context.map_iter(tag_with_shard)
"""


def test_a_big_partition_goes_to_ray_in_shards_while_rows_still_arrive(spark):
    """A partition smaller than batch_bytes once went to Ray as one shard after its last row: no overlap."""
    from spark_ray.table_function import ROW_SHARD_ROWS

    total = 2 * ROW_SHARD_ROWS + 5_000
    spark.range(total).coalesce(1).createOrReplaceTempView("udtf_one_big_partition")
    register(spark)
    out = spark.sql(
        "SELECT * FROM ray_transform(TABLE(udtf_one_big_partition), :code, "
        "'id long, shard_first long, shard_rows long')",
        args={"code": SHARD_CODE},
    ).collect()
    assert [row.id for row in out] == list(range(total))  # every row once, in input order
    shards = sorted({(row.shard_first, row.shard_rows) for row in out})
    assert len(shards) >= 3
    assert max(rows for _, rows in shards) <= ROW_SHARD_ROWS
    assert sum(rows for _, rows in shards) == total


FAN_OUT_CODE = """
from pyjava.api.mlsql import RayContext
ray_context = RayContext.connect(context, "local")
ray_context.foreach(lambda row: [{"id": row["id"], "copy": copy} for copy in range(10)])
"""


def test_a_function_returning_many_rows_per_row_gets_every_row_in_order(spark):
    """Results leave a few per eval call; a fan-out past MAX_WAITING_ROWS makes the excess leave at once."""
    from spark_ray.table_function import MAX_WAITING_ROWS

    total = MAX_WAITING_ROWS // 10 + 5_000
    spark.range(total).coalesce(1).createOrReplaceTempView("udtf_fan_out")
    register(spark)
    out = spark.sql(
        "SELECT * FROM ray_transform(TABLE(udtf_fan_out), :code, 'id long, copy long')", args={"code": FAN_OUT_CODE}
    ).collect()
    assert [(row.id, row.copy) for row in out] == [(i, copy) for i in range(total) for copy in range(10)]


def test_rows_waiting_for_their_batch_are_left_alone_by_the_garbage_collector():
    """`eval` keeps each row as a plain tuple until its batch is full. pyspark's Row (a tuple subclass with
    a __dict__) stays tracked by Python's cyclic collector for its whole life, and a batch of them made
    every collection walk them all: 1.76x the UDTF floor, against 1.21x with tuples (BENCHMARKS.md,
    "Round 3"). Plain tuples of plain values leave the collector's lists after one collection."""
    import gc

    from pyspark.sql import Row

    from spark_ray.table_function import Registration, _Plan, _table_function_class

    handler = _table_function_class(Registration())(_Plan(schema=parse_schema("id long, content string")))
    handler.rows_per_batch = 100  # more than this test gives it: eval only gathers
    rows = [Row(id=i, content=str(i)) for i in range(5)]
    for row in rows:
        assert list(handler.eval(row, ECHO_CODE)) == []

    gc.collect()
    assert handler.pending == [(i, str(i)) for i in range(5)]
    assert [type(row) for row in handler.pending] == [tuple] * 5
    assert not any(gc.is_tracked(row) for row in handler.pending)
    assert all(gc.is_tracked(row) for row in rows), "pyspark's Rows are tracked: the reason eval copies them"
