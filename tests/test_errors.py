"""What users see when something is wrong: each message names the thing at fault."""

from __future__ import annotations

import re

import pytest
from pyspark.errors import PythonException

from spark_ray import ConfigError, ResultSchemaError, SchemaParseError, UserCodeError, ray_transform

BOTH_PATHS = ["executor", "driver"]


@pytest.fixture(scope="module")
def small_df(spark):
    return spark.createDataFrame([(1, "a"), (2, "b"), (3, "c")], "id long, content string")


def run(df, *args, **kwargs):
    """Collect the result, so that lazy (executor) and eager (driver) paths fail alike."""
    return ray_transform(df, *args, **kwargs).collect()


def test_malformed_schema_quotes_it_and_points_at_the_fault(small_df):
    with pytest.raises(SchemaParseError) as caught:
        ray_transform(small_df, lambda row: row, "st(field(id,lon))")
    message = str(caught.value)
    assert "unknown type 'lon'" in message and "did you mean 'long'" in message
    assert "st(field(id,lon))" in message
    assert message.splitlines()[-1] == "  " + " " * len("st(field(id,") + "^"


@pytest.mark.parametrize("run_in", BOTH_PATHS)
def test_wrong_value_type_names_column_type_value_and_function(small_df, run_in):
    def label_as_number(row):
        return {"id": row["id"], "content": row["content"]}

    with pytest.raises((ResultSchemaError, PythonException)) as caught:
        run(small_df, label_as_number, "id long, content long", run_in=run_in)
    message = str(caught.value)
    assert "column 'content' expects long" in message
    assert re.search(r"returned '[abc]' \(str\)", message)  # whichever partition failed first
    assert "function test_wrong_value_type_names_column_type_value_and_function.<locals>.label_as_number" in message


@pytest.mark.parametrize("run_in", BOTH_PATHS)
def test_fractional_float_into_long_column_is_refused(small_df, run_in):
    with pytest.raises((ResultSchemaError, PythonException)) as caught:
        run(small_df, lambda row: {"id": row["id"] + 0.5}, "id long", run_in=run_in)
    assert "column 'id' expects long" in str(caught.value)
    assert re.search(r"returned [123]\.5 \(float\)", str(caught.value))


def test_missing_key_names_the_key_and_the_row_keys(spark, small_df):
    with pytest.raises(ResultSchemaError) as caught:
        run(small_df, lambda row: {"id": row["id"]}, "id long, label double", run_in="driver")
    message = str(caught.value)
    assert "without column(s) ['label']" in message and "has keys ['id']" in message


def test_wrong_column_count_from_arrow_shows_both_lists(small_df):
    with pytest.raises(ResultSchemaError) as caught:
        run(small_df, lambda batch: batch, "id long", kind="arrow", run_in="driver")
    assert "returned 2 columns ['id', 'content'], but the schema has 1 columns ['id']" in str(caught.value)


def test_arrow_string_column_does_not_silently_become_numbers(small_df):
    with pytest.raises(ResultSchemaError) as caught:
        run(small_df, lambda batch: batch, "id long, content double", kind="arrow", run_in="driver")
    assert "column 'content' expects double" in str(caught.value)
    assert "a column of string cannot become double" in str(caught.value)


def test_null_in_not_null_column(small_df):
    with pytest.raises(ResultSchemaError) as caught:
        run(small_df, lambda row: {"id": None}, "id long NOT NULL", run_in="driver")
    assert "column 'id' is declared NOT NULL" in str(caught.value)


CODE_THAT_FAILS = """from pyjava.api.mlsql import RayContext
ray_context = RayContext.connect(context, "local")

def echo(row):
    return {"id": row["id"] // (row["id"] - 2)}

ray_context.foreach(echo)
"""


@pytest.mark.parametrize("run_in", BOTH_PATHS)
def test_exception_in_code_string_shows_type_message_and_the_users_line(small_df, run_in):
    with pytest.raises((UserCodeError, PythonException)) as caught:
        run(small_df, CODE_THAT_FAILS, "id long", run_in=run_in)
    message = str(caught.value)
    assert "function echo" in message and "raised ZeroDivisionError: integer division or modulo by zero" in message
    assert ", line 5, in echo" in message
    assert 'return {"id": row["id"] // (row["id"] - 2)}' in message  # the user's own source line
    assert "spark_ray/user_code.py" not in message.split("raised ZeroDivisionError")[1]


def test_user_code_error_from_driver_path_is_the_users_error(small_df):
    def explode(row):
        raise KeyError("no such thing")

    with pytest.raises(UserCodeError) as caught:
        run(small_df, explode, "id long", run_in="driver")
    assert "raised KeyError: 'no such thing'" in str(caught.value)
    assert "in explode" in caught.value.user_traceback
    assert 'raise KeyError("no such thing")' in caught.value.user_traceback


def test_syntax_error_in_code_string_names_the_line(small_df):
    with pytest.raises(UserCodeError) as caught:
        ray_transform(small_df, "x = 1\ndef broken(:\n    pass\n", "id long")
    assert "syntax error at line 2" in str(caught.value)


def test_code_string_that_declares_nothing(small_df):
    with pytest.raises(UserCodeError) as caught:
        ray_transform(small_df, "x = 1\n", "id long")
    assert "declared no function" in str(caught.value) and "ray_context.foreach(fn)" in str(caught.value)


def test_unknown_option_lists_the_known_ones(small_df):
    with pytest.raises(ConfigError) as caught:
        ray_transform(small_df, lambda row: row, "id long", bach_rows=10)
    message = str(caught.value)
    assert "unknown option 'bach_rows'" in message and "Did you mean 'batch_rows'?" in message
    assert "run_in" in message and "python_mode" in message


def test_bad_option_value(small_df):
    with pytest.raises(ConfigError, match="option run_in must be one of 'executor', 'driver'; got 'gpu'"):
        ray_transform(small_df, lambda row: row, "id long", run_in="gpu")


def test_code_that_is_neither_callable_nor_text(small_df):
    with pytest.raises(TypeError, match="code must be a callable or a string of Python source, got int"):
        ray_transform(small_df, 42, "id long")
