"""Functions from the user's own modules travel by value to Spark's and Ray's workers.

The module is a .py file in a temp dir that only the driver has on its path:
Spark's Python workers and Ray's workers could not import it by name, so the
rows below can only come back if the function (and what it uses from its
module) was pickled by value.
"""

from __future__ import annotations

import importlib
import sys
import uuid

import pytest
from pyspark.errors import PythonException
from ray.exceptions import RayTaskError

from spark_ray import ray_transform

ROWS = [(1, "a"), (2, "b"), (3, "中")]

# {name} is the module's own name: the function reports whether that name is importable where it runs.
MODULE_SOURCE = '''
import importlib.util

FACTOR = 3


def _scale(value):
    return value * FACTOR


class Tagger:
    """A callable instance, to show objects of the module's classes travel too."""

    def __init__(self, suffix):
        self.suffix = suffix

    def __call__(self, row):
        return {{"id": row["id"], "tag": row["tag"] + self.suffix}}


def triple(row):
    return {{
        "id": row["id"],
        "tripled": _scale(row["id"]),
        "tag": row["tag"] * 2,
        "importable_here": importlib.util.find_spec("{name}") is not None,
    }}


def triple_rows(rows):
    for row in rows:
        yield triple(row)
'''

# A second module of the user's, imported by the first one (not as a function's own module).
HELPER_SOURCE = """
OFFSET = 100


def shift(value):
    return value + OFFSET
"""
USES_HELPER_SOURCE = """
import {helper}


def shifted(row):
    return {{"id": row["id"], "shifted": {helper}.shift(row["id"])}}
"""


def _import_from(tmp_path, monkeypatch, sources: dict[str, str]):
    """Write the modules, put their dir on the driver's path only, import them; undone by the fixture."""
    for name, source in sources.items():
        (tmp_path / f"{name}.py").write_text(source, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))  # restored after the test; also invalidates import caches
    return [importlib.import_module(name) for name in sources]


@pytest.fixture
def module_names():
    """Unique module names per test (workers may cache modules by name); removed from sys.modules after."""
    names: list[str] = []

    def new(prefix: str) -> str:
        names.append(f"{prefix}_{uuid.uuid4().hex[:10]}")
        return names[-1]

    yield new
    for name in names:
        sys.modules.pop(name, None)


@pytest.fixture
def user_module(tmp_path, monkeypatch, module_names):
    name = module_names("spark_ray_user_mod")
    (module,) = _import_from(tmp_path, monkeypatch, {name: MODULE_SOURCE.format(name=name)})
    assert module.__file__.startswith(str(tmp_path))
    return module


@pytest.fixture(scope="module")
def df(spark):
    return spark.createDataFrame(ROWS, "id long, tag string").repartition(2)


@pytest.mark.parametrize("run_in", ["executor", "driver"])
@pytest.mark.parametrize("kind", ["row", "rows"])
def test_function_from_users_module_runs_on_both_paths(df, user_module, run_in, kind):
    fn = user_module.triple if kind == "row" else user_module.triple_rows
    out = ray_transform(df, fn, "id long, tripled long, tag string, importable_here boolean", run_in=run_in, kind=kind)
    got = sorted(tuple(row) for row in out.collect())
    # importable_here False: the workers could not have imported the module by name, so it came by value.
    assert got == [(i, 3 * i, t * 2, False) for i, t in ROWS]


@pytest.mark.parametrize("run_in", ["executor", "driver"])
def test_callable_instance_of_users_class_travels(df, user_module, run_in):
    out = ray_transform(df, user_module.Tagger("!"), "id long, tag string", run_in=run_in)
    assert sorted(tuple(row) for row in out.collect()) == [(i, t + "!") for i, t in ROWS]


@pytest.mark.xfail(
    strict=True,
    raises=(PythonException, RayTaskError),
    reason="only the module defining the function is pickled by value (user_code.pickle_with_user_module); "
    "another user module it imports is pickled by reference and the workers fail with ModuleNotFoundError",
)
@pytest.mark.parametrize("run_in", ["executor", "driver"])
def test_function_using_a_second_user_module_travels(df, tmp_path, monkeypatch, module_names, run_in):
    """README: "functions from your own modules travel by value". Here the function's module imports
    another module of the user's, which the workers cannot import either."""
    helper, uses = module_names("spark_ray_user_helper"), module_names("spark_ray_user_main")
    _, main = _import_from(
        tmp_path, monkeypatch, {helper: HELPER_SOURCE, uses: USES_HELPER_SOURCE.format(helper=helper)}
    )
    out = ray_transform(df, main.shifted, "id long, shifted long", run_in=run_in)
    assert sorted(tuple(row) for row in out.collect()) == [(i, i + 100) for i, _ in ROWS]
