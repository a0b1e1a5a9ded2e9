"""Scripts run in-process on the shared SparkSession: every statement, the session scope of settings, errors."""

from __future__ import annotations

import json
import uuid

import pytest

from spark_ray import get_session_conf
from spark_ray.schema import parse_schema
from sql_ext import ScriptError, ScriptSession, run_script

# A Byzer code string whose rows say where they ran: "default_worker.py" is a Ray worker.
WHERE_CODE = """
import os, sys
from pyjava.api.mlsql import RayContext
ray_context = RayContext.connect(context, "local")
def where(row):
    return {"id": row["id"], "where": os.path.basename(sys.argv[0])}
ray_context.foreach(where)
"""
RAY_WORKER = "default_worker.py"


pytestmark = pytest.mark.usefixtures("fresh_script_session")  # conftest.py


def rows(df):
    return sorted(tuple(row) for row in df.collect())


def script_error(spark, text, **kwargs):
    with pytest.raises(ScriptError) as caught:
        run_script(spark, text, **kwargs)
    return caught.value


# ---------------------------------------------------------------- data statements


def test_load_select_save_in_every_format(spark, tmp_path):
    text = f"""
set rows='''
{{"id":1,"name":"a"}},
{{"id":2,"name":"中国"}},
{{"id":3,"name":"c"}},
''';
set dir="{tmp_path}";
load jsonStr.`rows` as raw;
select id, name from raw where id > ${{min}} as picked;
save overwrite picked as parquet.`${{dir}}/p`;
save append picked as parquet.`${{dir}}/p`;
save ignore raw as parquet.`${{dir}}/p`;
load parquet.`${{dir}}/p` as from_parquet;
save overwrite picked as csv.`${{dir}}/c` where header="true" and fileNum="1";
load csv.`${{dir}}/c` where header="true" and inferSchema="true" as from_csv;
save picked as json.`${{dir}}/j`;
load json.`${{dir}}/j` as from_json;
select name from picked as names;
save overwrite names as text.`${{dir}}/t`;
load text.`${{dir}}/t` as from_text;
"""
    tables = run_script(spark, text, variables={"min": 1})
    picked = [(2, "中国"), (3, "c")]
    assert rows(tables["picked"]) == picked
    assert rows(tables["from_parquet"]) == sorted(picked * 2)  # overwrite, append, then ignore
    assert rows(tables["from_csv"]) == picked
    assert rows(tables["from_json"]) == picked
    assert rows(tables["from_text"]) == [("c",), ("中国",)]
    assert list(tables) == ["raw", "picked", "from_parquet", "from_csv", "from_json", "names", "from_text"]
    # Tables are temp views, visible to plain Spark SQL afterwards.
    assert rows(spark.sql("select count(*) from from_parquet")) == [(4,)]


def test_save_error_if_exists_points_at_the_path(spark, tmp_path):
    text = f"select 1 as id as t;\nsave overwrite t as parquet.`{tmp_path}/x`;\nsave errorIfExists t as parquet.`{tmp_path}/x`;"
    error = script_error(spark, text)
    assert (error.line, error.column, error.fragment) == (3, 34, f"{tmp_path}/x")
    assert "PATH_ALREADY_EXISTS" in error.description


def test_output_tables_are_shown_else_the_last(spark):
    session = ScriptSession.of(spark)
    run = session.run("select 1 as a as t; select 2 as a as output; select 3 as a as u; select 4 as a as output;")
    assert [(shown.name, rows(shown.df)) for shown in run.shown] == [("output", [(2,)]), ("output", [(4,)])]
    run = session.run("select 1 as a as t; select 2 as a as u;")
    assert [(shown.name, rows(shown.df)) for shown in run.shown] == [("u", [(2,)])]


def test_desc_prints_a_readable_form_and_json_that_schema_accepts(spark, capsys):
    run_script(spark, "select 1L as id, 'x' as name as t;\n!desc t;")
    assert capsys.readouterr().out.splitlines() == [
        "col_name  data_type  nullable",
        "id        long       false",
        "name      string     false",
    ]
    run_script(spark, "!desc t json;")
    as_json = capsys.readouterr().out.strip()
    assert json.loads(as_json)["type"] == "struct"
    assert parse_schema(as_json) == spark.table("t").schema
    run_script(spark, "!desc t st;")
    assert capsys.readouterr().out.strip() == "st(field(id,long),field(name,string))"


