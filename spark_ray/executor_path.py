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


def partition_function(
    *,
    job_id: str,
    program_blob: bytes,
    ray_spec: RaySpec | None,
    task_options: dict[str, Any],
    window: int,
    max_bytes: int,
    max_rows: int,
    label: str,
) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The mapInArrow function of one job; ``ray_spec`` None runs without Ray."""

    def run_partition(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from .runners import BatchRunner, InlineRunner, RayRunner, coalesce

        runner: BatchRunner
        if ray_spec is None:
            import cloudpickle

            runner = InlineRunner(cloudpickle.loads(program_blob))
        else:
            from .cluster import ensure_worker_ray

            ensure_worker_ray(ray_spec)
            runner = RayRunner(job_id, program_blob, task_options, window)
        for table in runner.map_shards(coalesce(batches, max_bytes, max_rows)):
            yield from table.to_batches()

    # The name shows in the query plan (MapInArrow ray_transform[...]) and the Spark UI.
    run_partition.__name__ = run_partition.__qualname__ = f"ray_transform[{label}]"
    return run_partition


def run_in_executors(df: DataFrame, schema: StructType, **partition_options: Any) -> DataFrame:
    return df.mapInArrow(partition_function(**partition_options), schema)
