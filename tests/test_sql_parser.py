"""The script grammar without Spark: every statement form, positions, and every syntax error's place."""

from __future__ import annotations

import json
import pathlib

import pytest
from pyspark.sql.types import ArrayType, LongType, StringType, StructField, StructType

from spark_ray.schema import parse_schema
from sql_ext.describe import describe_schema
from sql_ext.errors import ScriptError
from sql_ext.parser import parse_script
from sql_ext.runner import check_script
from sql_ext.sources import json_lines
from sql_ext.statements import (
    Describe,
    Load,
    PythonSetting,
    RayOn,
    RunCommand,
    Save,
    Select,
    SetVariable,
)
from sql_ext.udtf import parse_options
from sql_ext.variables import UnknownVariable, substitute

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def only(text):
    statements = parse_script(text)
    assert len(statements) == 1, statements
    return statements[0]


def error_of(text, check=parse_script):
    with pytest.raises(ScriptError) as caught:
        check(text)
    return caught.value


# ---------------------------------------------------------------- statement forms


@pytest.mark.parametrize(
    "text, value",
    [
        ("set a='''x 'y' \"z\"''';", "x 'y' \"z\""),
        ('set a="say \\"hi\\"";', 'say "hi"'),
        ("set a='it\\'s';", "it's"),
        ("set a=`select 1`;", "select 1"),
        ("set a=42;", "42"),
    ],
)
def test_set_takes_every_string_form(text, value):
    statement = only(text)
    assert isinstance(statement, SetVariable)
    assert statement.name.text == "a"
    assert statement.value.text == value


def test_set_accepts_where_type():
    statement = only("set n=`select count(*) from t` where type=sql;")
    assert [(o.key.text, o.value.text) for o in statement.options] == [("type", "sql")]


def test_load_with_options_and_backquoted_path():
    statement = only("load csv.`/data/${day}/x.csv` where header=\"true\" and sep=';' as t1;")
    assert isinstance(statement, Load)
    assert (statement.format.text, statement.path.text, statement.table.text) == ("csv", "/data/${day}/x.csv", "t1")
    assert {o.key.text: o.value.text for o in statement.options} == {"header": "true", "sep": ";"}


def test_select_keeps_the_sql_as_written_up_to_the_last_as():
    text = "select a as b, 'x;y' as c -- a comment; with as\nfrom t /* as z; */ as result;"
    statement = only(text)
    assert isinstance(statement, Select)
    assert statement.table.text == "result"
    assert statement.sql.text == "select a as b, 'x;y' as c -- a comment; with as\nfrom t /* as z; */"
    assert text[statement.sql.span.start : statement.sql.span.end] == statement.sql.text


def test_save_with_and_without_mode():
    plain, moded = parse_script("save t as parquet.`/tmp/a`;\nsave APPEND t as json.'/tmp/b' where fileNum=\"2\";")
    assert isinstance(plain, Save) and plain.mode is None and plain.format.text == "parquet"
    assert moded.mode.text == "append"  # canonical spelling, whatever the case written
    assert moded.path.text == "/tmp/b" and moded.options[0].key.text == "fileNum"


@pytest.mark.parametrize("mode", ["overwrite", "append", "errorIfExists", "ignore"])
def test_save_modes(mode):
    assert only(f"save {mode.upper()} t as parquet.`p`;").mode.text == mode


def test_python_conf_and_env_in_every_quoting():
    conf, triple, env = parse_script(
        '!python conf "runIn=driver";\n'
        "!python conf '''schema={\"type\":\"struct\",\"fields\":[]}''';\n"
        '!python env "PYTHON_ENV=export A=1 && source activate x";'
    )
    assert isinstance(conf, PythonSetting) and (conf.scope.text, conf.setting.text) == ("conf", "runIn=driver")
    assert triple.setting.text == 'schema={"type":"struct","fields":[]}'
    assert (env.scope.text, env.setting.text) == ("env", "PYTHON_ENV=export A=1 && source activate x")


def test_ray_on_with_code_and_optional_where():
    text = "!ray on t1 '''\ndef f(row):\n    return row\n''' named out where runIn=\"driver\";"
    statement = only(text)
    assert isinstance(statement, RayOn)
    assert (statement.table.text, statement.output.text) == ("t1", "out")
    assert statement.code.text == "\ndef f(row):\n    return row\n"
    assert text[statement.code.span.start : statement.code.span.end] == statement.code.text
    assert [(o.key.text, o.value.text) for o in statement.options] == [("runIn", "driver")]


def test_run_command_as_ray():
    statement = only(
        "run command as Ray.`` where \ninputTable=\"data\"\nand outputTable=\"out\"\nand code='''x = 1''' and num_cpus=\"2\";"
    )
    assert isinstance(statement, RunCommand)
    assert (statement.target.text, statement.et.text, statement.path.text) == ("command", "Ray", "")
    assert [o.key.text for o in statement.options] == ["inputTable", "outputTable", "code", "num_cpus"]
    assert statement.options[1].key.span.line == 3


