"""One local[2] SparkSession and one embedded Ray for the whole test session; each test module's tier.

The tiers, the fast slice and the pyspark 3.5 line's selection are markers assigned here, from ``MODULES``
(README, "Testing"): ``make test`` runs everything, ``make test-fast`` ``-m fast``, ``make test-spark35``
``-m spark35``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from spark_ray import cluster
from spark_ray import conf as spark_ray_conf
from spark_ray.local_spark import local_spark

# The Python files under byzer_docs/ are Byzer code (notebook cells, files `!pyInclude` reads), not test
# modules: they import `pyjava` and use the `context` a script run gives them.
collect_ignore_glob = ["byzer_docs/*.py", "byzer_docs/*/*.py", "byzer_docs/*/*/*.py"]

_AFTER_SPARK: list[Callable[[], None]] = []


# --- tiers ---------------------------------------------------------------------------------------------

TIERS = {
    "unit": "no Spark or Ray processes of its own and no session fixture (the library's doctests too)",
    "paths": "the shared session's Spark (local[2]) and embedded Ray: ray_transform's paths and options",
    "sql": "sql_ext and the SQL table functions, on the shared session",
    "deploy": "clusters, servers and child processes of its own (each starts its own Spark or Ray)",
}
RUNS = {
    "fast": "in `make test-fast`, the developer's loop (every unit module, and a quick slice of the others)",
    "spark35": "in `make test-spark35`: what differs on the pyspark 3.5 line (compat, fallbacks, RayDP, the matrix)",
}

# Every test module, by name: its tier first, then the runs besides `make test` it is in. A module missing
# here fails collection (place a new file before it runs); a name without a file is allowed (a module being
# written on another branch). Why a module is in `spark35`: README, "Testing". Besides the modules named
# spark35 here, the tests in SPARK35_TESTS and every test marked needs_spark4 are in it.
MODULES: dict[str, str] = {
    # unit
    "test_data_server": "unit fast",
    "test_module_structure": "unit fast",  # the module map and the import contracts, read with ast
    "test_schema": "unit fast spark35",  # the variant type (4.0) and the Arrow/Spark type mapping per pyspark
    "test_sql_mysql_schema": "unit fast",
    "test_sql_parser": "unit fast",
    # paths
    "test_actor_pool": "paths",
    "test_bad_input": "paths",  # some of its tests run on 3.5 too: SPARK35_TESTS
    "test_bench_smoke": "paths",
    "test_bench_workloads": "paths",
    "test_code_strings": "paths",
    "test_conformance": "paths spark35",  # every door x every behaviour on the shared session, on both lines
    "test_conf": "paths fast spark35",  # runtime_conf: `SET` where spark.conf.getAll is missing (3.5)
    "test_datasets": "paths",
    "test_driver_path": "paths",
    "test_errors": "paths fast",
    "test_memory_cap": "paths",
    "test_model_mode": "paths",
    "test_option_effects": "paths",
    "test_ray_options": "paths",
    "test_ray_settings": "paths",
    "test_shard_sizing": "paths",
    "test_transform": "paths fast",
    "test_user_modules": "paths",
    # sql
    "test_byzer_docs": "sql",
    "test_registered_function": "sql spark35",  # the row protocol where arrow_udtf (4.1) is missing
    "test_sql_byzer_statements": "sql",
    "test_sql_progress": "sql",
    "test_sql_pyjava": "sql",
    "test_sql_script_conf": "sql",  # context.conf as Byzer fills it: a script's keys as spelt, the pass-through warning
    "test_sql_register": "sql spark35",  # Byzer's register form: a registered function, rows protocol on 3.5
    "test_sql_runner": "sql fast spark35",  # Spark's error text and positions without getCondition (3.5)
    "test_sql_statements": "sql",
    "test_sql_udtf": "sql",
    # deploy
    "test_cluster": "deploy",
    "test_deploy_ray_client": "deploy",
    "test_deploy_ray_on_spark": "deploy",
    "test_deploy_raydp": "deploy spark35",  # RayDP needs pyspark <= 3.5.7: it runs on the 3.5 line only
    "test_deploy_spark_cluster": "deploy",
    "test_deploy_spark_connect": "deploy",
    "test_faults": "deploy",
    "test_load_and_leaks": "deploy",
    "test_ray_auth": "deploy",
    "test_ray_workloads_subprocess": "deploy",
    "test_sql_cli": "deploy",  # `spark-ray run` in child processes, each with its own Spark and Ray
}
# Where only some tests of a module differ on the 3.5 line: those tests (by function name) are in spark35.
SPARK35_TESTS: dict[str, set[str]] = {
    "test_bad_input": {
        # the worker's error report, read past pyspark 3.5's own frames (no SPARK_HIDE_TRACEBACK there)
        "test_tuple_of_the_wrong_length_names_both_counts",
        "test_extra_keys_are_named",
        "test_a_row_function_returning_neither_dict_nor_tuple",
        "test_a_rows_function_returning_a_scalar",
        "test_spark_ray_error_in_gives_our_error_back_from_sparks",
        "test_model_mode_in_an_executor_raises_our_error_not_sparks",
        # Spark's Arrow and pandas conversions, which differ between pyspark lines
        "test_every_type_round_trips_through_every_kind_and_path",
        "test_pandas_kind_sees_maps_as_dicts_as_the_row_kind_does",
    },
}
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


def markers_of(module: str) -> list[str]:
    """The markers of a test module (by name, without .py); the tier first. ValueError if it is not placed."""
    spec = MODULES.get(module)
    if spec is None:
        raise ValueError(
            f"tests/{module}.py has no tier: add it to MODULES in tests/conftest.py "
            f"(tiers: {', '.join(TIERS)}; runs: {', '.join(RUNS)})"
        )
    words = spec.split()
    if words[0] not in TIERS or not set(words[1:]) <= set(RUNS):
        raise ValueError(f"MODULES[{module!r}] = {spec!r}: a tier ({', '.join(TIERS)}) then runs ({', '.join(RUNS)})")
    return words + ["fast"] if words[0] == "unit" and "fast" not in words else words


def pytest_addoption(parser):
    parser.addoption(
        "--require-tests",
        action="store_true",
        help="fail (exit 5) when no test passed or failed: a selection that ran nothing, or all skipped",
    )


def pytest_configure(config):
    for name, description in {**TIERS, **RUNS}.items():
        config.addinivalue_line("markers", f"{name}: {description}")
    config.addinivalue_line(
        "markers",
        "needs_spark4(reason, version='4.0'): the test needs a pyspark feature the 3.5 line lacks "
        "(`make test-spark35`); skipped there, with the reason",
    )


def _module_of(item: pytest.Item) -> str | None:
    """The test module's name for a test under tests/; None for anything else (the library's doctests)."""
    path = str(item.path)
    if os.path.dirname(path) != TESTS_DIR or not os.path.basename(path).startswith("test_"):
        return None
    return os.path.splitext(os.path.basename(path))[0]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Mark each test with its module's tier and runs (before -m selects), then skip the tests marked
    needs_spark4 on a pyspark older than the version they name."""
    unplaced = set()
    for item in items:
        module = _module_of(item)
        try:
            names = ["unit", "fast"] if module is None else markers_of(module)
        except ValueError as error:
            unplaced.add(str(error))
            continue
        if "spark35" not in names and (
            item.get_closest_marker("needs_spark4") is not None  # a skip there: `-rs` lists what 3.5 lacks
            or getattr(item, "originalname", item.name) in SPARK35_TESTS.get(module or "", ())
        ):
            names.append("spark35")
        for name in names:
            item.add_marker(name)
    if unplaced:
        raise pytest.UsageError("\n".join(sorted(unplaced)))

    import pyspark

    from spark_ray.spark_compat import PYSPARK_VERSION

    for item in items:
        marker = item.get_closest_marker("needs_spark4")
        if marker is None:
            continue
        version = marker.kwargs.get("version", "4.0")
        if PYSPARK_VERSION < tuple(int(part) for part in version.split(".")):
            reason = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "")
            item.add_marker(
                pytest.mark.skip(reason=f"needs pyspark >= {version}, this is {pyspark.__version__}: {reason}")
            )


