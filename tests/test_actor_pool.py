"""Callable classes in an actor pool: __init__ once per actor (not per shard or partition), in both paths,
from a callable or a code string; the user's own errors; and no actor left behind."""

from __future__ import annotations

import os
import time

import pytest
from pyspark.errors import PythonException

from spark_ray import ConfigError, UserCodeError, close_pools, ray_transform

SCHEMA = "id long, pid long, loads long"


@pytest.fixture
def small_arrow_batches(arrow_batch_rows):
    """Spark hands Python 4 rows per Arrow batch: with batch_rows=4, 100 rows in 4 partitions are 28 shards."""
    arrow_batch_rows(4)


@pytest.fixture
def no_pools_left(spark):
    """Every test here ends with no actor pool alive, whatever it did."""
    yield
    close_pools()


class Model:
    """A 'model': __init__ leaves a trace file per load, __call__ one per batch."""

    def __init__(self, traces: str, greeting: str = "hi") -> None:
        self.traces = traces
        self.greeting = greeting
        self.loads = 0
        with open(os.path.join(traces, f"load-{os.getpid()}-{time.monotonic_ns()}"), "w"):
            pass

    def __call__(self, batch):
        import pandas as pd

        with open(os.path.join(self.traces, f"call-{os.getpid()}-{time.monotonic_ns()}"), "w"):
            pass
        return pd.DataFrame({"id": batch["id"], "pid": os.getpid(), "loads": len(self._loads())})

    def _loads(self) -> list[str]:
        return [name for name in os.listdir(self.traces) if name.startswith("load-")]


def _traces(directory, prefix: str) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name.startswith(prefix))


def _wait_until_gone(pids: set[int], timeout_s: float = 60.0) -> set[int]:
    """The pids still alive after waiting up to ``timeout_s`` (Ray kills actors asynchronously)."""
    deadline = time.monotonic() + timeout_s
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        alive = {pid for pid in alive if _alive(pid)}
        if alive:
            time.sleep(0.2)
    return alive


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/status", encoding="ascii") as status:  # a zombie is gone for our purposes
        return "State:\tZ" not in status.read()


def _pool_actors() -> list[str]:
    import ray

    return [name for name in ray.util.list_named_actors() if name.startswith("spark_ray_pool_")]


@pytest.mark.parametrize("run_in", ["executor", "driver"])
def test_a_callable_class_loads_once_per_actor_across_all_partitions(
    spark, tmp_path, run_in, small_arrow_batches, no_pools_left
):
    df = spark.range(0, 100, numPartitions=4)
    out = ray_transform(
        df,
        Model,
        SCHEMA,
        kind="pandas",
        run_in=run_in,
        concurrency=2,
        batch_rows=4,
        fn_constructor_args=(str(tmp_path),),
    )
    rows = out.collect()

    assert sorted(r.id for r in rows) == list(range(100))
    calls, loads = _traces(tmp_path, "call-"), _traces(tmp_path, "load-")
    assert len(calls) == 28  # one per shard: 25 rows per partition in 4-row Arrow batches
    assert len(loads) == 2  # the pool size, not 28 shards or 4 partitions
    pids = {r.pid for r in rows}
    assert len(pids) == 2 and pids != {os.getpid()}
    if run_in == "executor":
        assert close_pools() >= 1  # a lazy result's pool lives until its idle timeout, or until asked
    assert _wait_until_gone(pids) == set(), "the pool's actors outlived the call"
    assert _pool_actors() == []


def test_a_lazy_results_pool_stops_when_idle_and_starts_again_for_the_next_action(
    spark, tmp_path, small_arrow_batches, no_pools_left
):
    df = spark.range(0, 40, numPartitions=2)
    out = ray_transform(
        df,
        Model,
        SCHEMA,
        kind="pandas",
        concurrency=1,
        batch_rows=4,
        actor_idle_timeout=1,
        fn_constructor_args=(str(tmp_path),),
    )
    first = {r.pid for r in out.collect()}
    loads = len(_traces(tmp_path, "load-"))
    assert _wait_until_gone(first) == set(), "an idle pool kept its actor"
    second = {r.pid for r in out.collect()}  # the same DataFrame again: a new actor, one more load
    assert len(first) == len(second) == 1 and first.isdisjoint(second)
    assert len(_traces(tmp_path, "load-")) == loads + 1


def test_constructor_arguments_and_kwargs_reach_init(spark, tmp_path, no_pools_left):
    class Greeter(Model):
        def __call__(self, batch):
            import pandas as pd

            return pd.DataFrame({"id": batch["id"], "greeting": self.greeting})

    df = spark.range(0, 3, numPartitions=1)
    out = ray_transform(
        df,
        Greeter,
        "id long, greeting string",
        kind="pandas",
        concurrency=1,
        fn_constructor_args=[str(tmp_path)],
        fn_constructor_kwargs={"greeting": "bonjour"},
        run_in="driver",
    )
    assert {r.greeting for r in out.collect()} == {"bonjour"}