def test_desc_plain_and_json():
    plain, as_json = parse_script("!desc t;\n!DESC t JSON;")
    assert isinstance(plain, Describe) and plain.style is None
    assert as_json.style.text == "json"


def test_comments_and_empty_statements_are_skipped():
    statements = parse_script("-- leading\n/* block\n; */ ;; set a='1'; -- trailing ;\n")
    assert len(statements) == 1 and statements[0].name.text == "a"


def test_statement_positions_and_source():
    text = "set a='1';\n\n  select\n  ${a} as x\n  as t;"
    first, second = parse_script(text)
    assert (first.line, first.column) == (1, 1)
    assert (second.line, second.column) == (3, 3)
    assert second.source == "select\n  ${a} as x\n  as t"
    assert (second.table.span.line, second.table.span.column) == (5, 6)


@pytest.mark.parametrize(
    "name, kinds",
    [
        (
            "seed_000_data.sql",
            ["SetVariable", "Load", "Select", "Describe"] + ["PythonSetting"] * 5 + ["RayOn", "Select"],
        ),
        ("seed_000_model.sql", ["SetVariable", "Load", "Select"] + ["PythonSetting"] * 5 + ["RayOn", "Select"]),
        ("seed_001_run_command.sql", ["SetVariable", "Load"] + ["PythonSetting"] * 4 + ["RunCommand"]),
        (
            "tour.sql",
            ["SetVariable"] * 3
            + ["Load", "Select", "Save", "Load"]
            + ["PythonSetting"] * 3
            + ["RayOn", "RunCommand", "Describe", "Describe", "Select"],
        ),
    ],
)
def test_seed_scripts_parse(name, kinds):
    statements = check_script((EXAMPLES / name).read_text(encoding="utf-8"))
    assert [type(s).__name__ for s in statements] == kinds


# ---------------------------------------------------------------- errors: structure and place


@pytest.mark.parametrize(
    "text, line, column, fragment, words",
    [
        ("set a='1'\nset b='2';", 2, 1, "set", "';' missing"),
        ("selec 1 as t;", 1, 1, "selec", "Did you mean 'select'"),
        ("select 1;", 1, 9, ";", "as NAME"),
        ("!pyhton conf 'a=b';", 1, 1, "!pyhton", "Did you mean '!python'"),
        ("set a='1';\nload json.`x` as t", 2, 18, "t", "';' missing"),
        ("set a='1';\nset b='''abc;", 2, 7, "'''", "never closed"),
        ('set a="abc;', 1, 7, '"', "never closed"),
        ("set a='1'; /* open", 1, 12, "/*", "never closed"),
        ("select 1 as t\nload json.`p` as u;", 2, 1, "load", "';' missing at the end of line 1"),
        ("save overwrit t as json.`p`;", 1, 6, "overwrit", "Did you mean 'overwrite'"),
        ("!desc t jsn;", 1, 9, "jsn", "Did you mean 'json'"),
        ("!python conff 'a=1';", 1, 9, "conff", "Did you mean 'conf'"),
        ("run command as Rya.`` where code='1';", 1, 16, "Rya", "Did you mean 'Ray'"),
        ("set a='x' where type=sql and ;", 1, 30, ";", "expected a name"),
        ("save t as parquet.`p` partitionBy id;", 1, 23, "partitionBy", 'write `where partitionBy="col1,col2"`'),
    ],
)
def test_syntax_errors_name_line_column_and_fragment(text, line, column, fragment, words):
    error = error_of(text)
    assert (error.line, error.column, error.fragment) == (line, column, fragment)
    assert words in error.description


def test_error_names_the_statement_start_and_underlines_the_fragment():
    text = "set a='1';\n!ray on t '''\ncode\n''' named\n   bad bad;"
    error = error_of(text)
    assert (error.line, error.column, error.fragment) == (5, 8, "bad")
    assert (error.statement_line, error.statement_column) == (2, 1)
    assert error.statement_head == "!ray on t '''"
    lines = str(error).splitlines()
    assert lines[0].startswith("line 5, column 8: ")
    assert "in the statement at line 2, column 1: !ray on t '''" in lines[1]
    assert lines[2] == "  5 |    bad bad;"
    assert lines[3] == "    |        ^^^"


def test_underline_stays_aligned_after_wide_characters():
    error = error_of("set a='中国' bad;")
    assert (error.column, error.fragment) == (12, "bad")
    source, underline = str(error).splitlines()[2:4]
    assert source == "  1 | set a='中国' bad;"
    assert underline == "    | " + " " * 13 + "^^^"  # 中国 takes four terminal columns


