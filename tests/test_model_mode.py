"""Model mode and the pyjava context: the code runs once, reads shards, sets the output."""

from __future__ import annotations

import builtins
import socket
import warnings

import pandas as pd
import pyarrow as pa
import pytest
from pyspark.errors import PythonException

from spark_ray import ResultSchemaError, UserCodeError, ray_transform
from spark_ray.context import RayContext

SEED_ROWS = [(9, "1", 0.0), (10, "2", 0.0), (11, "中国", 0.0), (12, "e", 0.0), (13, "5", 0.0), (14, "4", 0.0)]

# Seed 000's model-mode code, unchanged but for the address (an old cluster IP there).
SEED_000_MODEL_CODE = """

import pandas as pd
import numpy as np
import os
from pyjava import rayfix
from pyjava.api.mlsql import RayContext
import ray
import sys

ray_context = RayContext.connect(context,"127.0.0.1:30312")

## 这里你可以启动ray的一个task进行模型训练啥的
@ray.remote
@rayfix.last
def echo(item):
    return item
echo_res = echo.remote("jack")
print(ray.get(echo_res))

## 下面是通过较为底层的API获取数据，用户可以使用ray的task并行完成：

rows = []
for shard in ray_context.data_servers():    
    for item in ray_context.fetch_once_as_rows(shard):
        rows.append(item)

## 设置结果返回给系统
context.set_output([[
pd.Series([1, 2, 3, 4]),
pd.Series([2.0, 3.0, 4.0, 5.0])
]])

## data_manager.set_output([])

"""

RUN_INS = ["driver", "executor"]


@pytest.fixture(scope="module")
def seed_df(spark):
    return spark.createDataFrame(SEED_ROWS, "id long, content string, label double").repartition(3)


@pytest.mark.parametrize("run_in", RUN_INS)
def test_seed_000_model_script(seed_df, run_in, capfd):
    with pytest.warns(UserWarning, match="connects to '127.0.0.1:30312', but ray_address='local'"):
        out = ray_transform(seed_df, SEED_000_MODEL_CODE, "st(field(id,long),field(label,double))",
                            mode="model", run_in=run_in, ray_address="local")  # fmt: skip
    assert [tuple(r) for r in out.orderBy("id").collect()] == [(1, 2.0), (2, 3.0), (3, 4.0), (4, 5.0)]
    if run_in == "driver":  # Spark workers print to the JVM's stderr, which capfd cannot see
        assert "jack" in capfd.readouterr().out  # the code's print reached the console


@pytest.mark.parametrize("run_in", RUN_INS)
def test_model_reads_every_shard_in_ray_tasks(seed_df, run_in):
    code = """
import ray
from pyjava.api.mlsql import RayContext
ray_context = RayContext.connect(context, "local")

@ray.remote
def summarize(shard):
    rows = list(RayContext.fetch_once_as_rows(shard))   # the class-level call users make in tasks
    return [(r["id"], r["content"]) for r in rows]

shards = ray_context.data_servers()
assert all(str(s) == f"{s.host}:{s.port}" for s in shards)
parts = ray.get([summarize.remote(s) for s in shards])
context.build_result({"id": i, "content": c} for part in parts for i, c in part)
"""
    out = ray_transform(seed_df, code, "id long, content string", mode="model", run_in=run_in, batch_rows=2)
    assert sorted(map(tuple, out.collect())) == [(i, c) for i, c, _ in SEED_ROWS]


def test_model_callable_gets_the_context_and_may_return_a_frame(seed_df):
    def train(context):
        ray_context = RayContext.connect(context, "local")
        table = ray_context.to_pandas()
        return pd.DataFrame({"n": [len(table)], "total": [float(table["id"].sum())]})

    out = ray_transform(seed_df, train, "n long, total double", mode="model", run_in="driver")
    assert tuple(out.first()) == (6, sum(i for i, _, _ in SEED_ROWS) * 1.0)


