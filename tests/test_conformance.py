"""One suite for every door that runs user code: the same behaviours, asserted the same way at each.

The doors: ``ray_transform`` on the executor and on the driver path, the generic SQL table function,
``register_function``, and the script language (``!ray on t '''code''' named out where ...``), which all
map the user's function over the table; and model mode, which runs code once and refuses the mapping
options by name. Each behaviour is written once, as a code string (every door takes those; the generic SQL
function takes nothing else) and, where a door takes Python objects, as a callable too. Every cell passes,
or asserts the refusal message.
"""

from __future__ import annotations

import datetime
import decimal
import inspect
import json
import math
import os
import uuid
from collections import Counter

import pytest

from spark_ray import ConfigError, MemoryLimitError, ray_transform, register, register_function
from spark_ray.spark_compat import HAS_UDTF_ANALYZE
from sql_ext.runner import ScriptSession, run_script

MAPPING_DOORS = ["executor", "driver", "sql", "registered", "script"]
CALLABLE_DOORS = ["executor", "driver", "registered"]  # doors that take a Python object as the code

HEADER = """
import os
from pyjava.api.mlsql import RayContext
ray_context = RayContext.connect(context, "local")
"""


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def _as_text(value):
    """An option value as a SQL query's JSON or a script's string takes it."""
    if isinstance(value, tuple):
        value = list(value)
    return value if isinstance(value, str) else json.dumps(value)


@pytest.fixture(scope="module")
def sql_function(spark):
    if not HAS_UDTF_ANALYZE:
        return None
    name = _unique("conformance_transform")
    register(spark, name)
    return name


@pytest.fixture
def run_at(spark, sql_function):
    """``run_at(door, df, code, schema, **options)``: the door's output rows, as a list of Rows."""

    def run(door, df, code, schema, **options):
        if door in ("executor", "driver"):
            return ray_transform(df, code, schema, run_in=door, **options).collect()
        view = _unique("conformance_input")
        df.createOrReplaceTempView(view)
        try:
            if door == "sql":
                if sql_function is None:
                    pytest.skip("the generic SQL table function needs analyze (pyspark 4)")
                text = json.dumps({key: _as_text(value) for key, value in options.items()})
                query = f"SELECT * FROM {sql_function}(TABLE({view}), :code, :schema, :options)"
                return spark.sql(query, args={"code": code, "schema": schema, "options": text}).collect()
            if door == "registered":
                name = _unique("conformance_fn")
                register_function(spark, name, code, schema, **options)
                return spark.sql(f"SELECT * FROM {name}(TABLE({view}))").collect()
            assert door == "script"
            ScriptSession.forget(spark)
            where = " and ".join(f"{key}='''{_as_text(value)}'''" for key, value in options.items())
            where = f' where schema="{schema}"' + (f" and {where}" if where else "")
            return run_script(spark, f"!ray on {view} '''{code}''' named out{where};")["out"].collect()
        finally:
            spark.catalog.dropTempView(view)

    return run


def _failure(run_at, door, *args, **options) -> str:
    """The error a door raises, as the caller reads it (SQL doors wrap ours in Spark's)."""
    with pytest.raises(Exception) as caught:  # noqa: PT011 - each door wraps our error in its own
        run_at(door, *args, **options)
    return str(caught.value)


@pytest.fixture(scope="module")
def ids(spark):
    return spark.range(0, 100, numPartitions=2)


# --------------------------------------------------------------------------- the four kinds


KIND_CODES = {
    "row": HEADER + 'ray_context.foreach(lambda row: {"id": row["id"] * 2})\n',
    "rows": HEADER + 'ray_context.map_iter(lambda rows: ({"id": r["id"] * 2} for r in rows))\n',
    "arrow": HEADER
    + """
import pyarrow.compute as pc
def double(batch):
    return batch.set_column(0, "id", pc.multiply(batch.column(0), 2))
ray_context.map_batches(double, batch_format="pyarrow")
""",
    "pandas": HEADER
    + """
def double(frame):
    frame["id"] = frame["id"] * 2
    return frame
ray_context.map_batches(double, batch_format="pandas")
""",
}


@pytest.mark.parametrize("kind", list(KIND_CODES))
@pytest.mark.parametrize("door", MAPPING_DOORS)
def test_every_kind(run_at, ids, door, kind):
    rows = run_at(door, ids, KIND_CODES[kind], "id long")
    assert sorted(r.id for r in rows) == [2 * i for i in range(100)]


