"""Pinning a result so that its Ray work runs once, however many actions follow.

Every eager call (the driver path, model mode, ``from_ray_dataset``) ends in
a local checkpoint: the Ray work cannot be run again to rebuild a lost block
(its servers are closed), so where the blocks live decides what the result
survives.
"""

from __future__ import annotations

from pyspark.sql import DataFrame


def checkpoint_surviving_an_executor(df: DataFrame) -> DataFrame:
    """``df`` computed now and locally checkpointed, with each block on two executors where there are two.

    A local checkpoint keeps its blocks only on the executor that computed them: once that executor is
    lost (killed, preempted, its host down), every later action on the result fails with
    CHECKPOINT_RDD_BLOCK_ID_NOT_FOUND, and the Ray work cannot be run again to rebuild it (its relay is
    closed). A replica on a second executor survives the loss of any one. Needs pyspark's
    ``storageLevel`` argument (4.0+); without it, or with a single executor (local mode), the blocks
    have one copy, as before.
    """
    import inspect

    if "storageLevel" not in inspect.signature(type(df).localCheckpoint).parameters or _executors(df) < 2:
        return df.localCheckpoint(eager=True)
    from pyspark import StorageLevel

    return df.localCheckpoint(eager=True, storageLevel=StorageLevel.MEMORY_AND_DISK_2)


def _executors(df: DataFrame) -> int:
    """The executors the application has now, not counting the driver (0 in local mode, where the
    driver is the one executor; 0 over Spark Connect, which does not say)."""
    try:
        status = df.sparkSession.sparkContext._jsc.sc().getExecutorMemoryStatus()
        return max(0, int(status.size()) - 1)
    except Exception:  # noqa: BLE001 - Spark Connect has no SparkContext here
        return 0
