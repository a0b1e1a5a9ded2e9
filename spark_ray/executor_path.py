"""run_in="executor": the data never leaves the executors.

``mapInArrow`` hands each partition's Arrow batches to a function that runs in
Spark's Python worker: the call's pipeline (``pipeline``) cuts them into
shards, runs a bounded window of them on Ray (tasks, or the call's actor
pool) and yields the results in order. The worker joins Ray once and reuses
the connection for every partition.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql.types import StructType

from .errors import reported_first
from .pipeline import RunnerPlan, ShardFlow


def partition_function(
    runner: RunnerPlan, flow: ShardFlow, label: str
) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The mapInArrow function of one call: each partition through the call's pipeline."""

    def run_partition(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        # The user catches Spark's PythonException: its report opens with our one line (column, value,
        # function) rather than our traceback.
        with reported_first():
            for table in flow.pull(batches, runner.runner()):
                yield from table.to_batches()

    # The name shows in the query plan (MapInArrow ray_transform[...]) and the Spark UI.
    run_partition.__name__ = run_partition.__qualname__ = f"ray_transform[{label}]"
    return run_partition


def run_in_executors(
    df: DataFrame, schema: StructType, *, runner: RunnerPlan, flow: ShardFlow, label: str
) -> DataFrame:
    """Lazy, like any mapInArrow result: the Ray work runs under the caller's action.

    A pool (callable class) outlives this call: its actors stop after
    ``actor_idle_timeout`` seconds without work, and a later action starts them again
    (see ``actor_pool``).
    """
    return df.mapInArrow(partition_function(runner, flow, label), schema)
