"""run_in="executor": the data never leaves the executors.

``mapInArrow`` hands each partition's Arrow batches to a function that runs in
Spark's Python worker: it coalesces them into shards, sends each shard to a
Ray task (a bounded window at a time) and yields the results in order. The
worker joins Ray once and reuses the connection for every partition.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql.types import StructType

from .cluster import RaySpec
from .conf import RayTransformConf
from .runners import coalesce, map_shards, runner_for


def partition_function(
    *,
    job_id: str,
    program_blob: bytes,
    ray_spec: RaySpec | None,
    conf: RayTransformConf,
    label: str,
) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The mapInArrow function of one job; ``ray_spec`` None runs without Ray."""
    task_options = conf.ray_task_options()
    window, max_bytes, max_rows = conf.max_in_flight, conf.batch_bytes, conf.batch_rows

    def run_partition(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        runner = runner_for(job_id, program_blob, ray_spec, task_options)
        for table in map_shards(runner, coalesce(batches, max_bytes, max_rows), window):
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
) -> DataFrame:
    """Lazy, like any mapInArrow result: the Ray work runs under the caller's action."""
    run_partition = partition_function(
        job_id=job_id, program_blob=program_blob, ray_spec=ray_spec, conf=conf, label=label
    )
    return df.mapInArrow(run_partition, schema)
