"""Byzer's statements beyond the seeds, run on the shared SparkSession and embedded Ray.

The empty table `command`, `cache`, the `!` table commands, includes, `!if` blocks,
`!println`, notebook Python cells and `schema=file`: each asserted on rows, types
and, for mistakes, the line, column and words of the ScriptError.
"""

from __future__ import annotations

import io
import os
import textwrap

import pytest
from pyspark.sql.types import BinaryType, IntegerType, LongType, StringType, StructField, StructType

from spark_ray.pyjava.storage import streaming_tar
from sql_ext import ScriptError, ScriptSession, check_script, run_script
from sql_ext.runner import FILE_SCHEMA

MODEL_CONF = '!python conf "dataMode=model";\n!python conf "runIn=driver";\n'


pytestmark = pytest.mark.usefixtures("fresh_script_session")  # conftest.py


@pytest.fixture
def session(spark):
    """The session's ScriptSession, printing into a buffer (``session.out.getvalue()``)."""
    script_session = ScriptSession.of(spark)
    script_session.out = io.StringIO()
    return script_session


def rows(df):
    return sorted(tuple(row) for row in df.collect())


def failure(spark, text, **kwargs):
    with pytest.raises(ScriptError) as caught:
        run_script(spark, text, **kwargs)
    return caught.value


def at(error):
    return (error.line, error.column, error.fragment)


# ---------------------------------------------------------------- the empty table `command`


def test_command_is_an_empty_table_for_model_and_data_mode(spark):
    text = MODEL_CONF + textwrap.dedent("""
        !python conf "schema=st(field(rows,long),field(columns,long))";
        run command as Ray.`` where inputTable="command" and outputTable="counted" and code='''
        from pyjava.api.mlsql import RayContext
        ray_context = RayContext.connect(globals(), None)
        df = ray_context.to_pandas()
        context.build_result([{"rows": len(df), "columns": len(df.columns)}])
        ''';
        run command as Ray.`` where inputTable="command" and outputTable="mapped" and dataMode="data"
          and runIn="executor" and code='''
        from pyjava.api.mlsql import RayContext
        ray_context = RayContext.connect(globals(), "local")
        ray_context.foreach(lambda row: {"rows": 1, "columns": 1})
        ''';
    """)
    tables = run_script(spark, text)
    assert rows(tables["counted"]) == [(0, 0)]
    assert rows(tables["mapped"]) == []
    assert tables["mapped"].schema == StructType([StructField("rows", LongType()), StructField("columns", LongType())])


def test_a_table_the_script_calls_command_wins(spark):
    text = MODEL_CONF + textwrap.dedent("""
        select 5L as n as command;
        !python conf "schema=n long";
        run command as Ray.`` where inputTable="command" and outputTable="echoed" and code='''
        from pyjava.api.mlsql import RayContext
        ray_context = RayContext.connect(globals(), None)
        context.build_result(ray_context.collect())
        ''';
    """)
    assert rows(run_script(spark, text)["echoed"]) == [(5,)]
    spark.catalog.dropTempView("command")


# ---------------------------------------------------------------- cache


ECHO = """'''
from pyjava.api.mlsql import RayContext
ray_context = RayContext.connect(globals(), "local")
ray_context.foreach(lambda row: row)
'''"""


def test_cache_is_off_by_default_and_a_script_setting(spark, session):
    setup = f'select 1L as id as t;\n!python conf "schema=id long";\n!ray on t {ECHO} named plain;\n'
    tables = session.run(setup).tables
    assert not tables["plain"].is_cached and session.cache_output is False
    tables = session.run(f'!python conf "cache=true";\n!ray on t {ECHO} named kept;').tables
    assert tables["kept"].is_cached and rows(tables["kept"]) == [(1,)]
    # The setting stays for the session's later scripts; a statement's own key wins.
    tables = session.run(f'!ray on t {ECHO} named kept2;\n!ray on t {ECHO} named fresh where cache="false";').tables
    assert tables["kept2"].is_cached and not tables["fresh"].is_cached
    # Making the table again drops the cached copy nobody can reach any more.
    old = tables["kept2"]
    session.run(f"!ray on t {ECHO} named kept2;")
    assert not old.is_cached
    assert "cache" not in __import__("spark_ray").get_session_conf(spark)