def stop_after_spark(cleanup: Callable[[], None]) -> None:
    """Run ``cleanup`` at session end, after Spark (and its Python workers) stopped."""
    _AFTER_SPARK.append(cleanup)


@pytest.fixture(scope="session")
def spark():
    session = local_spark("local[2]", app_name="spark-ray-tests", **{"spark.ui.enabled": "false"})
    cluster.ensure_driver_ray(spark_ray_conf.RayTransformConf())
    yield session
    # Spark first: its Python workers hold Ray connections that should close before Ray does.
    session.stop()
    cluster.shutdown()
    for cleanup in _AFTER_SPARK:
        cleanup()


@pytest.fixture(autouse=True)
def _fresh_session_settings(request):
    """Session settings (set_session_conf) never leak from one test into the next."""
    yield
    if "spark" in request.fixturenames:
        spark_ray_conf.clear_session_conf(request.getfixturevalue("spark"))


def pytest_sessionfinish(session, exitstatus):
    """With --require-tests (the Makefile's runs), a run in which no test passed or failed is exit 5 (no
    tests), whatever the reason: nothing selected, or everything skipped (a missing package on one line)."""
    if not session.config.getoption("require_tests") or exitstatus != 0:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    stats = reporter.stats if reporter is not None else {}
    if not stats.get("passed") and not stats.get("failed") and not stats.get("xfailed"):
        if reporter is not None:
            reporter.write_line("--require-tests: no test ran (all deselected or skipped)", red=True)
        session.exitstatus = pytest.ExitCode.NO_TESTS_COLLECTED


# --- fixtures more than one module needs ---------------------------------------------------------------

ARROW_BATCH_ROWS = "spark.sql.execution.arrow.maxRecordsPerBatch"


@pytest.fixture
def arrow_batch_rows(spark) -> Iterator[Callable[[int], None]]:
    """``arrow_batch_rows(n)``: Spark hands Python ``n`` rows per Arrow batch until the test ends."""
    previous = spark.conf.get(ARROW_BATCH_ROWS, None)

    def set_rows(rows: int) -> None:
        spark.conf.set(ARROW_BATCH_ROWS, str(rows))

    yield set_rows
    if previous is None:
        spark.conf.unset(ARROW_BATCH_ROWS)
    else:
        spark.conf.set(ARROW_BATCH_ROWS, previous)


@pytest.fixture
def fresh_script_session(spark) -> Iterator[None]:
    """Variables, settings and caches that scripts leave in the session (sql_ext's ScriptSession) never
    reach the next test: the SQL modules use it for each test (``pytest.mark.usefixtures``)."""
    from sql_ext import ScriptSession

    ScriptSession.forget(spark)
    yield
    ScriptSession.forget(spark)
