"""The memory cap is enforced: code that grows past py_executor_memory (or memory with enforce_memory)
fails with an error naming the limit and the function, in a task, in an actor's __call__ and __init__,
and code that stays under it is left alone."""

from __future__ import annotations

import pytest
from pyspark.errors import PythonException

from spark_ray import ConfigError, MemoryLimitError, close_pools, ray_transform
from spark_ray.conf import RayTransformConf
from spark_ray.memory_cap import memory_cap, private_memory_bytes


def _grow(blobs: list, megabytes: int) -> None:
    """Allocate ``megabytes`` in 10 MB steps, touching every page (so RSS really grows)."""
    import time

    for _ in range(megabytes // 10):
        blobs.append(bytearray(b"x" * (10 << 20)))
        time.sleep(0.005)


def hog(batch):
    blobs: list = []
    _grow(blobs, 1500)
    return batch


def modest(batch):
    blob = bytearray(b"x" * (20 << 20))
    return batch if blob else batch


class HungryModel:
    def __init__(self, megabytes: int) -> None:
        self.blobs: list = []
        _grow(self.blobs, megabytes)

    def __call__(self, batch):
        _grow(self.blobs, 1500)
        return batch


def test_the_cap_trips_in_this_process_within_its_body():
    base = private_memory_bytes()
    if base is None:
        pytest.skip("no /proc/self/status here")
    limit_mb = (base >> 20) + 100
    blobs: list = []
    with pytest.raises(
        MemoryLimitError, match=rf"function grower exceeded the memory cap py_executor_memory={limit_mb} MB"
    ):
        with memory_cap(limit_mb, "function grower"):
            _grow(blobs, 2000)
    assert len(blobs) < 150, "the cap tripped long after the limit"
    blobs.clear()
    with memory_cap(limit_mb, "function idle"):
        pass  # under the cap: nothing happens


@pytest.mark.parametrize("run_in", ["executor", "driver"])
def test_a_task_past_py_executor_memory_fails_naming_the_limit_and_the_function(spark, run_in):
    df = spark.range(0, 10, numPartitions=1)
    expected = r"function hog \(.*test_memory_cap.py, line \d+\) exceeded the memory cap py_executor_memory=400 MB"
    error_type = PythonException if run_in == "executor" else MemoryLimitError
    with pytest.raises(error_type, match=expected) as caught:
        ray_transform(df, hog, "id long", kind="arrow", run_in=run_in, py_executor_memory=400).collect()
    assert "RssAnon" in str(caught.value) and "over the limit of 400 MB" in str(caught.value)


def test_memory_with_enforce_memory_is_a_cap_too(spark):
    df = spark.range(0, 10, numPartitions=1)
    with pytest.raises(PythonException, match="exceeded the memory cap memory=400 MB"):
        ray_transform(df, hog, "id long", kind="arrow", memory=400 << 20, enforce_memory=True).collect()


def test_code_under_the_cap_runs(spark):
    df = spark.range(0, 10, numPartitions=2)
    out = ray_transform(df, modest, "id long", kind="arrow", py_executor_memory=1024)
    assert sorted(r.id for r in out.collect()) == list(range(10))


def test_an_actor_past_the_cap_fails_in_call_and_in_init(spark):
    df = spark.range(0, 10, numPartitions=1)
    try:
        with pytest.raises(
            MemoryLimitError, match=r"class HungryModel .* exceeded the memory cap py_executor_memory=500 MB"
        ):
            ray_transform(
                df, HungryModel, "id long", kind="arrow", run_in="driver", concurrency=1,
                fn_constructor_args=(10,), py_executor_memory=500,
            )  # fmt: skip
        with pytest.raises(MemoryLimitError, match=r"class HungryModel .* in __init__ exceeded the memory cap"):
            ray_transform(
                df, HungryModel, "id long", kind="arrow", run_in="driver", concurrency=1,
                fn_constructor_args=(1500,), py_executor_memory=500,
            )  # fmt: skip
    finally:
        close_pools()


def test_enforce_memory_needs_a_limit():
    with pytest.raises(ConfigError, match="enforce_memory needs memory"):
        RayTransformConf(enforce_memory=True)
    assert RayTransformConf(py_executor_memory=512).memory_limit_mb == 512
    assert RayTransformConf(py_executor_memory=512).ray_task_options()["memory"] == 512 << 20
    assert RayTransformConf(memory=256 << 20, enforce_memory=True).memory_limit_mb == 256
    assert RayTransformConf(memory=256 << 20).memory_limit_mb is None