def test_cache_takes_true_or_false_only(spark):
    error = failure(spark, '!python conf "cache=yes";')
    assert at(error) == (1, 21, "yes") and "expected true or false" in error.description
    error = failure(spark, f'select 1L as id as t;\n!ray on t {ECHO} named x where cache="maybe" and schema="id long";')
    assert error.fragment == "maybe"


# ---------------------------------------------------------------- table commands


def test_table_repartition_by_number_columns_range_and_coalesce(spark):
    text = textwrap.dedent("""
        select id, id % 3 as k from range(12) as raw;
        !tableRepartition _ -i raw -num 4 -o by_number;
        !tableRepartition _ -i raw -num 3 -o by_key -cols k;
        !tableRepartition _ -i raw -num 2 -o by_range -cols id -type range;
        !tableRepartition _ -i by_number -num 1 -o merged -shuffle false;
    """)
    tables = run_script(spark, text)
    assert tables["by_number"].rdd.getNumPartitions() == 4
    assert rows(tables["by_number"]) == rows(tables["raw"])
    partitions_per_key = (
        tables["by_key"]
        .rdd.mapPartitionsWithIndex(lambda index, part: [(row.k, index) for row in part])
        .distinct()
        .countByKey()
    )
    assert dict(partitions_per_key) == {0: 1, 1: 1, 2: 1}  # each key lives in one partition
    ranges = tables["by_range"].rdd.glom().map(lambda part: sorted(row.id for row in part)).collect()
    assert ranges == [list(range(6)), list(range(6, 12))]
    assert tables["merged"].rdd.getNumPartitions() == 1


@pytest.mark.parametrize(
    "command, fragment, words",
    [
        ("!tableRepartition _ -i raw -nm 2 -o x;", "-nm", "Did you mean '-num'"),
        ("!tableRepartition _ -i raw -o x;", "!tableRepartition", "needs -num"),
        ("!tableRepartition _ -i raw -num 0 -o x;", "0", "at least 1"),
        ("!tableRepartition _ -i raw -num 2 -o x -type rnage -cols id;", "rnage", "Did you mean 'range'"),
        ("!tableRepartition _ -i raw -num 2 -o x -type range;", "range", "add -cols"),
        ("!tableRepartition _ -i raw -num 2 -o x -cols idd;", "idd", "Did you mean 'id'"),
        ("!tableRepartition _ -i rwa -num 2 -o x;", "rwa", "Did you mean 'raw'"),
    ],
)
def test_table_repartition_mistakes_name_the_flag(spark, command, fragment, words):
    error = failure(spark, f"select id from range(3) as raw;\n{command}")
    assert (error.line, error.fragment) == (2, fragment)
    assert words in error.description


def test_empty_table_cache_uncache_and_last_table_name(spark, session):
    text = textwrap.dedent("""
        select 1 as a, "x" as b as t1;
        !emptyTable _ -i t1 -o e1;
        !emptyTable t1 named e2;
        !cache t1;
        !cache e1 session;
        !lastTableName;
        !println "last: ${__last_table_name__}";
    """)
    run = session.run(text)
    assert rows(run.tables["e1"]) == [] and run.tables["e1"].columns == ["a", "b"]
    assert rows(run.tables["e2"]) == []
    assert spark.catalog.isCached("t1") and spark.catalog.isCached("e1")
    assert session.out.getvalue() == "last: e2\n"
    # Lifetime `script` (the default) ends when the next script starts; `session` stays until !unCache.
    session.run("!unCache e1;")
    assert not spark.catalog.isCached("t1") and not spark.catalog.isCached("e1")


def test_empty_table_alone_leaves_nothing_to_show(spark, session):
    run = session.run("select 1 as a as t;\n!emptyTable;")
    assert run.shown == [] and list(run.tables) == ["t"]
    run = session.run("select 1 as a as output;\n!emptyTable;")
    assert [shown.name for shown in run.shown] == ["output"]  # an explicit output still shows


