"""The pyjava API as Byzer's docs use it, from script code strings, on real Spark and Ray.

`RayContext.to_pandas()`, `to_dataset().to_dask()` (dask is not installed here: the
error must name it), `data_servers()` with `RayContext.collect_from` inside
`@ray.remote` + `@rayfix.last` tasks, `connect(globals(), url=...)`, and the
output helpers `build_result_from_dataframe` and `log_client.log_to_driver`.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

import spark_ray
import spark_ray.pyjava
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


# One code file for both halves: run alone it reads mock_data, in a script it reads the table.
STANDALONE_CODE = """
from pyjava.api.mlsql import RayContext

ray_context = RayContext.connect(globals(), None)
if not ray_context.is_in_mlsql:
    ray_context.mock_data = [{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 4.0}]


def total(row):
    return {"total": row["a"] + row["b"], "in_mlsql": ray_context.is_in_mlsql}


made = ray_context.foreach(total)
if not ray_context.is_in_mlsql:
    print("alone:", made, ray_context.collect())
"""


def test_code_file_runs_alone_on_mock_data(tmp_path):
    path = tmp_path / "job.py"
    path.write_text(STANDALONE_CODE, encoding="utf-8")
    root = os.path.dirname(os.path.dirname(os.path.abspath(spark_ray.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([spark_ray.pyjava.standalone_path(), root]))
    result = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "alone: [{'total': 3.0, 'in_mlsql': False}, {'total': 7.0, 'in_mlsql': False}] "
        "[{'a': 1.0, 'b': 2.0}, {'a': 3.0, 'b': 4.0}]"
    )


def test_same_code_file_in_a_script_reads_the_table(spark):
    text = DATA.replace('!python conf "dataMode=model";', '!python conf "dataMode=data";')
    text += '!python conf "schema=st(field(total,double),field(in_mlsql,boolean))";\n'
    text += f"!ray on sample_parts '''{STANDALONE_CODE}''' named out;"
    made = [(round(total, 6), in_mlsql) for total, in_mlsql in rows(run_script(spark, text)["out"])]
    assert made == [(7.7, True), (7.9, True), (7.9, True), (8.6, True)]


def test_standalone_model_mode_output_is_kept(tmp_path):
    path = tmp_path / "model.py"
    path.write_text(
        "from pyjava.api.mlsql import RayContext\n"
        "ray_context = RayContext.connect(globals(), None)\n"
        "ray_context.mock_data = [{'a': 1}, {'a': 2}]\n"
        "context.build_result(({'a2': row['a'] * 2} for row in ray_context.collect()), 1024)\n"
        "print(context.output()[0].to_pylist(), ray_context.to_pandas()['a'].sum())\n",
        encoding="utf-8",
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(spark_ray.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([spark_ray.pyjava.standalone_path(), root]))
    result = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[{'a2': 2}, {'a2': 4}] 3"


# pyjava's public methods, as pyjava's own source declares them (byzer-org/byzer-python,
# python/pyjava/api/mlsql.py): (parameters after self, with defaults). spark-ray's must accept the same calls.
PYJAVA_SIGNATURES = {
    ("PythonContext", "set_output"): "(value, schema='')",
    ("PythonContext", "build_chunk_result"): "(items, block_size=1024)",
    ("PythonContext", "build_result"): "(items, block_size=1024)",
    ("PythonContext", "build_result_from_dir"): "(target_dir, block_size=1024)",
    ("PythonContext", "output"): "()",
    ("PythonContext", "noops_fetch"): "()",
    ("PythonContext", "fetch_once_as_dataframe"): "()",
    ("PythonContext", "fetch_once_as_rows"): "()",
    ("PythonContext", "fetch_once_as_batch_rows"): "()",
    ("PythonContext", "fetch_once"): "()",
    ("PythonContext", "fetch_as_dir"): "(target_dir)",
    ("RayContext", "data_servers"): "()",
    ("RayContext", "conf"): "()",
    ("RayContext", "data_servers_in_ray"): "()",
    ("RayContext", "build_servers_in_ray"): "()",
    ("RayContext", "connect"): "(_context, url=None, **kwargs)",  # pyjava's url has no default
    ("RayContext", "setup"): "(func_for_row, func_for_rows=None)",
    ("RayContext", "foreach"): "(func_for_row)",
    ("RayContext", "map_iter"): "(func_for_rows)",
    ("RayContext", "collect"): "()",
    ("RayContext", "fetch_as_dir"): "(target_dir, servers=None)",
    ("RayContext", "build_result"): "(items, block_size=1024)",
    ("RayContext", "build_result_from_dataframe"): "(df)",
    ("RayContext", "build_result_from_dir"): "(target_path)",
    ("RayContext", "parse_servers"): "(host_ports)",
    ("RayContext", "fetch_as_repeatable_file"): "(context_id, data_servers, file_ref, batch_size)",
    ("RayContext", "collect_as_file"): "(batch_size)",
    ("RayContext", "collect_from"): "(servers)",
    ("RayContext", "to_pandas"): "()",
    ("RayContext", "to_dataset"): "(num_tables_per_block=1)",
    ("RayContext", "fetch_once_as_rows"): "(data_server)",
    ("RayContext", "fetch_data_from_single_data_server"): "(data_server)",
    ("RayContext", "fetch_data_from_single_data_server_as_arrow"): "(data_server)",
    ("LogClient", "log_to_driver"): "(msg)",
    ("LogClient", "close"): "()",
}


def parameters_of(function):
    """``(a, b=1, **kw)``: names and defaults, without annotations, ``self`` or ``cls``."""
    shown = []
    for name, parameter in inspect.signature(function).parameters.items():
        if name in ("self", "cls"):
            continue
        if parameter.kind is parameter.VAR_KEYWORD:
            shown.append(f"**{name}")
        elif parameter.default is parameter.empty:
            shown.append(name)
        else:
            shown.append(f"{name}={parameter.default!r}")
    return "(" + ", ".join(shown) + ")"


README_TEXT = (pathlib.Path(__file__).resolve().parents[1] / "sql_ext" / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(("cls", "method"), sorted(PYJAVA_SIGNATURES))
def test_pyjava_method_takes_pyjava_parameters(cls, method):
    from spark_ray import context as ours

    function = getattr(getattr(ours, cls), method)
    assert parameters_of(function) == PYJAVA_SIGNATURES[(cls, method)]
    assert f"{method}(" in README_TEXT, f"sql_ext/README.md does not list {cls}.{method}"
