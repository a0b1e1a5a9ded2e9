"""Every Ray option reaches the tasks and the pool's actors (read back inside them with
ray.get_runtime_context()), ray_remote_args takes the rest, and mistakes fail at the call.
GPUs, custom resources and accelerator_type need a Ray with those: test_ray_workloads_subprocess.py."""

from __future__ import annotations

import json
import os

import pytest

from spark_ray import ConfigError, RayTransformConf, close_pools, ray_transform
from spark_ray.conf import resolve_conf
from spark_ray.ray_options import actor_options, task_options

SEEN = "id long, seen string"


def _seen() -> str:
    import ray

    context = ray.get_runtime_context()
    return json.dumps(
        {
            "resources": context.get_assigned_resources(),
            "node": context.get_node_id(),
            "actor": context.get_actor_id() is not None,
            "env": os.environ.get("SPARK_RAY_OPTION_TEST", "<unset>"),
        },
        sort_keys=True,
    )


def seen_in_task(row):
    return {"id": row["id"], "seen": _seen()}


class SeenInActor:
    def __call__(self, row):
        return {"id": row["id"], "seen": _seen()}


def _one(out) -> dict:
    values = {row.seen for row in out.collect()}
    assert len(values) == 1, values
    return json.loads(values.pop())


@pytest.mark.parametrize("code", [seen_in_task, SeenInActor], ids=["task", "actor"])
@pytest.mark.parametrize("run_in", ["executor", "driver"])
def test_named_options_reach_tasks_and_actors(spark, code, run_in):
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node = ray.get_runtime_context().get_node_id()
    df = spark.range(0, 4, numPartitions=2)
    try:
        seen = _one(
            ray_transform(
                df,
                code,
                SEEN,
                run_in=run_in,
                num_cpus=0.5,
                memory=64 << 20,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
                concurrency=1,
            )  # fmt: skip
        )
    finally:
        close_pools()
    assert seen["resources"] == {"CPU": 0.5, "memory": float(64 << 20)}
    assert seen["node"] == node
    assert seen["actor"] is (code is SeenInActor)


@pytest.mark.parametrize("code", [seen_in_task, SeenInActor], ids=["task", "actor"])
def test_ray_remote_args_reach_tasks_and_actors(spark, code):
    df = spark.range(0, 2, numPartitions=1)
    remote_args = {"num_cpus": 0.25, "runtime_env": {"env_vars": {"SPARK_RAY_OPTION_TEST": "from-remote-args"}}}
    try:
        seen = _one(ray_transform(df, code, SEEN, ray_remote_args=remote_args, concurrency=1))
    finally:
        close_pools()
    assert seen["resources"] == {"CPU": 0.25}
    assert seen["env"] == "from-remote-args"


def _fails_once(marker: str):
    """A row function that raises the first time it runs anywhere (``marker`` records it), then passes rows on."""

    def flaky(row):
        if not os.path.exists(marker):
            open(marker, "w").close()
            raise ConnectionError("the model server hiccuped")
        return row

    return flaky


def test_max_retries_and_retry_exceptions_retry_a_failing_task(spark, tmp_path):
    flaky = _fails_once(str(tmp_path / "failed-once"))
    df = spark.range(0, 1, numPartitions=1)
    out = ray_transform(df, flaky, "id long", max_retries=1, retry_exceptions=True)
    assert [r.id for r in out.collect()] == [0]


def test_without_retries_the_same_failure_is_the_users_error(spark, tmp_path):
    flaky = _fails_once(str(tmp_path / "failed-once"))
    df = spark.range(0, 1, numPartitions=1)
    with pytest.raises(Exception, match="raised ConnectionError: the model server hiccuped"):
        ray_transform(df, flaky, "id long", run_in="driver", max_retries=0)


def test_unknown_or_conflicting_ray_options_fail_at_the_call(spark):
    df = spark.range(0, 2)
    with pytest.raises(ConfigError, match=r"ray_remote_args has 'num_cpu'.*Did you mean 'num_cpus'\?"):
        ray_transform(df, lambda row: row, "id long", ray_remote_args={"num_cpu": 1})
    with pytest.raises(ConfigError, match=r"option num_cpus=0.5 and ray_remote_args\['num_cpus'\]=2 disagree"):
        ray_transform(df, lambda row: row, "id long", num_cpus=0.5, ray_remote_args={"num_cpus": 2})
    with pytest.raises(ConfigError, match=r"ray_remote_args\['max_concurrency'\] is set by spark-ray's actor pool"):
        ray_transform(df, SeenInActor, SEEN, ray_remote_args={"max_concurrency": 4})


def test_actor_options_translate_task_retries():
    options, call = actor_options(RayTransformConf(max_retries=3, retry_exceptions=True, accelerator_type="T4"))
    assert options == {"num_cpus": 1.0, "max_restarts": 3, "max_task_retries": 3, "accelerator_type": "T4"}
    assert call == {"retry_exceptions": True}
    assert task_options(RayTransformConf(max_retries=3, retry_exceptions=True, accelerator_type="T4")) == {
        "num_cpus": 1.0,
        "max_retries": 3,
        "retry_exceptions": True,
        "accelerator_type": "T4",
    }


def test_option_texts_from_spark_conf_and_scripts(spark):
    conf = resolve_conf(
        None,
        {
            "concurrency": "1,4",
            "retryExceptions": "true",
            "rayRemoteArgs": '{"max_calls": 5}',
            "pyExecutorMemory": "2048",
            "fnConstructorArgs": '["a", 1]',
        },
    )
    assert conf.concurrency == (1, 4) and conf.retry_exceptions is True
    assert conf.ray_remote_args == {"max_calls": 5} and conf.py_executor_memory == 2048
    assert conf.fn_constructor_args == ("a", 1)
    with pytest.warns(DeprecationWarning, match="max_in_flight is now called tasks_per_partition"):
        assert resolve_conf(None, {"max_in_flight": "3"}).tasks_per_partition == 3  # the old name, its meaning kept
    assert resolve_conf(None, {"concurrency": "(2, 3)"}).concurrency == (2, 3)
    with pytest.raises(ConfigError, match=r"concurrency=\(min, max\) needs 1 <= min <= max"):
        resolve_conf(None, {"concurrency": (3, 1)})
    assert resolve_conf(None, {}).batch_sizing == "auto"
    assert resolve_conf(None, {"batch_rows": 10}).batch_sizing == "fixed"  # a size given is the size used
    assert resolve_conf(None, {"batch_rows": 10, "batch_sizing": "auto"}).batch_sizing == "auto"
