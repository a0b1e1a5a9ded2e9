"""Options: one typed home, four layers, Byzer's names accepted."""

from __future__ import annotations

import pytest

from spark_ray import ConfigError, RayTransformConf, ray_transform, set_session_conf
from spark_ray.conf import resolve_conf


def test_defaults():
    conf = resolve_conf(None, {})
    assert conf == RayTransformConf()
    assert (conf.mode, conf.run_in, conf.kind, conf.python_mode) == ("data", "executor", "row", "ray")


def test_call_beats_session_beats_spark_conf_beats_default(spark):
    spark.conf.set("spark.ray.batch_rows", "111")
    spark.conf.set("spark.ray.runIn", "driver")
    spark.conf.set("spark.ray.tasks_per_partition", "3")
    try:
        assert resolve_conf(spark, {}).batch_rows == 111
        set_session_conf(spark, batch_rows="222", dataMode="data", runIn="executor")
        conf = resolve_conf(spark, {})
        assert (conf.batch_rows, conf.run_in, conf.tasks_per_partition) == (222, "executor", 3)
        conf = resolve_conf(spark, {"batch_rows": 333})
        assert (conf.batch_rows, conf.run_in, conf.tasks_per_partition) == (333, "executor", 3)
        assert resolve_conf(spark, {}).num_gpus == 0.0  # untouched: the default
    finally:
        spark.conf.unset("spark.ray.batch_rows")
        spark.conf.unset("spark.ray.runIn")
        spark.conf.unset("spark.ray.tasks_per_partition")


def test_strings_are_read_as_the_fields_types(spark):
    set_session_conf(spark, dashboard="true", num_cpus="0.5", runtime_env='{"env_vars": {"A": "1"}}', spill_dir="none")
    conf = resolve_conf(spark, {})
    assert conf.dashboard is True and conf.num_cpus == 0.5
    assert conf.runtime_env == {"env_vars": {"A": "1"}} and conf.spill_dir is None


def test_unreadable_value_names_option_and_type(spark):
    with pytest.raises(ConfigError, match="option batch_rows expects int; cannot read 'many'"):
        set_session_conf(spark, batch_rows="many")


def test_unknown_spark_conf_key_is_an_error(spark):
    spark.conf.set("spark.ray.runin_typo", "driver")
    try:
        with pytest.raises(ConfigError, match="unknown option 'runin_typo'"):
            resolve_conf(spark, {})
    finally:
        spark.conf.unset("spark.ray.runin_typo")


def test_ray_task_options_only_holds_what_is_set():
    assert RayTransformConf().ray_task_options() == {"num_cpus": 1.0}
    conf = RayTransformConf(num_cpus=0.5, num_gpus=1, resources={"bob": 1.0}, memory=1 << 20)
    assert conf.ray_task_options() == {"num_cpus": 0.5, "num_gpus": 1, "resources": {"bob": 1.0}, "memory": 1 << 20}


def test_session_settings_reach_ray_transform(spark):
    df = spark.createDataFrame([(1,)], "id long")
    set_session_conf(spark, kind="arrow")
    out = ray_transform(df, lambda batch: batch, "id long")  # an arrow function works: kind came from the session
    assert [r.id for r in out.collect()] == [1]


def test_driver_jobs_are_named_and_the_callers_group_is_restored(spark):
    sc = spark.sparkContext
    sc.setJobGroup("callers-group", "caller's own description")
    try:
        df = spark.createDataFrame([(1,)], "id long")
        ray_transform(df, lambda row: row, "id long", run_in="driver", job_group="named-by-test")
        assert sc.statusTracker().getJobIdsForGroup("named-by-test"), "no Spark job ran under the job group"
        assert sc.getLocalProperty("spark.jobGroup.id") == "callers-group"
        assert sc.getLocalProperty("spark.job.description") == "caller's own description"
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
        sc.setLocalProperty("spark.job.description", None)


def test_executor_plan_names_the_function(spark):
    def tag_rows(row):
        return row

    out = ray_transform(spark.createDataFrame([(1,)], "id long"), tag_rows, "id long")
    assert (
        "ray_transform[test_executor_plan_names_the_function.<locals>.tag_rows]" in out._jdf.queryExecution().toString()
    )


def test_python_env_exports_and_activations_are_read():
    conf = RayTransformConf(
        python_env="export PYTHONIOENCODING=utf8 && export MLSQL_DEV='1' && source activate streamingpro"
    )
    assert conf.env_vars() == {"PYTHONIOENCODING": "utf8", "MLSQL_DEV": "1"}
    assert conf.activations() == ["streamingpro"]


