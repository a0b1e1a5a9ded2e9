"""How spark-ray's own Spark jobs are named and grouped.

Driver-mode and model-mode calls run Spark jobs right away; they get a job
group (so ``cancelJobGroup`` stops them, and the driver path cancels its own
group when a Ray task fails) and a description that names the call in the
Spark UI. Executor-mode results are lazy and run under the caller's action, so
they are named only in the query plan (``MapInArrow ray_transform[fn]``).

Over Spark Connect the group is an operation tag (``spark.interruptTag`` stops
it) and there is no description; ``spark_session_kind`` says how.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .conf import RayTransformConf
from .spark_session_kind import kind_of


def new_job_id() -> str:
    """One id per call: Ray workers cache the call's program by it, and it names the default job group."""
    return uuid.uuid4().hex


def default_group(job_id: str) -> str:
    return f"spark-ray-{job_id}"


@dataclass(frozen=True)
class JobGroup:
    """The Spark job group of one call, in a classic or a Spark Connect session."""

    spark: Any
    group_id: str
    description: str

    @classmethod
    def of(cls, spark: Any, conf: RayTransformConf, job_id: str, default_description: str) -> JobGroup:
        """The call's group (``job_group``, else one named for ``job_id``) and description; fails
        now, before any work, if the session cannot apply them."""
        group = cls(spark, conf.job_group or default_group(job_id), conf.job_description or default_description)
        kind_of(spark).check_job_group(group.group_id, conf.job_description is not None)
        return group

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Name the Spark jobs this thread starts inside, then restore the caller's group and description."""
        with kind_of(self.spark).job_group(self.group_id, self.description):
            yield

    def cancel(self) -> None:
        """Stop the group's running jobs (from any thread)."""
        kind_of(self.spark).cancel_job_group(self.group_id)


def spark_job_group(
    spark: Any, conf: RayTransformConf, job_id: str, default_description: str
) -> contextlib.AbstractContextManager[None]:
    """``JobGroup.of(...).active()``: the call's Spark jobs under its group, for the duration."""
    return JobGroup.of(spark, conf, job_id, default_description).active()
