"""`register Ray.`` as NAME where code=... and schema=...` and `!show functions`, Byzer's register form.

The statement registers a vectorized SQL table function through
`spark_ray.register_function`; the tests that run it are skipped while this
spark_ray lacks that API. Checks made before anything runs need no API.
"""

from __future__ import annotations

import io
import textwrap

import pytest

import spark_ray
from sql_ext import ScriptError, ScriptSession, check_script, run_script


def _has_register_function() -> bool:
    # hasattr() is not enough: spark_ray's lazy __getattr__ raises ImportError while the module is missing.
    try:
        spark_ray.register_function  # noqa: B018
    except (AttributeError, ImportError):
        return False
    return True


needs_api = pytest.mark.skipif(not _has_register_function(), reason="spark_ray.register_function is not there yet")

TAG_CODE = """
from pyjava.api.mlsql import RayContext
ray_context = RayContext.connect(context, "local")
def tag(row):
    return {"id": row["id"], "tag": "t" + str(row["id"])}
ray_context.foreach(tag)
"""


pytestmark = pytest.mark.usefixtures("fresh_script_session")  # conftest.py


@pytest.mark.parametrize(
    "text, fragment, words",
    [
        ("register ScriptUDF.`` as f where lang=\"scala\" and code='''x''';", "ScriptUDF", "Known: Ray"),
        ("register Ray.`model_table` as f where code='''x''';", "model_table", "no model table"),
        ("register Ray.`` as f where registerCode='''x''';", "registerCode", "deploys a Byzer model UDF"),
        ('register Ray.`` as f where schema="a long";', 'register Ray.`` as f where schema="a long"', "needs code="),
        ("register Ray.`` as f where code='''x''' and numGpu=\"1\";", "numGpu", "Did you mean"),
    ],
)
def test_register_mistakes_fail_before_anything_runs(text, fragment, words):
    with pytest.raises(ScriptError) as caught:
        check_script(text)
    assert caught.value.fragment == fragment
    assert words in caught.value.description


@pytest.mark.skipif(_has_register_function(), reason="spark_ray.register_function exists")
def test_without_the_api_the_error_says_what_is_missing(spark):
    with pytest.raises(ScriptError) as caught:
        run_script(spark, f"register Ray.`` as add_tag where code='''{TAG_CODE}''' and schema=\"id long, tag string\";")
    assert "has no register_function()" in caught.value.description
    assert caught.value.line == 1


@needs_api
def test_register_makes_a_table_function_and_show_lists_it(spark):
    session = ScriptSession.of(spark)
    session.out = io.StringIO()
    text = (
        "select id from range(3) as reg_input;\n"
        f"register Ray.`` as add_tag where code='''{TAG_CODE}''' and schema=\"id long, tag string\" and numCpus=\"1\";\n"
        "select * from add_tag(TABLE(reg_input)) as tagged;\n"
        "!show functions;\n"
        '!show "function/add_tag";\n'
    )
    run = session.run(text)
    assert sorted(tuple(row) for row in run.tables["tagged"].collect()) == [(0, "t0"), (1, "t1"), (2, "t2")]
    (record,) = [record for record in spark_ray.registered_functions(spark) if record.name == "add_tag"]
    assert record.schema.simpleString() == "struct<id:bigint,tag:string>"
    printed = session.out.getvalue().splitlines()
    assert printed[0].split() == ["name", "schema", "protocol", "code", "options"]
    listed = [line for line in printed if line.startswith("add_tag ")]
    assert len(listed) == 2 and all("id long, tag string" in line and record.protocol in line for line in listed)


@needs_api
def test_register_takes_py_include_code_and_the_session_schema(spark, tmp_path):
    (tmp_path / "tag.py").write_text(TAG_CODE, encoding="utf-8")
    text = textwrap.dedent("""
        !pyInclude project 'tag.py' named tagCode;
        !python conf "schema=st(field(id,long),field(tag,string))";
        register Ray.`` as add_tag2 where code='''py.tagCode''';
        select id from range(2) as reg_input2;
        select * from add_tag2(TABLE(reg_input2)) as tagged2;
    """)
    tables = run_script(spark, text, base_dir=tmp_path)
    assert sorted(tuple(row) for row in tables["tagged2"].collect()) == [(0, "t0"), (1, "t1")]


@needs_api
def test_show_function_names_an_unknown_function(spark):
    with pytest.raises(ScriptError) as caught:
        run_script(spark, '!show "function/no_such_fn";')
    assert caught.value.fragment == "no_such_fn" and "no registered function" in caught.value.description
