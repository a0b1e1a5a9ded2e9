"""Which Ray a call uses, and with what: runtime_env, ray_namespace, RAY_ADDRESS, local_ray_cpus,
and the SQL table function's per-query rayAddress.

Several tests here change the driver's Ray connection (a new runtime_env or namespace restarts the
embedded Ray); the ``default_ray_afterwards`` fixture puts the session's normal embedded Ray back,
so later tests see the usual connection.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import uuid

import pytest
from processes import alive, kill_pids, mentioning, result_of, run_python
from pyspark.errors import PythonException
from pyspark.sql import Row

import spark_ray
from spark_ray import RayConnectionError, ray_transform
from spark_ray.cluster import ensure_driver_ray, requested_address
from spark_ray.conf import RayTransformConf, resolve_conf

SETTINGS_SCHEMA = "id long, env string, namespace string"
UNREACHABLE = "127.0.0.1:1"  # nothing listens on port 1: connections are refused at once
# The SQL tests use the generic ray_transform table function, whose schema argument needs a UDTF's analyze.
NEEDS_ANALYZE = pytest.mark.needs_spark4(reason="the generic ray_transform table function needs a UDTF's analyze")


def _settings_seen(row):
    """What a Ray task sees of the call's runtime_env and namespace."""
    import os

    import ray

    return {
        "id": row["id"],
        "env": os.environ.get("SPARK_RAY_T", "<unset>"),
        "namespace": ray.get_runtime_context().namespace,
    }


@pytest.fixture(scope="module")
def df(spark):
    return spark.createDataFrame([(1,), (2,), (3,), (4,)], "id long").repartition(2)


@pytest.fixture
def default_ray_afterwards(spark):
    """After the test: the embedded Ray with the default settings, as the session fixture made it.

    ray_address="local" rather than the defaults: RAY_ADDRESS may still be patched while this runs
    (monkeypatch is undone after this fixture), and "local" wins over it.
    """
    yield
    ensure_driver_ray(RayTransformConf(ray_address="local"))


# --- runtime_env and ray_namespace ------------------------------------------------------------


@pytest.mark.parametrize("run_in", ["executor", "driver"])
def test_runtime_env_and_namespace_reach_the_tasks_and_follow_each_call(df, run_in, default_ray_afterwards):
    import ray

    one_partition = df.coalesce(1)  # one Spark worker to reconnect after each change, not two

    def seen(**options):
        out = ray_transform(one_partition, _settings_seen, SETTINGS_SCHEMA, run_in=run_in, **options)
        rows = out.collect()
        assert sorted(r.id for r in rows) == [1, 2, 3, 4]
        return {(r.env, r.namespace) for r in rows}

    env_x = {"env_vars": {"SPARK_RAY_T": "x"}}
    env_y = {"env_vars": {"SPARK_RAY_T": "y"}}
    assert seen(runtime_env=env_x, ray_namespace="ns_test") == {("x", "ns_test")}
    assert ray.get_runtime_context().namespace == "ns_test"  # the driver's own connection too
    # Only the runtime_env changes: the tasks must see the new value, not the first call's (Byzer's bug).
    assert seen(runtime_env=env_y, ray_namespace="ns_test") == {("y", "ns_test")}
    # Only the namespace changes.
    assert seen(runtime_env=env_y, ray_namespace="ns_other") == {("y", "ns_other")}
    # Back to the defaults: no env var, the default namespace.
    assert seen() == {("<unset>", "spark_ray")}
    assert "SPARK_RAY_T" not in os.environ  # runtime_env is for the tasks, not the driver


@pytest.mark.xfail(
    strict=True,
    raises=PythonException,
    reason="a later call with another runtime_env restarts the embedded Ray (cluster.ensure_driver_ray), "
    "so an executor-mode DataFrame made before it points at a Ray that is gone and fails when collected",
)
def test_lazy_executor_result_survives_a_later_call_with_other_settings(df, default_ray_afterwards):
    first = ray_transform(df, _settings_seen, SETTINGS_SCHEMA, runtime_env={"env_vars": {"SPARK_RAY_T": "first"}})
    second = ray_transform(df, _settings_seen, SETTINGS_SCHEMA, runtime_env={"env_vars": {"SPARK_RAY_T": "second"}})
    assert {r.env for r in second.collect()} == {"second"}
    assert {r.env for r in first.collect()} == {"first"}


# Ray ends a driver (here: a Spark Python worker) this long after its GCS went away; 60 s by default.
GCS_GONE_TIMEOUT_ENV = "RAY_gcs_rpc_server_reconnect_timeout_s"


OLD_WORKERS_LAST_S = 20


