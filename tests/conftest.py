"""One local[2] SparkSession and one embedded Ray for the whole test session."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from spark_ray import cluster
from spark_ray import conf as spark_ray_conf
from spark_ray.local_spark import local_spark

# The Python files under byzer_docs/ are Byzer code (notebook cells, files `!pyInclude` reads), not test
# modules: they import `pyjava` and use the `context` a script run gives them.
collect_ignore_glob = ["byzer_docs/*.py", "byzer_docs/*/*.py", "byzer_docs/*/*/*.py"]

_AFTER_SPARK: list[Callable[[], None]] = []


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "needs_spark4(reason, version='4.0'): the test needs a pyspark feature the 3.5 line lacks "
        "(`make test-spark35`); skipped there, with the reason",
    )


def pytest_collection_modifyitems(config, items):
    """Skip the tests marked needs_spark4 on a pyspark older than the version they name."""
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