def test_collect_to_dataset_batches_and_fetch_once(seed_df):
    code = """
from pyjava.api.mlsql import RayContext
ray_context = RayContext.connect(context, "local")
collected = sorted(r["id"] for r in ray_context.collect())
dataset_ids = sorted(ray_context.to_dataset().to_pandas()["id"].tolist())
batch_rows = sum(b.num_rows for s in ray_context.data_servers() for b in ray_context.fetch_once_as_batches(s))
once = sorted(r["id"] for r in data_manager.fetch_once())
assert collected == dataset_ids == once, (collected, dataset_ids, once)
data_manager.set_output([[collected, [batch_rows] * len(collected)]])
"""
    out = ray_transform(seed_df, code, "id long, rows long", mode="model", run_in="driver")
    assert sorted(map(tuple, out.collect())) == [(i, 6) for i, _, _ in SEED_ROWS]


def test_model_without_output_says_so(seed_df):
    code = "from pyjava.api.mlsql import RayContext\nray_context = RayContext.connect(context, 'local')\n"
    with pytest.raises(UserCodeError, match="model-mode code set no output: call context.set_output"):
        ray_transform(seed_df, code, "id long", mode="model", run_in="driver")


def test_set_output_column_count_shows_both(seed_df):
    code = "context.set_output([[[1, 2], [3, 4], [5, 6]]])\n"
    with pytest.raises(UserCodeError) as caught:
        ray_transform(seed_df, code, "id long, label double", mode="model", run_in="driver")
    assert "set_output got 3 columns, but the schema has 2 columns ['id', 'label']" in str(caught.value)


def test_set_output_matches_names_else_positions(seed_df):
    by_name = lambda ctx: ctx.set_output(pd.DataFrame({"label": [0.5], "id": [7]}))  # noqa: E731
    by_position = lambda ctx: ctx.set_output(pa.table({"a": [8], "b": [1.5]}))  # noqa: E731
    for fn, expected in ((by_name, (7, 0.5)), (by_position, (8, 1.5))):
        out = ray_transform(seed_df, fn, "id long, label double", mode="model", run_in="driver")
        assert tuple(out.first()) == expected


def test_model_failure_shows_the_users_line(seed_df):
    code = "x = 1\nraise ValueError('bad model ' + str(x))\n"
    for run_in in RUN_INS:
        with pytest.raises((UserCodeError, PythonException)) as caught:
            ray_transform(seed_df, code, "id long", mode="model", run_in=run_in)
        assert "raised ValueError: bad model 1" in str(caught.value)
        assert "line 2, in <module>" in str(caught.value)


def test_data_mode_functions_are_refused_in_model_mode(seed_df):
    code = "from pyjava.api.mlsql import RayContext\nRayContext.connect(context, 'local').foreach(lambda r: r)\n"
    with pytest.raises(UserCodeError, match="declare a data-mode function, but this job runs in model mode"):
        ray_transform(seed_df, code, "id long", mode="model", run_in="driver")