def _double_pandas(frame):
    frame["id"] = frame["id"] * 2
    return frame


@pytest.mark.parametrize("door", CALLABLE_DOORS)
def test_batch_format_names_ray_datas_kinds_for_a_callable(run_at, ids, door):
    rows = run_at(door, ids, _double_pandas, "id long", batch_format="pandas")
    assert sorted(r.id for r in rows) == [2 * i for i in range(100)]


@pytest.mark.parametrize("door", MAPPING_DOORS)
def test_a_kind_option_that_contradicts_the_code_string_is_refused(run_at, ids, door):
    message = _failure(run_at, door, ids, KIND_CODES["row"], "id long", batch_format="pandas")
    assert "batch_format='pandas' was given, but the code string declares a 'row' function" in message


BATCH_SIZE_CODE = (
    HEADER
    + """
import pyarrow as pa
def sizes(batch):
    return pa.RecordBatch.from_pydict({"id": batch.column(0), "n": pa.array([batch.num_rows] * batch.num_rows)})
ray_context.map_batches(sizes, batch_format="pyarrow")
"""
)


@pytest.mark.parametrize("door", MAPPING_DOORS)
def test_batch_size_is_the_exact_rows_of_every_call_but_a_partitions_last(run_at, ids, door):
    rows = run_at(door, ids, BATCH_SIZE_CODE, "id long, n long", batch_size=7, batch_rows=20)
    assert sorted(r.id for r in rows) == list(range(100))
    calls = Counter(r.n for r in rows)  # rows per call size; a call of n rows gives n rows
    short = {n: count // n for n, count in calls.items() if n != 7}
    assert sum(short.values()) <= 2, f"more short calls than Spark partitions: {calls}"  # 50 rows each: 7 * 7 + 1


@pytest.mark.parametrize("door", MAPPING_DOORS)
def test_batch_size_for_a_per_row_function_is_refused(run_at, ids, door):
    message = _failure(run_at, door, ids, KIND_CODES["row"], "id long", batch_size=10)
    assert "batch_size=10 is the rows per call of a batch function" in message


# --------------------------------------------------------------------------- callable classes


class Offset:
    """A callable class that leaves a file per load and per call, so a test can count both."""

    def __init__(self, trace_dir, offset=0):
        import uuid

        self.trace_dir, self.offset, self.load = trace_dir, offset, uuid.uuid4().hex
        open(os.path.join(trace_dir, "load-" + self.load), "w").close()

    def __call__(self, batch):
        import uuid

        import pyarrow as pa

        open(os.path.join(self.trace_dir, "call-" + uuid.uuid4().hex), "w").close()
        ids = batch.column(0).to_pylist()
        return pa.RecordBatch.from_pydict({"id": [i + self.offset for i in ids], "load": [self.load] * len(ids)})


# The same class declared in a code string, as the SQL doors and scripts take it.
CLASS_CODE = HEADER + inspect.getsource(Offset) + 'ray_context.map_batches(Offset, batch_format="pyarrow")\n'


def _check_pool(rows, trace_dir, offset):
    assert sorted(r.id for r in rows) == [i + offset for i in range(100)]
    loads = [name for name in os.listdir(trace_dir) if name.startswith("load-")]
    calls = [name for name in os.listdir(trace_dir) if name.startswith("call-")]
    assert len(calls) >= 20, f"the test needs 20+ batches, got {len(calls)}"
    assert len(loads) == 2, f"a class loads once per actor of its pool (concurrency=2), got {len(loads)} loads"
    assert {r.load for r in rows} <= {name[len("load-") :] for name in loads}


@pytest.mark.parametrize("door", MAPPING_DOORS)
def test_a_class_in_a_code_string_loads_once_per_actor_with_its_constructor_arguments(run_at, ids, door, tmp_path):
    options = {"fn_constructor_kwargs": {"trace_dir": str(tmp_path), "offset": 1000}, "concurrency": 2}
    rows = run_at(door, ids, CLASS_CODE, "id long, load string", batch_size=4, batch_rows=4, **options)
    _check_pool(rows, tmp_path, 1000)


@pytest.mark.parametrize("door", CALLABLE_DOORS)
def test_a_python_class_loads_once_per_actor_with_its_constructor_arguments(run_at, ids, door, tmp_path):
    rows = run_at(
        door, ids, Offset, "id long, load string", kind="arrow", batch_size=4, batch_rows=4,
        fn_constructor_args=(str(tmp_path),), fn_constructor_kwargs={"offset": 7}, concurrency=2,
    )  # fmt: skip
    _check_pool(rows, tmp_path, 7)


@pytest.mark.parametrize("door", MAPPING_DOORS)
def test_constructor_arguments_for_a_function_are_refused(run_at, ids, door):
    message = _failure(run_at, door, ids, KIND_CODES["row"], "id long", fn_constructor_kwargs={"a": 1})
    assert "fn_constructor_kwargs are for a callable class, but function <lambda>" in message


# --------------------------------------------------------------------------- Ray options, read back


OPTIONS_CODE = (
    HEADER
    + """
import ray
def where(row):
    context = ray.get_runtime_context()
    return {"id": row["id"], "cpus": context.get_assigned_resources().get("CPU", 0.0),
            "head": context.get_assigned_resources().get("node:__internal_head__", 0.0),
            "env": os.environ.get("CONFORMANCE_ENV", "")}
ray_context.foreach(where)
"""
)


@pytest.mark.parametrize("door", MAPPING_DOORS)
def test_ray_options_reach_the_task(run_at, spark, door):
    df = spark.range(0, 4, numPartitions=2)
    options = {
        "num_cpus": 0.5,
        "resources": {"node:__internal_head__": 0.01},
        "ray_remote_args": {"runtime_env": {"env_vars": {"CONFORMANCE_ENV": door}}},
    }
    rows = run_at(door, df, OPTIONS_CODE, "id long, cpus double, head double, env string", **options)
    assert sorted((r.id, r.cpus, r.head, r.env) for r in rows) == [(i, 0.5, 0.01, door) for i in range(4)]


MAX_RETRIES_CODE = (
    HEADER
    + """
def fail_once(row):
    marker = os.path.join(MARKER_DIR, "failed")
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("the first call fails")
    return {"id": row["id"]}
ray_context.foreach(fail_once)
"""
)


@pytest.mark.parametrize("door", MAPPING_DOORS)
def test_max_retries_runs_a_failed_task_again(run_at, spark, door, tmp_path):
    code = MAX_RETRIES_CODE.replace("MARKER_DIR", repr(str(tmp_path)))
    df = spark.range(0, 10, numPartitions=2)
    rows = run_at(door, df, code, "id long", max_retries=1, retry_exceptions=True)
    assert sorted(r.id for r in rows) == list(range(10))
    assert os.path.exists(tmp_path / "failed")


# --------------------------------------------------------------------------- errors


RAISING_CODE = (
    HEADER
    + """
def explode(row):
    if row["id"] == 3:
        raise ValueError("conformance boom at " + str(row["id"]))
    return row
ray_context.foreach(explode)
"""
)


@pytest.mark.parametrize("door", MAPPING_DOORS)
def test_a_failure_shows_the_users_own_traceback(run_at, ids, door):
    message = _failure(run_at, door, ids, RAISING_CODE, "id long")
    assert "ValueError: conformance boom at 3" in message
    assert 'raise ValueError("conformance boom at " + str(row["id"]))' in message  # the user's own line


MEMORY_CODES = {
    # One C call writes 1.5 GB and the code then waits in another: no bytecode runs to raise in, so the
    # watchdog ends the process and the caller still gets the cap's error.
    "in C": HEADER
    + """
import time
def hog(row):
    held = b"\\x01" * (1500 << 20)
    time.sleep(10)
    return {"id": row["id"] + len(held)}
ray_context.foreach(hog)
""",
    "in Python": HEADER
    + """
import time
def hog(row):
    held = [bytearray(1 << 20) for _ in range(1500)]
    time.sleep(10)
    return {"id": row["id"] + len(held)}
ray_context.foreach(hog)
""",
}


@pytest.mark.parametrize("where", list(MEMORY_CODES))
@pytest.mark.parametrize("door", MAPPING_DOORS)
def test_the_memory_cap_trips_with_its_own_error(run_at, spark, door, where):
    df = spark.range(0, 1, numPartitions=1)
    message = _failure(run_at, door, df, MEMORY_CODES[where], "id long", py_executor_memory=300, max_retries=0)
    assert "function hog (" in message and "exceeded the memory cap py_executor_memory=300 MB" in message
    assert " MB, over the limit of 300 MB" in message


def test_the_memory_cap_error_is_the_python_apis_own_type(spark):
    df = spark.range(0, 1, numPartitions=1)
    with pytest.raises(MemoryLimitError, match="exceeded the memory cap py_executor_memory=300 MB"):
        ray_transform(df, MEMORY_CODES["in C"], "id long", run_in="driver", py_executor_memory=300, max_retries=0)


# --------------------------------------------------------------------------- every type, with nulls


TYPES = (
    "b boolean, y byte, h short, i int, l long, f float, d double, m decimal(10,2), dt date, ts timestamp, "
    "bin binary, s string, a array<string>, mp map<string,bigint>, st struct<x:int,y:string>"
)
TYPED_ROWS = [
    (
        True, 7, 300, 70000, 2**40, 1.5, 2.25, decimal.Decimal("12.34"), datetime.date(2024, 2, 29),
        datetime.datetime(2024, 2, 29, 12, 30, 1, 123456), bytearray(b"\x00\xff"), "中 ok", ["a", None],
        {"k": 1}, (1, "x"),
    ),
    (None,) * 15,
]  # fmt: skip
IDENTITY_CODES = {
    "row": HEADER + "ray_context.foreach(lambda row: row)\n",
    "arrow": HEADER + 'ray_context.map_batches(lambda batch: batch, batch_format="pyarrow")\n',
}


@pytest.mark.parametrize("kind", list(IDENTITY_CODES))
@pytest.mark.parametrize("door", MAPPING_DOORS)
def test_every_type_and_null_round_trips(run_at, spark, door, kind):
    df = spark.createDataFrame(TYPED_ROWS, TYPES)
    rows = run_at(door, df, IDENTITY_CODES[kind], TYPES)
    got = sorted((tuple(r) for r in rows), key=lambda r: r[0] is None)
    assert [tuple(_plain(v) for v in r) for r in got] == [tuple(_plain(v) for v in r) for r in TYPED_ROWS]


def _plain(value):
    """A Row's value compared as data: a struct as a tuple, a float's NaN as itself."""
    if hasattr(value, "asDict"):
        return tuple(value)
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


# --------------------------------------------------------------------------- model mode: runs once, refuses what maps


MODEL_CODE = """
from pyjava.api.mlsql import RayContext
ray_context = RayContext.connect(context, "local")
context.build_result([{"id": row["id"]} for row in ray_context.collect()])
"""


@pytest.mark.parametrize(
    "option, value",
    [
        ("kind", "arrow"), ("batch_size", 10), ("concurrency", 2), ("num_gpus", 0), ("num_cpus", 1),
        ("py_executor_memory", 300), ("fn_constructor_kwargs", {"a": 1}), ("max_retries", 1),
    ],
)  # fmt: skip
def test_model_mode_refuses_the_options_of_mapping_doors_by_name(spark, ids, option, value):
    with pytest.raises(ConfigError) as caught:
        ray_transform(ids, MODEL_CODE, "id long", mode="model", **{option: value})
    assert str(caught.value).startswith(f"option {option} does not apply to ray_transform(mode='model'); it applies to")
    assert "register_function" in str(caught.value)


def test_model_mode_runs_its_code_once_over_every_type(spark):
    df = spark.createDataFrame(TYPED_ROWS, TYPES)
    code = """
from pyjava.api.mlsql import RayContext
ray_context = RayContext.connect(context, "local")
ray_context.build_result_from_batches(ray_context.collect_batches())
"""
    rows = ray_transform(df, code, TYPES, mode="model").collect()
    got = sorted((tuple(r) for r in rows), key=lambda r: r[0] is None)
    assert [tuple(_plain(v) for v in r) for r in got] == [tuple(_plain(v) for v in r) for r in TYPED_ROWS]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda df: __import__("spark_ray").to_ray_dataset(df, num_gpus=1), "option num_gpus does not apply to to_ray_dataset"),
        (lambda df: __import__("spark_ray").to_ray_dataset(df, kind="arrow"), "option kind does not apply to to_ray_dataset"),
    ],
)  # fmt: skip
def test_dataset_doors_refuse_what_they_cannot_honour(spark, ids, call, message):
    with pytest.raises(ConfigError, match=message):
        call(ids)