POOL_CODE = """
import os
from pyjava.api.mlsql import RayContext
ray_context = RayContext.connect(context, "local")

class Tagger:
    def __init__(self):
        open(os.path.join(TRACES, f"load-{os.getpid()}"), "w").close()

    def __call__(self, rows):
        for row in rows:
            yield {"id": row["id"], "pid": os.getpid(), "loads": 0}

ray_context.map_iter(Tagger)
"""


@pytest.mark.parametrize("run_in", ["executor", "driver"])
def test_a_code_string_declares_a_class_with_map_iter(spark, tmp_path, run_in, small_arrow_batches, no_pools_left):
    code = f"TRACES = {str(tmp_path)!r}\n" + POOL_CODE
    df = spark.range(0, 100, numPartitions=4)
    rows = ray_transform(df, code, SCHEMA, run_in=run_in, concurrency=2, batch_rows=4).collect()
    assert sorted(r.id for r in rows) == list(range(100))
    assert len(_traces(tmp_path, "load-")) == len({r.pid for r in rows}) == 2


class Broken:
    def __init__(self) -> None:
        raise FileNotFoundError("no weights at /models/broken.bin")

    def __call__(self, row):
        return row


def test_a_failing_init_surfaces_as_the_users_error_with_their_line(spark, no_pools_left):
    df = spark.range(0, 5, numPartitions=1)
    with pytest.raises(UserCodeError) as caught:
        ray_transform(df, Broken, "id long", run_in="driver", concurrency=1)
    message = str(caught.value)
    assert "class Broken" in message and "raised FileNotFoundError in __init__" in message
    assert "no weights at /models/broken.bin" in message
    assert 'raise FileNotFoundError("no weights at /models/broken.bin")' in message  # the user's own line

    with pytest.raises(PythonException, match="raised FileNotFoundError in __init__: no weights"):
        ray_transform(df, Broken, "id long", concurrency=1).collect()
    close_pools()
    assert _pool_actors() == [] or _wait_for_no_pool_actors()


def _wait_for_no_pool_actors(timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _pool_actors():
            return True
        time.sleep(0.2)
    return False


def test_options_for_classes_only_are_refused_for_functions(spark):
    df = spark.range(0, 2)
    with pytest.raises(ConfigError, match="fn_constructor_kwargs are for a callable class"):
        ray_transform(df, lambda row: row, "id long", fn_constructor_kwargs={"a": 1})
    with pytest.raises(ConfigError, match=r"concurrency=\(1, 4\) is a pool size range"):
        ray_transform(df, lambda row: row, "id long", concurrency=(1, 4))


def test_a_pool_the_embedded_ray_cannot_hold_fails_at_the_call(spark):
    df = spark.range(0, 2)
    with pytest.raises(ConfigError, match=r"each actor of the pool needs \{'GPU': 1.0\}"):
        ray_transform(df, Model, SCHEMA, num_gpus=1)


def test_without_ray_a_class_is_built_once_per_spark_worker(spark, tmp_path, small_arrow_batches):
    df = spark.range(0, 100, numPartitions=4)
    rows = ray_transform(
        df, Model, SCHEMA, kind="pandas", python_mode="python", batch_rows=4, fn_constructor_args=(str(tmp_path),)
    ).collect()
    assert len(rows) == 100
    assert len(_traces(tmp_path, "load-")) == len({r.pid for r in rows}) <= 2  # local[2]: two Python workers


def test_an_idle_pool_gives_its_actors_back_when_the_driver_starts_another_call(
    spark, tmp_path, small_arrow_batches, no_pools_left
):
    df = spark.range(0, 20, numPartitions=2)
    pooled = ray_transform(df, Model, SCHEMA, kind="pandas", concurrency=2, batch_rows=4,
                           fn_constructor_args=(str(tmp_path),), actor_idle_timeout=3600)  # fmt: skip
    pids = {r.pid for r in pooled.collect()}
    assert len(pids) == 2 and all(_alive(pid) for pid in pids)  # a lazy result's pool outlives its action
    # Right away, the next call's tasks need the CPUs the pool's actors hold: the pool steps aside at once.
    # Otherwise this call would wait out the hour-long idle timeout (back-to-back calls are the common case).
    assert sorted(r.id for r in ray_transform(df, lambda row: row, "id long").collect()) == list(range(20))
    assert _wait_until_gone(pids, timeout_s=10.0) == set()
