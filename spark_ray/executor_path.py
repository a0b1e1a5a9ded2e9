"""run_in="executor": the data never leaves the executors.

``mapInArrow`` hands each partition's Arrow batches to a function that runs in
Spark's Python worker: it coalesces them into shards, sends each shard to a
Ray task (a bounded window at a time) and yields the results in order. The
worker joins Ray once and reuses the connection for every partition.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql.types import StructType

from .cluster import RaySpec
from .conf import RayTransformConf
from .errors import reported_first
from .runners import coalesce, map_shards, runner_for
from .shard_sizing import ShardSizer, observing


def partition_function(
    *,
    job_id: str,
    program_blob: bytes,
    ray_spec: RaySpec | None,
    conf: RayTransformConf,
    label: str,
    window: int | None = None,
    pool: Any = None,
) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The mapInArrow function of one job; ``ray_spec`` None runs without Ray.

    ``window`` is the shards in flight per partition (``conf.max_in_flight``
    if None); ``pool`` an ``actor_pool.PoolRef`` when the code is a callable
    class. With ``batch_sizing="auto"`` each partition sizes its shards from
    their timings (``shard_sizing``).
    """
    import cloudpickle

    # Pickled apart from the closure: a Ray object among the options (a scheduling strategy) would import
    # ray while Spark unpickles the closure, before ensure_worker_ray has set the Ray auth token.
    options_blob = cloudpickle.dumps(conf.ray_task_options() if ray_spec is not None and pool is None else {})
    max_bytes, max_rows = conf.batch_bytes, conf.batch_rows
    in_flight = window or conf.max_in_flight
    adaptive = conf.batch_sizing == "auto" and ray_spec is not None

    def run_partition(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        # The user catches Spark's PythonException: its report opens with our one line (column, value,
        # function) rather than our traceback.
        with reported_first():
            if ray_spec is not None:
                from .cluster import ensure_worker_ray

                ensure_worker_ray(ray_spec)
            task_options = cloudpickle.loads(options_blob)
            runner = runner_for(job_id, program_blob, ray_spec, task_options, pool=pool)
            sizer = ShardSizer(max_rows, max_bytes) if adaptive else None
            collect = observing(runner.collect, sizer)
            shards = coalesce(batches, max_bytes, max_rows, sizer)
            for table in map_shards(runner, shards, in_flight, collect):
                yield from table.to_batches()

    # The name shows in the query plan (MapInArrow ray_transform[...]) and the Spark UI.
    run_partition.__name__ = run_partition.__qualname__ = f"ray_transform[{label}]"
    return run_partition


def run_in_executors(
    df: DataFrame,
    schema: StructType,
    *,
    job_id: str,
    program_blob: bytes,
    ray_spec: RaySpec | None,
    conf: RayTransformConf,
    label: str,
    window: int | None = None,
    pool: Any = None,
) -> DataFrame:
    """Lazy, like any mapInArrow result: the Ray work runs under the caller's action.

    A pool (callable class) outlives this call: its actors stop after
    ``actor_idle_timeout`` seconds without work (see ``actor_pool``).
    """
    run_partition = partition_function(
        job_id=job_id,
        program_blob=program_blob,
        ray_spec=ray_spec,
        conf=conf,
        label=label,
        window=window,
        pool=pool,
    )
    return df.mapInArrow(run_partition, schema)
