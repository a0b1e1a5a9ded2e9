"""How spark-ray's own Spark jobs are named and grouped.

Driver-mode and model-mode calls run Spark jobs right away; they get a job
group (so ``cancelJobGroup`` stops them, and the driver path cancels its own
group when a Ray task fails) and a description that names the call in the
Spark UI. Executor-mode results are lazy and run under the caller's action, so
they are named only in the query plan (``MapInArrow ray_transform[fn]``).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

from pyspark import SparkContext


def new_job_id() -> str:
    """One id per call: Ray workers cache the call's program by it, and it names the default job group."""
    return uuid.uuid4().hex


def default_group(job_id: str) -> str:
    return f"spark-ray-{job_id}"


@contextlib.contextmanager
def spark_job_group(sc: SparkContext, group_id: str, description: str) -> Iterator[None]:
    """Name the Spark jobs started inside, then restore the caller's group and description."""
    keys = ("spark.jobGroup.id", "spark.job.description", "spark.job.interruptOnCancel")
    previous = {key: sc.getLocalProperty(key) for key in keys}
    sc.setJobGroup(group_id, description, interruptOnCancel=True)
    try:
        yield
    finally:
        for key, value in previous.items():
            sc.setLocalProperty(key, value)  # type: ignore[arg-type]  # None removes it