def test_show_tables_commands_and_version(spark, session):
    session.run("select 1 as a as shown_table_x;\n!show tables;\n!show commands;\n!show version;")
    printed = session.out.getvalue().splitlines()
    assert printed[0].split() == ["name", "database", "temporary"]
    assert ["shown_table_x", "true"] == [word for word in printed[1:] if "shown_table_x" in word][0].split()
    assert any(line.startswith("!tableRepartition") for line in printed)
    assert any(line.split()[:1] == ["spark"] for line in printed)


@pytest.mark.parametrize(
    "text, fragment, words",
    [
        ("!hdfs -ls /tmp;", "!hdfs", "spark-ray does not run"),
        ("!tableRepartiton _ -i t -num 2 -o u;", "!tableRepartiton", "Did you mean '!tableRepartition'"),
        ("!show jobs;", "jobs", "Known: tables, functions"),
        ("!cache t forever;", "forever", "Known: script, session, application"),
        ("!fi;", "!fi", "without an !if"),
        ("!if ''' 1 == 1 ''';\nselect 1 as a as t;", "!if ''' 1 == 1 '''", "has no !fi"),
        ("!if ''' 1 == 1 ''';\n!else;\n!elif ''' 2 == 2 ''';\n!fi;", "!elif ''' 2 == 2 '''", "after the !else"),
        ('!println "x"\nselect 1 as a as t;', "select", "';' missing"),
    ],
)
def test_unknown_refused_and_misplaced_commands_fail_before_anything_runs(text, fragment, words):
    with pytest.raises(ScriptError) as caught:
        check_script(text)
    assert caught.value.fragment == fragment
    assert words in caught.value.description
    assert "spark-ray runs: !python, !ray, !desc" in caught.value.description or words != "spark-ray does not run"


# ---------------------------------------------------------------- variables and branches


def test_default_param_keeps_a_value_set_before(spark):
    text = 'set a = "wow,jack" where type="defaultParam";\nselect "${a}" as a as out;'
    assert rows(run_script(spark, text)["out"]) == [("wow,jack",)]
    assert rows(run_script(spark, text, variables={"a": "jack,"})["out"]) == [("jack,",)]
    text = 'set a = "jack,";\n' + text
    ScriptSession.forget(spark)
    assert rows(run_script(spark, text)["out"]) == [("jack,",)]


BRANCHES = """
set a = "wow,jack" where type="defaultParam";
!if ''' split(:a, ",")[0] == "jack" ''';
   select 1 as a as b;
!elif ''' select split(:a, ",")[1] as :second; :second == "jack" ''';
   !then;
   !if ''' 2 == 1 ''';
      select 2 as a as b;
   !else;
      select 3 as a as b;
      !println "taken: ${second}";
   !fi;
!else;
   select 4 as a as b;
!fi;
select * from b as output;
"""


@pytest.mark.parametrize(
    "variables, expected, printed",
    [({}, 3, "taken: jack\n"), ({"a": "jack,"}, 1, ""), ({"a": "x,y"}, 4, "")],
)
def test_if_elif_else_fi_choose_the_statements_that_run(session, variables, expected, printed):
    run = session.run(BRANCHES, variables)
    assert rows(run.shown[0].df) == [(expected,)]
    assert session.out.getvalue() == printed


@pytest.mark.needs_spark4(reason="the condition uses the :: cast, Spark SQL syntax new in 4.0")
def test_conditions_see_values_as_data_never_as_sql(session):
    text = textwrap.dedent("""
        set v = "x' or '1'='1";
        !if ''' :v == "x" ''';
          !println "injected";
        !else;
          !println "safe";
        !fi;
        set n = "7";
        !if ''' :n > 3 and :n::int < 10 and :v like "x%" ''';
          !println "numbers compare as numbers";
        !fi;
        set empty = "";
        !if ''' :empty = "" ''';
          !println "empty is empty";
        !fi;
    """)
    session.run(text)
    assert session.out.getvalue().splitlines() == ["safe", "numbers compare as numbers", "empty is empty"]