@pytest.fixture
def spark_workers_that_outlive_their_ray_briefly(spark):
    """Spark Python workers made from now on end themselves ``OLD_WORKERS_LAST_S`` after their Ray's GCS is
    gone, not 60 s: the test can then reach the moment just before, when they look alive but will not last."""
    environment = spark.sparkContext.environment
    environment[GCS_GONE_TIMEOUT_ENV] = str(OLD_WORKERS_LAST_S)
    yield
    environment.pop(GCS_GONE_TIMEOUT_ENV, None)


def test_a_job_after_a_ray_restart_never_lands_on_a_worker_of_the_old_ray(
    df, spark_workers_that_outlive_their_ray_briefly, default_ray_afterwards
):
    """Found in CI: a collect a few seconds before the old workers' end crashed with its worker ("Python
    worker exited unexpectedly"); see ``cluster._python_workers_for_new_ray``."""
    joined = ray_transform(df, _settings_seen, SETTINGS_SCHEMA, runtime_env={"env_vars": {"SPARK_RAY_T": "old"}})
    assert {r.env for r in joined.collect()} == {"old"}  # two Spark workers have joined that Ray
    restarting = time.monotonic()  # the old Ray stops early in the next call, then the new one starts (~8 s)
    after = ray_transform(df, _settings_seen, SETTINGS_SCHEMA, runtime_env={"env_vars": {"SPARK_RAY_T": "new"}})
    # Before the fix, a job from about 5 s before the old workers' end to their end crashed (56 to 59 s of 60).
    time.sleep(max(0.0, OLD_WORKERS_LAST_S - 3.5 - (time.monotonic() - restarting)))
    assert sorted((r.id, r.env) for r in after.collect()) == [(1, "new"), (2, "new"), (3, "new"), (4, "new")]


# --- RAY_ADDRESS ------------------------------------------------------------------------------


def test_requested_address_follows_RAY_ADDRESS_unless_the_option_is_set(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert requested_address(RayTransformConf()) is None  # unset: the embedded Ray

    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    assert requested_address(RayTransformConf()) == "127.0.0.1:6379"
    monkeypatch.setenv("RAY_ADDRESS", "ray://127.0.0.1:10001")
    assert requested_address(RayTransformConf()) == "ray://127.0.0.1:10001"
    for embedded in ("local", ""):
        monkeypatch.setenv("RAY_ADDRESS", embedded)
        assert requested_address(RayTransformConf()) is None

    # The option wins over the environment, "local" included; Byzer's name works the same.
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    assert requested_address(RayTransformConf(ray_address="127.0.0.1:7000")) == "127.0.0.1:7000"
    assert requested_address(RayTransformConf(ray_address="local")) is None
    assert requested_address(resolve_conf(None, {"rayAddress": "127.0.0.1:7001"})) == "127.0.0.1:7001"


@pytest.mark.parametrize("run_in", ["executor", "driver"])
def test_unreachable_RAY_ADDRESS_fails_at_once_naming_it(df, monkeypatch, run_in, default_ray_afterwards):
    monkeypatch.setenv("RAY_ADDRESS", UNREACHABLE)
    with pytest.raises(RayConnectionError, match=r"could not connect to the Ray cluster at '127\.0\.0\.1:1'"):
        ray_transform(df, lambda row: row, "id long", run_in=run_in)
    # A ray_address option wins over the variable: the embedded Ray serves the call.
    out = ray_transform(df, lambda row: row, "id long", run_in=run_in, ray_address="local")
    assert sorted(r.id for r in out.collect()) == [1, 2, 3, 4]

    monkeypatch.delenv("RAY_ADDRESS")
    ensure_driver_ray(RayTransformConf())
    back = ray_transform(df, lambda row: row, "id long", run_in=run_in)  # and without the variable, as usual
    assert sorted(r.id for r in back.collect()) == [1, 2, 3, 4]


# --- local_ray_cpus: in a fresh process, so the session's Ray is untouched -------------------------


def _run_size_probe(sizes: list[int]) -> dict:
    """Run ray_size_child.py in a fresh interpreter with its own Ray temp dir; fail if Ray processes outlive it."""
    ray_tmp = tempfile.mkdtemp(prefix="sr-", dir="/tmp")  # short: Ray's socket paths live under it
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_TMPDIR=ray_tmp, RAY_USAGE_STATS_ENABLED="0")
    try:
        done = run_python("ray_size_child.py", [json.dumps(sizes)], env, timeout_s=300)
        assert done.returncode == 0, done.stderr[-3000:]
        result = result_of(done)
        assert result["ray_processes"], "the probe saw no Ray processes of its own"
        # shutdown() stops Ray's processes; give them a moment to exit, then kill and report any left.
        deadline = time.monotonic() + 60
        left = [p for p in result["ray_processes"] if alive(p)] + mentioning(ray_tmp)
        while left and time.monotonic() < deadline:
            time.sleep(0.5)
            left = [p for p in result["ray_processes"] if alive(p)] + mentioning(ray_tmp)
        kill_pids(sorted(set(left)))
        assert not left, f"Ray processes outlived spark_ray.shutdown(): {sorted(set(left))}"
        return result
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("cpus", [1, 3])
def test_local_ray_cpus_sizes_the_embedded_ray(cpus):
    result = _run_size_probe([cpus])
    assert result["cpus"] == [float(cpus)]
    assert result["connected"] is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="local_ray_cpus is not part of the connection key in cluster.ensure_driver_ray: once the embedded "
    "Ray runs, a call asking for another size silently gets the old one",
)
def test_a_later_local_ray_cpus_is_not_silently_ignored():
    assert _run_size_probe([1, 3])["cpus"] == [1.0, 3.0]