def test_byzer_interpreter_and_env_names_warn_once_and_do_not_fail(spark):
    import warnings

    df = spark.createDataFrame([(1,)], "id long")
    settings = {
        "python_exec": "/home/someone/miniconda3/envs/conf-test/bin/python",
        "python_env": "export A=1 && source activate env-missing-in-conf-test",
    }
    with pytest.warns(UserWarning) as record:
        out = ray_transform(df, lambda row: row, "id long", **settings)
    messages = [str(w.message) for w in record]
    assert any(
        "pythonExec='/home/someone/miniconda3/envs/conf-test/bin/python' is not this interpreter" in m for m in messages
    )
    assert any("PYTHON_ENV activates 'env-missing-in-conf-test', which does not exist here" in m for m in messages)
    assert [r.id for r in out.collect()] == [1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same notes are not repeated
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # pyspark 3.5's own (distutils)
        ray_transform(df, lambda row: row, "id long", **settings)


def test_every_option_says_which_doors_honour_it():
    from spark_ray.conf import FIELD_NAMES
    from spark_ray.doors import HONOURED_AT

    assert set(HONOURED_AT) == set(FIELD_NAMES), "an option without a row in doors.HONOURED_AT, or a stale row"
    assert all(HONOURED_AT.values()), "an option no door honours"


@pytest.mark.parametrize(
    "function, door",
    [
        ("spark_ray.api:ray_transform", "executor"),
        ("spark_ray.registered_function:register_function", "registered"),
        ("spark_ray.datasets:to_ray_dataset", "to_dataset"),
        ("spark_ray.datasets:from_ray_dataset", "from_dataset"),
    ],
)
def test_a_doors_keyword_only_knobs_are_options_it_honours(function, door):
    """help() shows a door's knobs: each must be an option that door honours, under its own name."""
    import importlib
    import inspect

    from spark_ray.doors import doors_for

    module, name = function.split(":")
    parameters = inspect.signature(getattr(importlib.import_module(module), name)).parameters.values()
    knobs = [p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert knobs, f"{name} lists no knobs"
    assert [knob for knob in knobs if door not in doors_for(knob)] == []


def test_an_option_given_at_a_door_that_cannot_honour_it_is_refused_by_name():
    from spark_ray.doors import FROM_DATASET, MODEL

    with pytest.raises(ConfigError) as caught:
        resolve_conf(None, {"batch_rows": 10}, door=FROM_DATASET)
    assert str(caught.value).startswith(
        "option batch_rows does not apply to from_ray_dataset; it applies to ray_transform(run_in='executor'), "
        "ray_transform(run_in='driver'), ray_transform(mode='model'), the ray_transform SQL table function, "
        "register_function, to_ray_dataset."
    )
    # Session and Spark-conf defaults are shared by every door: only what the door was given is checked.
    assert resolve_conf(None, {}, door=MODEL).given == frozenset()
    assert resolve_conf(None, {"spill_dir": "/tmp"}, door=MODEL).spill_dir == "/tmp"


def test_batch_format_is_ray_datas_name_for_a_kind():
    assert resolve_conf(None, {"batch_format": "pyarrow"}).kind == "arrow"
    assert resolve_conf(None, {"batchFormat": "pandas"}).kind == "pandas"
    with pytest.raises(ConfigError, match="options kind='rows' and batch_format='pandas' disagree"):
        resolve_conf(None, {"kind": "rows", "batch_format": "pandas"})
    with pytest.raises(ConfigError, match="option batch_format must be one of 'pyarrow', 'pandas'; got 'numpy'"):
        resolve_conf(None, {"batch_format": "numpy"})
    with pytest.raises(ConfigError, match="option batch_size must be at least 1, got 0"):
        resolve_conf(None, {"batch_size": 0})


def test_the_catch_all_takes_options_by_name_and_the_rest_as_ray_remote_args():
    from spark_ray.conf import door_options

    given = door_options({"kind": "arrow", "num_cpus": None}, {"runIn": "driver", "max_concurrency": 4})
    assert given == {"kind": "arrow", "runIn": "driver", "ray_remote_args": {"max_concurrency": 4}}
    with pytest.raises(ConfigError, match="unknown option 'batch_row'"):
        resolve_conf(None, door_options({}, {"batch_row": 5}, ray_args=False))