@pytest.mark.parametrize(
    "condition, fragment, words",
    [
        (" :mode == 'x' ", ":mode", "no variable 'mode' is set"),
        (" :a + 1 ", " :a + 1 ", "must be true or false"),
        (" nosuchfunction(:a) ", " nosuchfunction(:a) ", "not valid Spark SQL"),
        (" :a == 1; select 1 as :b ", "select 1 as :b", "must come last"),
        (" :a == 1; :a == 2 ", ":a == 1", "only `select ... as :name`"),
        (" select 1 as b; :a == 1 ", "select 1 as b", "sets no :name"),
    ],
)
def test_condition_mistakes_point_into_the_condition(spark, condition, fragment, words):
    text = f"set a = \"1\";\n!if '''{condition}''';\n!fi;"
    error = failure(spark, text)
    assert error.line == 2 and error.fragment == fragment
    assert words in error.description


def test_println_substitutes_variables_and_joins_words(session):
    session.run("set who = \"Byzer\";\n!println \"hello ${who}\";\n!println '''two\nlines''';\n!println a b;")
    assert session.out.getvalue() == "hello Byzer\ntwo\nlines\na b\n"


# ---------------------------------------------------------------- include and pyInclude


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


SCORE_PY = """
from pyjava.api.mlsql import RayContext
ray_context = RayContext.connect(globals(), None)
context.build_result({"id": row["id"], "score": row["id"] * 10} for row in ray_context.collect())
"""


def test_include_and_py_include_read_files_relative_to_the_script(spark, tmp_path, session):
    write(tmp_path / "lib" / "common.byzer", 'set greeting = "hi";\nselect id from range(3) as ids;\n')
    write(tmp_path / "src" / "algs" / "score.py", SCORE_PY)
    text = MODEL_CONF + textwrap.dedent("""
        include project.`lib/common.byzer`;
        !pyInclude project 'src/algs/score.py' named rawScore;
        !python conf "schema=st(field(id,long),field(score,long))";
        run command as Ray.`` where inputTable="ids" and outputTable="scored" and code='''py.rawScore''';
        !ray on ids '''py.rawScore''' named scored_again;
        !println "${greeting}";
    """)
    run = session.run(text, base_dir=tmp_path)
    assert rows(run.tables["scored"]) == [(0, 0), (1, 10), (2, 20)]
    assert rows(run.tables["scored_again"]) == rows(run.tables["scored"])
    assert list(run.tables)[:2] == ["ids", "rawScore"]  # the included file's tables are the script's too
    assert session.out.getvalue() == "hi\n"
    assert rows(run.tables["rawScore"])[0][0].startswith('{"content": "')  # Byzer's shape: JSON in `value`


def test_include_errors_name_the_file_line_and_column(spark, tmp_path):
    write(tmp_path / "lib" / "broken.byzer", "select 1 as a as ok;\nselect nosuch(1) as b as bad;\n")
    error = failure(spark, "select 0 as z as first;\ninclude project.`lib/broken.byzer`;", base_dir=tmp_path)
    assert error.path == "lib/broken.byzer"
    assert (error.line, error.column, error.fragment) == (2, 8, "nosuch(1)")
    assert str(error).startswith("lib/broken.byzer: line 2, column 8: ")
    write(tmp_path / "lib" / "typo.byzer", "selec 1 as a as t;\n")
    error = failure(spark, "include project.`lib/typo.byzer`;", base_dir=tmp_path)
    assert (error.path, error.line, error.fragment) == ("lib/typo.byzer", 1, "selec")


def test_include_mistakes(spark, tmp_path):
    error = failure(spark, "include project.`nope.byzer`;", base_dir=tmp_path)
    assert at(error) == (1, 18, "nope.byzer") and str(tmp_path) in error.description
    write(tmp_path / "a.byzer", "include project.`b.byzer`;\n")
    write(tmp_path / "b.byzer", "include project.`a.byzer`;\n")
    error = failure(spark, "include project.`a.byzer`;", base_dir=tmp_path)
    assert "include cycle: a.byzer -> b.byzer -> a.byzer" in error.description
    with pytest.raises(ScriptError, match="library manager"):
        check_script('include lib.`github.com/allwefantasy/lib-core` where alias="libCore";')
    with pytest.raises(ScriptError, match="copy the file into your project"):
        check_script("!pyInclude local 'github.com/x/lib-core.alg.xgboost.py' named raw;")