def _port_is_closed(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(2)
        return probe.connect_ex((host, port)) != 0


def test_data_servers_close_after_success_and_after_failure(seed_df):
    keep = """
import builtins
from pyjava.api.mlsql import RayContext
builtins._spark_ray_test_servers = [(s.host, s.port) for s in RayContext.connect(context, "local").data_servers()]
"""
    try:
        ray_transform(seed_df, keep + "context.set_output([[[1]]])\n", "id long", mode="model", run_in="driver")
        served = builtins._spark_ray_test_servers
        assert served and all(_port_is_closed(host, port) for host, port in served)
        with pytest.raises(UserCodeError, match="boom"):
            ray_transform(seed_df, keep + "raise RuntimeError('boom')\n", "id long", mode="model", run_in="driver")
        served_on_failure = builtins._spark_ray_test_servers
        assert served_on_failure != served and all(_port_is_closed(host, port) for host, port in served_on_failure)
    finally:
        del builtins._spark_ray_test_servers


@pytest.mark.parametrize("run_in", RUN_INS)
def test_settings_do_not_leak_between_jobs(seed_df, run_in):
    """Byzer kept the first job's settings in reused workers; each job here sees only its own."""
    first = """
import os
from pyjava.api.mlsql import RayContext
def tag(row):
    return {"id": row["id"], "leak": os.environ.get("SPARK_RAY_LEAK", "unset")}
RayContext.connect(context, "local").foreach(tag)
"""
    second = first.replace('"leak"', '"seen"')
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = ray_transform(
            seed_df, first, "id long, leak string", run_in=run_in, python_env="export SPARK_RAY_LEAK=first-job"
        )
        assert {r.leak for r in one.collect()} == {"first-job"}
        two = ray_transform(seed_df, second, "id long, seen string", run_in=run_in)
        assert two.schema.fieldNames() == ["id", "seen"]
        assert {r.seen for r in two.collect()} == {"unset"}


@pytest.mark.parametrize("run_in", RUN_INS)
def test_same_job_twice_in_quick_succession(seed_df, run_in):
    results = [
        sorted(r.id for r in ray_transform(seed_df, SEED_000_MODEL_CODE, "id long, label double", mode="model",
                                           run_in=run_in, ray_address="local").collect())
        for _ in range(2)
    ]  # fmt: skip
    assert results == [[1, 2, 3, 4], [1, 2, 3, 4]]


def test_result_schema_error_from_set_output(seed_df):
    with pytest.raises(ResultSchemaError, match="column 'id' expects long"):
        ray_transform(seed_df, lambda ctx: ctx.set_output([[["x"]]]), "id long", mode="model", run_in="driver")


@pytest.mark.parametrize("run_in", RUN_INS)
def test_batch_api_arrow_in_arrow_out(seed_df, run_in):
    code = """
import pyarrow.compute as pc
from pyjava.api.mlsql import RayContext
ray_context = RayContext.connect(context, "local")
def doubled(batches):
    for batch in batches:
        yield batch.set_column(2, "label", pc.add(batch.column("id"), batch.column("id")))
ray_context.build_result_from_batches(doubled(ray_context.collect_batches()))
"""
    out = ray_transform(seed_df, code, "id long, content string, label long", mode="model", run_in=run_in)
    assert out.schema.simpleString() == "struct<id:bigint,content:string,label:bigint>"
    assert sorted(map(tuple, out.collect())) == [(i, c, 2 * i) for i, c, _ in SEED_ROWS]


def test_batch_api_names_the_missing_column(seed_df):
    code = """
from pyjava.api.mlsql import RayContext
ray_context = RayContext.connect(context, "local")
ray_context.build_result_from_batches(b.select(["id"]) for b in ray_context.collect_batches())
"""
    with pytest.raises(UserCodeError) as caught:
        ray_transform(seed_df, code, "id long, score double", mode="model", run_in="driver")
    assert "returned 1 columns ['id'], but the schema has 2 columns ['id', 'score']" in str(caught.value)
    assert "line 4" in str(caught.value)  # the user's line that set the output


@pytest.mark.parametrize("run_in", RUN_INS)
def test_to_dataset_reads_the_shards_as_ray_data_runs(seed_df, run_in):
    code = """
from pyjava.api.mlsql import RayContext
ray_context = RayContext.connect(context, "local")
dataset = ray_context.to_dataset()
assert repr(dataset).startswith("shape: (?,"), repr(dataset)  # rows unknown: nothing read until consumed
tagged = dataset.map_batches(lambda b: {"id": b["id"], "twice": b["id"] * 2}, batch_format="numpy")
ray_context.build_result_from_batches(tagged.iter_batches(batch_format="pyarrow"))
"""
    out = ray_transform(seed_df, code, "id long, twice long", mode="model", run_in=run_in, batch_rows=2)
    assert sorted(map(tuple, out.collect())) == [(i, 2 * i) for i, _, _ in SEED_ROWS]


def test_to_pandas_gives_maps_as_dicts_like_the_pandas_kind(spark):
    df = spark.createDataFrame([(1, {"a": 1}), (2, {})], "id long, m map<string,long>")

    def program(context):
        frame = RayContext.connect(context, "local").to_pandas()
        return pd.DataFrame({"id": frame["id"], "kind": [type(m).__name__ for m in frame["m"]]})

    out = ray_transform(df, program, "id long, kind string", mode="model", run_in="driver")
    assert sorted(map(tuple, out.collect())) == [(1, "dict"), (2, "dict")]