# --- the SQL table function's per-query rayAddress ---------------------------------------------


def _sql_code(address: str, import_ray_first: bool = False) -> str:
    """A pyjava code string as a SQL literal body (\\n escapes), reporting the GCS its task joined."""
    lines = [
        "from pyjava.api.mlsql import RayContext",
        f'rc = RayContext.connect(context, "{address}")',
        'rc.foreach(lambda row: {"id": row["id"], "gcs": __import__("ray").get_runtime_context().gcs_address})',
    ]
    if import_ray_first:  # as Byzer scripts usually start
        lines = (
            ["import ray"]
            + lines[:2]
            + ['rc.foreach(lambda row: {"id": row["id"], "gcs": ray.get_runtime_context().gcs_address})']
        )
    return "\\n".join(lines)


@pytest.fixture
def sql_table(spark, df):
    """The table function registered with Python workers of its own: fresh processes, as on a new executor.

    Spark keeps one pool of Python workers per set of executor environment variables, so a marker
    variable set while registering gives the function's tasks workers that no earlier test has used.
    """
    sc = spark.sparkContext
    sc.environment["SPARK_RAY_TEST_WORKER_POOL"] = uuid.uuid4().hex
    try:
        spark_ray.register(spark)
    finally:
        del sc.environment["SPARK_RAY_TEST_WORKER_POOL"]
    df.createOrReplaceTempView("ray_settings_t")
    yield "ray_settings_t"
    spark.catalog.dropTempView("ray_settings_t")


def _query(table: str, code: str, address: str) -> str:
    return f"SELECT * FROM ray_transform(TABLE({table}), '{code}', 'id long, gcs string', 'rayAddress={address}')"


@NEEDS_ANALYZE
def test_sql_rayAddress_option_runs_the_query_on_that_ray(spark, sql_table):
    import ray

    address = ray.get_runtime_context().gcs_address
    out = spark.sql(_query(sql_table, _sql_code(address), address))
    assert sorted(tuple(r) for r in out.collect()) == [(i, address) for i in (1, 2, 3, 4)]


@NEEDS_ANALYZE
def test_sql_code_string_importing_ray_at_the_top_connects(spark, sql_table):
    import ray

    address = ray.get_runtime_context().gcs_address
    out = spark.sql(_query(sql_table, _sql_code(address, import_ray_first=True), address))
    assert sorted(tuple(r) for r in out.collect()) == [(i, address) for i in (1, 2, 3, 4)]


@NEEDS_ANALYZE
def test_sql_unreachable_rayAddress_fails_naming_it(spark, sql_table):
    with pytest.raises(Exception) as caught:
        spark.sql(_query(sql_table, _sql_code(UNREACHABLE), UNREACHABLE)).collect()
    message = str(caught.value)
    assert "RayConnectionError" in message
    assert f"could not connect to the Ray cluster at '{UNREACHABLE}'" in message


def _imports_ray(row):
    import ray  # noqa: F401  (python_mode="python": this runs inside the Spark worker itself)

    return {"id": row["id"]}


def test_executor_path_after_python_mode_code_imported_ray_in_the_same_worker(spark):
    """Spark reuses its Python workers: a python_mode="python" job whose code imports ray, then a Ray job."""
    sc = spark.sparkContext
    sc.environment["SPARK_RAY_TEST_WORKER_POOL"] = uuid.uuid4().hex  # a fresh Spark worker, used twice
    try:
        one = spark.createDataFrame([(1,)], "id long").coalesce(1)
        assert ray_transform(one, _imports_ray, "id long", python_mode="python").collect() == [Row(id=1)]
        out = ray_transform(one, _settings_seen, SETTINGS_SCHEMA).collect()
    finally:
        del sc.environment["SPARK_RAY_TEST_WORKER_POOL"]
    assert [tuple(r) for r in out] == [(1, "<unset>", "spark_ray")]