def test_unknown_keys_of_scripts_pass_the_check_and_register_keys_do_not():
    # As in Byzer, any key may go to the code (context.conf); it is warned about when it runs
    # (tests/test_sql_script_conf.py). register's options stay strict.
    assert len(check_script("set a='1';\n!python conf \"runin2=driver\";")) == 2
    assert len(check_script("!ray on t '''x''' named y where\n  numGpu=\"1\";")) == 1
    assert len(check_script("run command as Ray.`` where inputTabel=\"t\" and code='''x''';")) == 1
    error = error_of("register Ray.`` as f where code='''x''' and numGpu=\"1\";", check_script)
    assert error.fragment == "numGpu" and "Did you mean" in error.description


def test_script_error_survives_pickling():
    import pickle

    error = error_of("selec 1 as t;")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.line, copy.column, copy.fragment, str(copy)) == (error.line, error.column, error.fragment, str(error))


# ---------------------------------------------------------------- small pure helpers


def test_substitution():
    assert substitute("a ${x} b ${ y }", {"x": "1", "y": "2"}) == "a 1 b 2"
    with pytest.raises(UnknownVariable) as caught:
        substitute("from ${tabel}", {"table": "t"})
    assert (caught.value.start, caught.value.end) == (5, 13)
    assert "Did you mean 'table'" in str(caught.value)


def test_json_lines_tolerates_trailing_commas_and_blank_lines():
    text = '\n{"Busn_A":114,"Busn_B":57},\n\n  {"Busn_A":55,"Busn_B":134},\n{"a":"中国"}\n'
    assert [json.loads(line) for line in json_lines(text)] == [
        {"Busn_A": 114, "Busn_B": 57},
        {"Busn_A": 55, "Busn_B": 134},
        {"a": "中国"},
    ]


def test_describe_forms_round_trip_through_parse_schema():
    schema = StructType(
        [StructField("id", LongType()), StructField("tags", ArrayType(StringType())), StructField("a b", StringType())]
    )
    assert parse_schema(describe_schema(schema, "json")) == schema
    assert parse_schema(describe_schema(schema, "st")) == schema
    assert parse_schema(describe_schema(schema, "ddl")) == schema
    assert describe_schema(schema, None).splitlines() == [
        "col_name  data_type      nullable",
        "id        long           true",
        "tags      array<string>  true",
        "a b       string         true",
    ]


def test_table_function_options():
    assert parse_options("runIn=driver;num_gpus=1") == {"run_in": "driver", "num_gpus": "1"}
    assert parse_options('{"pythonMode": "python", "batch_rows": 10}') == {"python_mode": "python", "batch_rows": "10"}
    assert parse_options("") == {}
    from spark_ray.errors import ConfigError

    with pytest.raises(ConfigError, match="Did you mean 'run_in'"):
        parse_options("runin2=driver")
    with pytest.raises(ConfigError, match="k=v pairs"):
        parse_options("runIn")


def test_bang_command_arguments_split_at_white_space_as_byzer_does():
    # Byzer's macro tokenizer: arguments split at white space, quoted strings stay one argument; for !ray,
    # !python and !desc as for every other `!` command.
    (ray,) = parse_script("!ray on t py.testPyScript named out;")
    assert (ray.table.text, ray.code.text, ray.code.quoted, ray.output.text) == ("t", "py.testPyScript", False, "out")
    (ray,) = parse_script('!ray on `t` "py.x" named out where runIn="driver";')
    assert (ray.table.text, ray.code.text, ray.code.quoted, ray.options[0].key.text) == ("t", "py.x", True, "runIn")
    (setting,) = parse_script("!python conf schema=st(field(a,long),field(b,string));")
    assert (setting.scope.text, setting.setting.text) == ("conf", "schema=st(field(a,long),field(b,string))")
    (described,) = parse_script("!desc `my table` json;")
    assert (described.table.text, described.style.text) == ("my table", "json")
    (included,) = parse_script("!pyInclude python-example.test.py named testPyScript;")
    assert (included.scope.text, included.path.text, included.table.text) == (
        "dotted",
        "python-example.test.py",
        "testPyScript",
    )


@pytest.mark.parametrize(
    ("text", "fragment", "message"),
    [
        ("!ray on t py.x out;", "out", "!ray takes `on TABLE CODE named OUT`"),
        ("!ray t py.x named out;", "t", "!ray takes `on TABLE CODE named OUT`"),
        ("!ray on t py. x named out;", "x", "!ray takes `on TABLE CODE named OUT`"),
        ("!python conf a=1 b=2;", "b=2", "!python takes one setting (quote it if it holds spaces)"),
        ("!desc t json more;", "more", "!desc takes a table and an optional style"),
    ],
)
def test_bang_command_argument_mistakes_point_at_the_argument(text, fragment, message):
    error = error_of(text)
    assert error.fragment == fragment and error.description.startswith(message)