def test_py_code_errors_name_the_included_file(spark, tmp_path):
    write(tmp_path / "bad.py", "x = 1\nraise ValueError('broken model')\n")
    text = MODEL_CONF + "!pyInclude project 'bad.py' named badCode;\n!python conf \"schema=a long\";\n"
    text += "run command as Ray.`` where inputTable=\"command\" and outputTable=\"o\" and code='''py.badCode''';"
    error = failure(spark, text, base_dir=tmp_path)
    assert error.line == 5 and error.fragment == "py.badCode"
    assert "UserCodeError (in bad.py)" in error.description and "broken model" in error.description
    error = failure(spark, text.replace("code='''py.badCode'''", "code='''py.missing'''"), base_dir=tmp_path)
    assert error.fragment == "py.missing" and "no such table" in error.description


def test_run_script_text_names_its_last_table(spark, session):
    run = session.run("!runScript '''select 1 as a as inner_t; select 2 as a as inner_u;''' named outer_t;")
    assert rows(run.tables["outer_t"]) == [(2,)]
    error = failure(spark, "!runScript '''select 1 as a as t;\nselec 2;''';")
    assert (error.path, error.line, error.fragment) == ("!runScript at line 1", 2, "selec")


# ---------------------------------------------------------------- notebook cells


CELL = """#%python
#%input=cell_in
#%output=cell_out
#%schema=st(field(id,long),field(doubled,long))
#%runIn=driver
#%dataMode=model
#%cache=true
#%env=export CELL_FLAG=on
import os
from pyjava.api.mlsql import RayContext
ray_context = RayContext.connect(globals(), None)
assert os.environ["CELL_FLAG"] == "on"
context.build_result({"id": r["id"], "doubled": r["id"] * 2} for r in ray_context.collect())
"""


def test_a_notebook_cell_runs_as_one_run_command(spark, session):
    session.run("select id from range(3) as cell_in;")
    run = session.run(CELL)
    assert rows(run.tables["cell_out"]) == [(0, 0), (1, 2), (2, 4)]
    assert run.tables["cell_out"].is_cached
    assert [shown.name for shown in run.shown] == ["cell_out"]
    assert __import__("spark_ray").get_session_conf(spark) == {}  # the cell's settings were its own
    assert "CELL_FLAG" not in os.environ


def test_a_cell_without_input_or_output_reads_command_and_makes_output(session):
    cell = "#%python\n#%schema=n long\n#%mode=model\n#%runIn=driver\n"
    cell += "from pyjava.api.mlsql import RayContext\nRayContext.connect(globals(), None)\n"
    cell += "context.build_result([{'n': 42}])\n"
    run = session.run(cell)
    assert [shown.name for shown in run.shown] == ["output"] and rows(run.tables["output"]) == [(42,)]


def test_cell_errors_point_into_the_file(spark):
    with pytest.raises(ScriptError) as caught:
        check_script("#%python\n#%inptu=t\nprint(1)\n")
    assert at(caught.value) == (2, 3, "inptu") and "Did you mean 'input'" in caught.value.description
    with pytest.raises(ScriptError) as caught:
        check_script("#%sql\nselect 1\n")
    assert "marked #%python" in caught.value.description
    with pytest.raises(ScriptError, match="confTable is not supported"):
        check_script("#%python\n#%confTable=t\n")
    cell = "#%python\n#%schema=a long\n#%runIn=driver\n#%dataMode=model\n\nx = 1\nraise RuntimeError('in the cell')\n"
    error = failure(spark, cell)
    assert (error.line, error.fragment) == (7, "raise RuntimeError('in the cell')")


# ---------------------------------------------------------------- schema=file and MySQL schemas