# ---------------------------------------------------------------- settings and their scope


def test_python_conf_stays_in_force_for_later_scripts(spark):
    run_script(
        spark,
        '!python conf "schema=st(field(id,long),field(where,string))";\n'
        "!python conf '''pythonMode=python''';\n"
        '!python conf "runIn=executor";',
    )
    assert get_session_conf(spark) == {
        "schema": "st(field(id,long),field(where,string))",
        "python_mode": "python",
        "run_in": "executor",
    }
    tables = run_script(spark, f"select 7L as id as t;\n!ray on t '''{WHERE_CODE}''' named out;")
    (row,) = tables["out"].collect()
    assert row.id == 7 and row.where != RAY_WORKER  # no Ray: the Spark Python worker ran it


def test_per_statement_keys_override_the_session_for_that_statement_only(spark):
    run_script(spark, '!python conf "schema=id long, where string";\n!python conf "pythonMode=python";')
    before = get_session_conf(spark)
    text = f"""select 1L as id as t;
run command as Ray.`` where inputTable="t" and outputTable="on_ray"
  and code='''{WHERE_CODE}''' and pythonMode="ray" and schema="st(field(where,string),field(id,long))";
!ray on t '''{WHERE_CODE}''' named in_spark;
"""
    tables = run_script(spark, text)
    assert tables["on_ray"].columns == ["where", "id"]
    assert rows(tables["on_ray"]) == [(RAY_WORKER, 1)]
    assert tables["in_spark"].columns == ["id", "where"]
    assert rows(tables["in_spark"])[0][1] != RAY_WORKER
    assert get_session_conf(spark) == before


def test_ray_on_runs_in_driver_mode_on_ray(spark):
    text = f"""select id from range(5) as t;
!ray on t '''{WHERE_CODE}''' named out where runIn="driver" and schema="id long, where string";"""
    tables = run_script(spark, text)
    assert rows(tables["out"]) == [(i, RAY_WORKER) for i in range(5)]


def test_python_env_exports_reach_the_code_and_a_missing_env_warns_once(spark, recwarn):
    missing = f"no_such_env_{uuid.uuid4().hex[:8]}"
    code = """
import os
from pyjava.api.mlsql import RayContext
ray_context = RayContext.connect(context, "local")
def env(row):
    return {"id": row["id"], "a": os.environ.get("SR_TEST_A"), "b": os.environ.get("SR_TEST_B")}
ray_context.foreach(env)
"""
    text = f"""!python env "PYTHON_ENV=export SR_TEST_A=utf8 && source activate {missing}";
!python env "SR_TEST_B=two";
!python env "pythonMode=python";
!python conf "schema=id long, a string, b string";
select 1L as id as t;
!ray on t '''{code}''' named first;
!ray on t '''{code}''' named second;
"""
    tables = run_script(spark, text)
    assert rows(tables["first"]) == rows(tables["second"]) == [(1, "utf8", "two")]
    assert (
        get_session_conf(spark)["python_env"]
        == f"export SR_TEST_A=utf8 && source activate {missing} && export SR_TEST_B=two"
    )
    assert get_session_conf(spark)["python_mode"] == "python"  # an option given through env goes to the conf
    warned = [str(w.message) for w in recwarn if missing in str(w.message)]
    assert len(warned) == 1, warned


# ---------------------------------------------------------------- variables


def test_variables_substitute_everywhere_and_persist_in_the_session(spark):
    text = """set table_name="t";
set greeting='''hello''';
set who="nobody" where type=defaultParam;
set answer=`select 40 + 2` where type=sql;
select '${greeting} ${who}' as text, ${answer} as n as ${table_name}_in;
!ray on t_in '''
from pyjava.api.mlsql import RayContext
ray_context = RayContext.connect(context, None)
def f(row):
    return {"text": row["text"] + " from ${table_name}", "n": row["n"]}
ray_context.foreach(f)
''' named out where schema="text string, n int";
"""
    tables = run_script(spark, text, variables={"who": "world"})
    assert rows(tables["out"]) == [("hello world from t", 42)]
    assert ScriptSession.of(spark).variables["answer"] == "42"
    later = run_script(spark, "select '${greeting}' as g as again;")
    assert rows(later["again"]) == [("hello",)]


