"""The pyjava API as Byzer's docs use it, from script code strings, on real Spark and Ray.

`RayContext.to_pandas()`, `to_dataset().to_dask()` (dask is not installed here: the
error must name it), `data_servers()` with `RayContext.collect_from` inside
`@ray.remote` + `@rayfix.last` tasks, `connect(globals(), url=...)`, and the
output helpers `build_result_from_dataframe` and `log_client.log_to_driver`.
"""

from __future__ import annotations

import importlib.util
import textwrap

import pytest

from sql_ext import ScriptError, run_script

DATA = """
set rows='''
{"a": 5.1, "b": 3.5},
{"a": 4.9, "b": 3.0},
{"a": 4.7, "b": 3.2},
{"a": 4.6, "b": 3.1}
''';
load jsonStr.`rows` as sample_data;
!tableRepartition _ -i sample_data -num 2 -o sample_parts;
!python conf "dataMode=model";
"""


pytestmark = pytest.mark.usefixtures("fresh_script_session")  # conftest.py


def run(spark, code, schema, run_in="driver", table="sample_parts", extra=""):
    text = DATA + f'!python conf "runIn={run_in}";\n!python conf "schema={schema}";\n{extra}'
    text += f'run command as Ray.`` where inputTable="{table}" and outputTable="out" and code=\'\'\'\n'
    text += textwrap.dedent(code) + "\n''';"
    return run_script(spark, text)["out"]


def rows(df):
    return sorted(tuple(row) for row in df.collect())


@pytest.mark.parametrize("run_in", ["driver", "executor"])
def test_to_pandas_is_the_whole_table(spark, run_in):
    code = """
    from pyjava.api.mlsql import RayContext
    ray_context = RayContext.connect(globals(), None)
    data = ray_context.to_pandas()
    context.build_result([{"n": len(data), "total": float(round(data["a"].sum(), 6)), "cols": ",".join(data.columns)}])
    """
    assert rows(run(spark, code, "n long, total double, cols string", run_in)) == [(4, 19.3, "a,b")]


def test_collect_from_reads_data_servers_inside_ray_tasks(spark):
    code = """
    import ray
    from pyjava import rayfix
    from pyjava.api.mlsql import RayContext

    ray_context = RayContext.connect(globals(), url="local")

    @ray.remote
    @rayfix.last
    def handle_record(servers):
        shard = servers[0].index
        return [{"shard": shard, "x": row["a"], "y": row["b"], "server": str(servers[0])} for row in RayContext.collect_from(servers)]

    servers = ray_context.data_servers()
    per_shard = ray.get([handle_record.remote([server]) for server in servers])
    everything = list(RayContext.collect_from(servers))
    one_at_a_time = [row for server in servers for row in RayContext.collect_from(server)]
    assert everything == one_at_a_time and len(per_shard) == len(servers) == 2
    context.build_result(row for shard in per_shard for row in shard)
    """
    # Two rows per shard: the table is served as two shards, as Byzer serves one per partition.
    schema = "st(field(shard,long),field(x,double),field(y,double),field(server,string))"
    out = run(spark, code, schema, extra='!python conf "batchRows=2";\n').collect()
    assert sorted((row.x, row.y) for row in out) == [(4.6, 3.1), (4.7, 3.2), (4.9, 3.0), (5.1, 3.5)]
    assert sorted(row.shard for row in out) == [0, 0, 1, 1]  # two shards, each read by its own task
    assert all(row.server.startswith("127.0.0.1:") for row in out)  # str(handle) is host:port, as in pyjava


def test_collect_from_wants_data_server_handles(spark):
    code = """
    from pyjava.api.mlsql import RayContext
    ray_context = RayContext.connect(globals(), None)
    list(RayContext.collect_from(["127.0.0.1:1234"]))
    """
    with pytest.raises(ScriptError) as caught:
        run(spark, code, "n long")
    assert "collect_from expects handles from ray_context.data_servers(), got str" in caught.value.description
    assert caught.value.fragment == 'list(RayContext.collect_from(["127.0.0.1:1234"]))'


@pytest.mark.skipif(importlib.util.find_spec("dask") is not None, reason="dask is installed: to_dask works")
def test_to_dask_without_dask_names_the_package(spark):
    code = """
    from pyjava.api.mlsql import RayContext
    ray_context = RayContext.connect(globals(), "local")
    dataset = ray_context.to_dataset()
    assert dataset.count() == 4
    df = dataset.to_dask()
    """
    with pytest.raises(ScriptError) as caught:
        run(spark, code, "n long")
    description = caught.value.description
    assert "ModuleNotFoundError: to_dask() needs the 'dask' package" in description
    assert "pip install 'dask[dataframe]'" in description and "ray_context.to_pandas()" in description
    assert caught.value.fragment == "df = dataset.to_dask()"


def test_build_result_from_dataframe_and_log_to_driver(spark, capfd):
    code = """
    from pyjava.api.mlsql import RayContext
    ray_context = RayContext.connect(globals(), None)
    df = ray_context.to_pandas()
    context.log_client.log_to_driver(f"rows: {len(df)}")
    summary = df.assign(big=df["a"] > 4.8).groupby("big", as_index=False).agg(n=("a", "count"))
    ray_context.build_result_from_dataframe(summary[["n", "big"]])
    """
    out = run(spark, code, "st(field(big,boolean),field(n,long))")
    assert rows(out) == [(False, 2), (True, 2)]  # columns matched by name, not position
    assert "rows: 4" in capfd.readouterr().err