def test_schema_file_returns_a_directory_as_rows_and_back(spark, tmp_path):
    source = tmp_path / "model"
    (source / "sub").mkdir(parents=True)
    (source / "weights.bin").write_bytes(bytes(range(256)) * 10_000)
    (source / "sub" / "config.json").write_text('{"layers": 3}', encoding="utf-8")
    restored = tmp_path / "restored"
    text = MODEL_CONF + textwrap.dedent(f"""
        !python conf "schema=file";
        run command as Ray.`` where inputTable="command" and outputTable="model_rows" and code='''
        from pyjava.api.mlsql import RayContext
        from pyjava.storage import streaming_tar
        ray_context = RayContext.connect(globals(), None)
        context.build_result(streaming_tar.build_rows_from_file("{source}"))
        ''';
        !python conf "schema=files long";
        run command as Ray.`` where inputTable="model_rows" and outputTable="unpacked" and code='''
        import os
        from pyjava.api.mlsql import RayContext
        ray_context = RayContext.connect(globals(), None)
        ray_context.fetch_as_dir("{restored}")
        context.build_result([{{"files": sum(len(f) for _, _, f in os.walk("{restored}"))}}])
        ''';
    """)
    tables = run_script(spark, text)
    schema = tables["model_rows"].schema
    assert schema == StructType(
        [StructField("start", LongType()), StructField("offset", LongType()), StructField("value", BinaryType())]
    )
    assert tables["model_rows"].count() == 3  # 2.5 MB of tar in 1 MiB chunks
    assert rows(tables["unpacked"]) == [(2,)]
    assert (restored / "weights.bin").read_bytes() == (source / "weights.bin").read_bytes()
    assert (restored / "sub" / "config.json").read_text(encoding="utf-8") == '{"layers": 3}'


def test_file_schema_is_the_shape_streaming_tar_writes():
    assert FILE_SCHEMA == streaming_tar.FILE_SCHEMA


def test_a_mysql_create_table_is_a_schema(spark):
    text = MODEL_CONF + textwrap.dedent("""
        !python conf '''schema=CREATE TABLE t1 (c1 INT NOT NULL, c2 VARCHAR(20) COMMENT 'name') ENGINE NDB''';
        run command as Ray.`` where inputTable="command" and outputTable="typed" and code='''
        from pyjava.api.mlsql import RayContext
        RayContext.connect(globals(), None)
        context.build_result([{"c1": 1, "c2": "a"}])
        ''';
    """)
    typed = run_script(spark, text)["typed"]
    assert typed.schema == StructType(
        [
            StructField("c1", IntegerType(), False),
            StructField("c2", StringType(), True, {"comment": "name"}),
        ]
    )
    error = failure(spark, '!python conf "schema=CREATE TABLE t (a INT, b VARCHR(3))";')
    assert at(error) == (1, 47, "V") and "unknown MySQL type 'VARCHR'" in error.description


def test_a_python_file_that_is_not_a_cell_fails_before_spark_starts(tmp_path, capsys):
    from sql_ext.cli import main

    plain = write(tmp_path / "plain.py", "print('hello')\n")
    assert main(["run", str(plain)]) == 1
    message = capsys.readouterr().err
    assert "plain.py is Python but not a Byzer Notebook Python cell: start it with the line #%python" in message


def test_errors_from_other_files_keep_their_path_when_pickled(spark, tmp_path):
    import pickle

    write(tmp_path / "typo.byzer", "selec 1 as a as t;\n")
    error = failure(spark, "include project.`typo.byzer`;", base_dir=tmp_path)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.path, copy.line, copy.fragment, str(copy)) == (error.path, error.line, error.fragment, str(error))


def test_mlsql_dotted_py_include_resolves_folders_then_the_name(spark, tmp_path, session):
    write(tmp_path / "python-example" / "test.py", SCORE_PY)
    write(tmp_path / "algs" / "linear.fit.py", SCORE_PY)  # a file whose own name holds a dot
    text = MODEL_CONF + textwrap.dedent("""
        select id from range(2) as ids;
        !pyInclude python-example.test.py named testPyScript;
        !pyInclude algs.linear.fit.py named fitScript;
        !python conf "schema=st(field(id,long),field(score,long))";
        !ray on ids py.testPyScript named scored;
        !ray on ids py.fitScript named fitted;
    """)
    run = session.run(text, base_dir=tmp_path)
    assert rows(run.tables["scored"]) == [(0, 0), (1, 10)]
    assert rows(run.tables["fitted"]) == [(0, 0), (1, 10)]
    error = failure(spark, "!pyInclude python-example.nope.py named t;", base_dir=tmp_path)
    assert at(error) == (1, 12, "python-example.nope.py")
    tried = [str(tmp_path / "python-example" / "nope.py"), str(tmp_path / "python-example.nope.py")]
    assert error.description == (
        f"!pyInclude python-example.nope.py names no file beside the script; tried {', '.join(tried)}"
    )
