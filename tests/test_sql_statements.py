"""`set` in each of its types, and `save ... where partitionBy=...`, run on the shared local Spark."""

from __future__ import annotations

import pathlib

import pytest
from pyspark.errors import PySparkException
from pyspark.sql import Row

from sql_ext import ScriptError, ScriptSession, run_script
from sql_ext.runner import SET_TYPES

ANSI = "spark.sql.ansi.enabled"


pytestmark = pytest.mark.usefixtures("fresh_script_session")  # conftest.py


@pytest.fixture
def ansi_restored(spark):
    """`set ... where type=conf` changes the shared SparkSession: put the conf back afterwards."""
    before = spark.conf.get(ANSI)
    yield
    spark.conf.set(ANSI, before)


def rows(df):
    return sorted(tuple(row) for row in df.collect())


def script_error(spark, text, **kwargs):
    with pytest.raises(ScriptError) as caught:
        run_script(spark, text, **kwargs)
    return caught.value


def test_run_script_returns_the_tables_by_name(spark):
    """runner.py's module example (it needs a SparkSession, so it runs here rather than as a doctest)."""
    tables = run_script(spark, "select 1 as id as t;")
    assert tables["t"].collect() == [Row(id=1)]


# ---------------------------------------------------------------- set, by type


def test_set_types_are_the_four_byzer_has():
    assert SET_TYPES == ("text", "sql", "defaultParam", "conf")


def test_set_text_changes_only_the_statements_after_it(spark):
    text = """set v='1';
select ${v} as n as first;
set v='''2''';
select ${v} as n as second;
set v="3" where type=text;
select ${v} as n as third;"""
    tables = run_script(spark, text)
    assert [rows(tables[name]) for name in ("first", "second", "third")] == [[(1,)], [(2,)], [(3,)]]
    assert tables["first"].dtypes == [("n", "int")]
    assert ScriptSession.of(spark).variables["v"] == "3"


def test_set_sql_holds_the_first_value_of_its_query(spark):
    text = """select id from range(5) as nums;
set top=`select max(id) from nums` where type=sql;
set none=`select id from nums where id > 100` where type=SQL;
set label=`select concat('top=', ${top})` where type=sql;
select id, '${none}' as none, '${label}' as label from nums where id = ${top} as last;"""
    tables = run_script(spark, text)
    assert rows(tables["last"]) == [(4, "", "top=4")]
    variables = ScriptSession.of(spark).variables
    assert (variables["top"], variables["none"], variables["label"]) == ("4", "", "top=4")


def test_set_default_param_yields_to_a_value_set_before_it(spark):
    text = """set d='script default' where type=defaultParam;
select '${d}' as d as seen;"""
    assert rows(run_script(spark, text)["seen"]) == [("script default",)]
    ScriptSession.forget(spark)
    assert rows(run_script(spark, text, variables={"d": "passed in"})["seen"]) == [("passed in",)]
    ScriptSession.forget(spark)
    text = """set d='first';
set d='second' where type=defaultParam;
select '${d}' as d as kept;
set d='third';
select '${d}' as d as replaced;"""
    tables = run_script(spark, text)
    assert rows(tables["kept"]) == [("first",)]
    assert rows(tables["replaced"]) == [("third",)]


def test_set_conf_changes_what_spark_does_for_the_statements_after_it(spark, ansi_restored):
    text = f"""set `{ANSI}`='''true''' where type=conf;
select 1 / 0 as x as strict;
set `{ANSI}`='''false''' where type=conf;
select 1 / 0 as x, '${{{ANSI}}}' as ansi as lenient;"""
    tables = run_script(spark, text)
    assert spark.conf.get(ANSI) == "false"
    assert ScriptSession.of(spark).variables[ANSI] == "false"  # a conf is a variable too
    assert tables["lenient"].dtypes == [("x", "double"), ("ansi", "string")]
    assert tables["lenient"].collect() == [Row(x=None, ansi="false")]
    # The select before the second set was analysed with ANSI on: dividing by zero fails.
    with pytest.raises(PySparkException, match="DIVIDE_BY_ZERO"):
        tables["strict"].collect()


def test_an_unknown_set_type_or_key_points_at_it(spark):
    error = script_error(spark, "set a='1' where type=confg;")
    assert (error.line, error.column, error.fragment) == (1, 22, "confg")
    assert error.description == "unknown set type 'confg'. Did you mean 'conf'? Known: text, sql, defaultParam, conf"
    error = script_error(spark, "set a='1' where kind=conf;")
    assert error.fragment == "kind"
    assert error.description == "set takes only `where type=...`, not 'kind'"


# ---------------------------------------------------------------- save ... where partitionBy


NUMS = "select id, if(id % 2 = 0, 'even', 'odd') as parity, id % 3 as m from range(6) as nums;\n"


def partition_dirs(root: pathlib.Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*=*") if path.is_dir())


def data_files(directory: pathlib.Path) -> list[pathlib.Path]:
    return [path for path in directory.iterdir() if path.name.startswith("part-")]


def test_save_partition_by_one_column_writes_a_directory_per_value(spark, tmp_path):
    text = f"""{NUMS}save overwrite nums as parquet.`{tmp_path}/p` where partitionBy="parity";
load parquet.`{tmp_path}/p` as back;
load parquet.`{tmp_path}/p/parity=even` as evens;"""
    tables = run_script(spark, text)
    assert partition_dirs(tmp_path / "p") == ["parity=even", "parity=odd"]
    # The partition column leaves the files and comes back, last, from the directory names.
    assert tables["back"].dtypes == [("id", "bigint"), ("m", "bigint"), ("parity", "string")]
    assert rows(tables["back"]) == [(0, 0, "even"), (1, 1, "odd"), (2, 2, "even"), (3, 0, "odd"), (4, 1, "even"), (5, 2, "odd")]  # fmt: skip
    assert tables["evens"].columns == ["id", "m"]
    assert rows(tables["evens"]) == [(0, 0), (2, 2), (4, 1)]


def test_save_partition_by_two_columns_with_file_num(spark, tmp_path):
    text = f"""{NUMS}save overwrite nums as json.`{tmp_path}/j` where partitionBy="parity, m" and fileNum="1";
load json.`{tmp_path}/j` as back;"""
    tables = run_script(spark, text)
    leaves = [path for path in partition_dirs(tmp_path / "j") if "/" in path]
    assert leaves == [f"parity={parity}/m={m}" for parity in ("even", "odd") for m in (0, 1, 2)]
    assert all(len(data_files(tmp_path / "j" / leaf)) == 1 for leaf in leaves)  # fileNum="1": one file each
    assert tables["back"].dtypes == [("id", "bigint"), ("parity", "string"), ("m", "int")]
    assert rows(tables["back"].select("id", "parity", "m")) == [
        (0, "even", 0), (1, "odd", 1), (2, "even", 2), (3, "odd", 0), (4, "even", 1), (5, "odd", 2),
    ]  # fmt: skip


def test_save_partition_by_an_unknown_column_points_at_the_option(spark, tmp_path):
    text = f"""{NUMS}save overwrite nums as parquet.`{tmp_path}/bad` where partitionBy="id,parit";"""
    error = script_error(spark, text)
    assert (error.line, error.fragment) == (2, "id,parit")
    assert error.description == (
        "partitionBy names no column 'parit' of the table. Did you mean 'parity'? Its columns: id, parity, m"
    )
    assert not (tmp_path / "bad").exists()