def test_unknown_variable_points_at_the_reference(spark):
    error = script_error(spark, "set table='t';\nselect * from ${tabel} as x;")
    assert (error.line, error.column, error.fragment) == (2, 15, "${tabel}")
    assert "Did you mean 'table'" in error.description


# ---------------------------------------------------------------- runtime errors: line, column, fragment


@pytest.mark.parametrize(
    "text, line, column, fragment, words",
    [
        ("select 1 as id as t;\nselect nocol\n  from t as x;", 2, 8, "nocol", "UNRESOLVED_COLUMN"),
        ("select 1 as id as orders;\n!ray on order '''x''' named y;", 2, 9, "order", "Did you mean 'orders'"),
        ('!python conf "schema=st(field(id,lon))";', 1, 34, "l", "SchemaParseError"),
        ('!python conf "runIn=drive";', 1, 21, "drive", "must be one of"),
        ("select 1 as id as t;\n!ray on t '''x''' named y where runIn=\"drivr\";", 2, 40, "drivr", "must be one of"),
        ("load jsonStr.`rawTxt` as t;", 1, 15, "rawTxt", "jsonStr loads a variable"),
        ("set a='1' where type=txt;", 1, 22, "txt", "Did you mean 'text'"),
        (
            "select 1 as id as t;\nrun command as Ray.`` where inputTable=\"t\" and code='''x''';",
            2,
            1,
            "run command as Ray.`` where inputTable=\"t\" and code='''x'''",
            "outputTable",
        ),
        ("load parquet.`/no/such/dir/x` as t;", 1, 15, "/no/such/dir/x", "PATH_NOT_FOUND"),
    ],
)
def test_runtime_errors_name_line_column_and_fragment(spark, text, line, column, fragment, words):
    error = script_error(spark, text)
    assert (error.line, error.column, error.fragment) == (line, column, fragment)
    assert words in error.description
    assert error.statement_line == line or error.statement_line < line


def test_user_code_error_points_at_the_line_of_the_code(spark):
    text = """select 1L as id as t;
!ray on t '''
from pyjava.api.mlsql import RayContext
ray_context = RayContext.connect(context, "local")
def boom(row):
    return {"id": row["id"] // 0}
ray_context.foreach(boom)
''' named out where runIn="driver" and schema="id long";"""
    error = script_error(spark, text)
    assert (error.line, error.column, error.fragment) == (6, 5, 'return {"id": row["id"] // 0}')
    assert (error.statement_line, error.statement_column) == (2, 1)
    assert "ZeroDivisionError" in error.description
    assert isinstance(error.__cause__, Exception)


def test_lazy_failures_are_blamed_on_the_statement_that_made_the_table(spark):
    session = ScriptSession.of(spark)
    text = """select 1L as id as t;
!ray on t '''
from pyjava.api.mlsql import RayContext
ray_context = RayContext.connect(context, None)
def boom(row):
    return {"id": row["id"] // 0}
ray_context.foreach(boom)
''' named output where schema="id long";"""
    run = session.run(text)  # executor mode: nothing has run yet
    (shown,) = run.shown
    with pytest.raises(ScriptError) as caught:
        session.attribute(shown.statement, shown.df.collect)
    error = caught.value
    assert (error.line, error.fragment, error.statement_line) == (6, 'return {"id": row["id"] // 0}', 2)
    assert "ZeroDivisionError" in error.description


def test_script_schema_from_desc_json_is_accepted_by_python_conf(spark, capsys):
    run_script(spark, "select 1L as id, 'x' as name as t;\n!desc t json;")
    schema_json = capsys.readouterr().out.strip()
    text = f"""!python conf '''schema={schema_json}''';
!python conf "pythonMode=python";
!ray on t '''
from pyjava.api.mlsql import RayContext
ray_context = RayContext.connect(context, None)
ray_context.foreach(lambda row: row)
''' named copy;"""
    tables = run_script(spark, text)
    assert tables["copy"].schema == spark.table("t").schema
    assert rows(tables["copy"]) == [(1, "x")]
