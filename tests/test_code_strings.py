"""Code strings in the pyjava style, as Byzer users wrote them (seeds 000 and 001)."""

from __future__ import annotations

import sys
import types
import warnings

import pytest

from spark_ray import ray_transform

SEED_000_DATA_CODE = """

from pyjava.api.mlsql import RayContext

ray_context = RayContext.connect(context,"127.0.0.1:10579")

## 一条一条处理
def echo(row):
    return row

ray_context.setup(echo)
ray_context.foreach(echo) # pyjava >= 0.2.6.1

## 或者一个shard一个shard处理，pyjava >= 0.2.6.1
def echo(rows):
    for row in rows:
        yield row

ray_context.map_iter(echo)


"""

SEED_001_CODE = """
from pyjava.api.mlsql import PythonContext,RayContext

# type hint
context:PythonContext = context

ray_context = RayContext.connect(globals(),"127.0.0.1:10001")

def echo(row):
    row1 = {}
    row1["ProductName"]=str(row['Busn_A'])+'_jackm'
    row1["SubProduct"] = str(row['Busn_B'])+'_product'
    return row1

ray_context.foreach(echo)
"""

SEED_001_ROWS = [(114, 57), (55, 134), (27, 137), (101, 129), (125, 145), (27, 60), (105, 49)]


@pytest.fixture(scope="module")
def seed_table(spark):
    rows = [(9, "1", 0.0), (10, "2", 0.0), (11, "中国", 0.0), (12, "e", 0.0), (13, "5", 0.0), (14, "4", 0.0)]
    return spark.createDataFrame(rows, "id long, content string, label double")


@pytest.mark.parametrize("run_in", ["executor", "driver"])
def test_seed_000_data_mode_code_runs(seed_table, run_in):
    # The code names an old cluster address; the given ray_address wins, with one warning.
    with pytest.warns(UserWarning, match="the code string connects to '127.0.0.1:10579', but ray_address='local'"):
        out = ray_transform(
            seed_table, SEED_000_DATA_CODE, "st(field(id,long),field(content,string),field(label,double))",
            run_in=run_in, ray_address="local",
        )  # fmt: skip
    assert sorted(map(tuple, out.collect())) == sorted(map(tuple, seed_table.collect()))


@pytest.mark.parametrize("run_in", ["executor", "driver"])
def test_seed_001_run_command_code_runs(spark, run_in):
    data = spark.createDataFrame(SEED_001_ROWS, "Busn_A long, Busn_B long")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = ray_transform(
            data, SEED_001_CODE, "st(field(ProductName,string),field(SubProduct,string))",
            run_in=run_in, ray_address="local",
        )  # fmt: skip
    assert sorted(map(tuple, out.collect())) == sorted((f"{a}_jackm", f"{b}_product") for a, b in SEED_001_ROWS)


def test_address_in_code_is_used_when_none_is_given(seed_table):
    code = SEED_000_DATA_CODE.replace('"127.0.0.1:10579"', '"local"')
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no override, so no warning
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # pyspark 3.5's own (distutils)
        out = ray_transform(seed_table, code, "id long")
    assert sorted(r.id for r in out.collect()) == [9, 10, 11, 12, 13, 14]


def test_connect_with_no_address_runs_without_ray(seed_table):
    code = """
from pyjava.api.mlsql import RayContext
ray_context = RayContext.connect(context, None)
def where(row):
    import ray
    return {"id": row["id"], "in_ray_task": ray.is_initialized() and ray.get_runtime_context().get_task_id() is not None}
ray_context.foreach(where)
"""
    out = ray_transform(seed_table, code, "id long, in_ray_task boolean")
    assert {r.in_ray_task for r in out.collect()} == {False}


def test_real_pyjava_package_is_not_shadowed(seed_table):
    real = types.ModuleType("pyjava")
    real.MARK = "the user's own pyjava"
    sys.modules["pyjava"] = real
    try:
        code = """
import pyjava
from pyjava.api.mlsql import RayContext
from pyjava import rayfix
assert not hasattr(pyjava, "MARK"), "code strings must get spark-ray's pyjava"
ray_context = RayContext.connect(context, "local")
@rayfix.last
def echo(row):
    return row
ray_context.foreach(echo)
"""
        out = ray_transform(seed_table, code, "id long")
        assert len(out.collect()) == 6
        assert sys.modules["pyjava"] is real and real.MARK == "the user's own pyjava"
    finally:
        del sys.modules["pyjava"]


def test_context_exposes_the_jobs_options(seed_table):
    code = """
from pyjava.api.mlsql import RayContext
assert context.conf["run_in"] == "driver" and context.conf["kind"] == "row", context.conf
assert data_manager is context
ray_context = RayContext.connect(globals(), "local")
ray_context.foreach(lambda row: {"id": row["id"]})
"""
    out = ray_transform(seed_table, code, "id long", run_in="driver")
    assert sorted(r.id for r in out.collect()) == [9, 10, 11, 12, 13, 14]


@pytest.mark.parametrize(
    "call, address",
    [
        ('RayContext.connect(globals(), "127.0.0.1:10001")', "127.0.0.1:10001"),
        ('RayContext.connect(context, address="local")', "local"),
        ('RayContext.connect(globals(), url="127.0.0.1:10001")', "127.0.0.1:10001"),
        ("RayContext.connect(context, None)", None),
    ],
)
def test_the_address_a_model_code_string_connects_to_is_read_from_its_source(call, address):
    from spark_ray.code_string import requested_address_in

    assert requested_address_in(f"from pyjava.api.mlsql import RayContext\nrc = {call}\n") == address
