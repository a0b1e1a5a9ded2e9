"""Waiting for a Ray result, and saying why it can never come.

Every path that waits on a shard's Ray work (a task, an actor pool's call, a
driver-path chunk) waits here, so that two things hold for all of them:

* the user's error (or a memory cap's) reaches the caller as itself, not
  wrapped in Ray's ``RayTaskError``;
* work lost with its process or node ends in a ``RayWorkLostError`` that names
  the shard and what died, and work that no live node can run any more (its
  node died, and no other has its resources) ends the wait rather than
  hanging it (``LossWatch``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from .errors import MemoryLimitError, RayWorkLostError, SparkRayError

# Seconds between two looks at the cluster while a result is awaited (see ``LossWatch``).
NODE_CHECK_S = 5.0


class LossWatch:
    """Notices work that can never run again: every node able to run it has died.

    Ray keeps a task whose resources no live node has (``resources={"gpu_box": 1}`` once that node is gone)
    pending forever, waiting for an autoscaler; a Spark task waiting for its result would hang with it.
    While a result is awaited, the cluster's nodes are read every ``NODE_CHECK_S`` seconds; when no live
    node has the task's ``demand`` on two looks in a row and a dead one had it, the wait ends with an
    error naming the lost node. Work that no node ever could run is left to Ray (an autoscaler may add one).
    """

    def __init__(self, demand: dict[str, float] | None) -> None:
        self.demand = demand
        self._next_look = time.monotonic() + NODE_CHECK_S
        self._strikes = 0
        if demand and time.monotonic() - _NODES_SEEN.looked > NODES_SEEN_MAX_AGE_S:
            nodes_lost_for(demand)  # remember the live nodes' resources: a dead node's are not reported

    def check(self, where: str) -> None:
        """Raise ``RayWorkLostError`` if ``where``'s work can no longer run anywhere; cheap between looks."""
        if not self.demand or time.monotonic() < self._next_look:
            return
        self._next_look = time.monotonic() + NODE_CHECK_S
        lost = nodes_lost_for(self.demand)
        self._strikes = self._strikes + 1 if lost else 0
        if self._strikes >= 2:
            names = ", ".join(f"{node['NodeID']} ({node.get('NodeManagerAddress', '?')})" for node in lost)
            raise RayWorkLostError(
                f"{where} can no longer run: its Ray task needs {self.demand}, no live node of the Ray cluster "
                f"has that, and the node that had it died: {names}. Restart that node (or give another node "
                "those resources) and run the job again."
            )


class _NodesSeen:
    """The resources of every node this process has seen alive, by node id (Ray reports none for a dead
    node), and when it last looked."""

    resources: dict[str, dict[str, float]] = {}
    looked = float("-inf")


_NODES_SEEN = _NodesSeen()
# A wait starting later than this after the last look reads the nodes again first.
NODES_SEEN_MAX_AGE_S = 30.0


def nodes_lost_for(demand: dict[str, float]) -> list[dict[str, Any]]:
    """The dead nodes, seen alive by this process, that could run work needing ``demand``, when no live
    node can; else []."""
    import ray

    nodes = ray.nodes()
    _NODES_SEEN.looked = time.monotonic()
    for node in nodes:
        if node.get("Alive") and node.get("Resources"):
            _NODES_SEEN.resources[node["NodeID"]] = dict(node["Resources"])

    def fits(resources: dict[str, float]) -> bool:
        return all(resources.get(name, 0.0) >= amount for name, amount in demand.items())

    if any(node.get("Alive") and fits(node.get("Resources") or {}) for node in nodes):
        return []
    return [node for node in nodes if not node.get("Alive") and fits(_NODES_SEEN.resources.get(node["NodeID"], {}))]


def wait_for(ref: Any, where: str, demand: dict[str, float] | None, stopped: Callable[[], bool] | None = None) -> None:
    """Until ``ref`` is ready, in slices of at most a second; raises ``RayWorkLostError`` if its work can no
    longer run (``LossWatch``), or returns early once ``stopped()`` says so (the caller checks ``stopped``)."""
    import ray

    watch: LossWatch | None = None  # made once the result is slow to come: a fast task costs no look
    while not ray.wait([ref], timeout=1.0)[0]:
        if stopped is not None and stopped():
            return
        watch = watch or LossWatch(demand)
        try:
            watch.check(where)
        except RayWorkLostError:
            ray.cancel(ref, force=False)
            raise


def task_result(
    ref: Any, where: str = "a shard", retries: int | None = None, demand: dict[str, float] | None = None
) -> pa.Table:
    """A shard task's result; our own error (the user's, with their traceback, or a memory cap's)
    rather than Ray's wrapper when there is one.

    ``where`` names the shard in the error when the process or node running it died (``RayWorkLostError``);
    ``retries`` is the ``max_retries`` it ran with (None: Ray's default); with ``demand`` (its resources),
    the wait ends if no live node can run it any more (``LossWatch``).
    """
    import ray

    try:
        if demand:
            wait_for(ref, where, demand)
        return ray.get(ref)
    except ray.exceptions.RayTaskError as error:
        cause = error.cause
        if isinstance(cause, SparkRayError):
            raise cause from None
        raise
    except _lost_work_errors() as error:
        from .cap_reports import exit_message_of

        capped = exit_message_of(ref)
        if capped is not None:  # the memory cap stopped the process: say so, not "the worker died"
            raise MemoryLimitError(capped) from None
        raise RayWorkLostError(lost_work_message(error, where, retries)) from None


def _lost_work_errors() -> tuple[type[BaseException], ...]:
    """Ray's errors that mean the process or node running a task is gone (not the code raising)."""
    import ray.exceptions as errors

    return (
        errors.WorkerCrashedError,
        errors.NodeDiedError,
        errors.LocalRayletDiedError,
        errors.OutOfMemoryError,
        errors.RayActorError,
        errors.ObjectLostError,
    )


def lost_work_message(error: BaseException, where: str, retries: int | None) -> str:
    """What died while running ``where``, in one paragraph: Ray's own words follow ours, not a traceback."""
    import ray.exceptions as errors

    if isinstance(error, errors.OutOfMemoryError):
        what = f"Ray's memory monitor killed the worker running {where} (its node ran low on memory)"
    elif isinstance(error, (errors.NodeDiedError, errors.LocalRayletDiedError)):
        what = f"the Ray node running {where} died"
    elif isinstance(error, errors.RayActorError):
        what = f"the actor of the pool running {where} died"
    elif isinstance(error, errors.ObjectLostError):
        what = f"the result of {where} was lost with the Ray node that held it"
    else:
        what = f"the Ray worker process running {where} died"
    if retries == 0:
        retried = "max_retries=0, so Ray did not run it again"
    elif retries is None:
        retried = "Ray gave up after its default retries"
    else:
        retried = f"Ray gave up after max_retries={retries} retries"
    said = (str(error).strip().splitlines() or [""])[0][:400]
    return (
        f"{what}; {retried}. Ray said: {type(error).__name__}: {said} A process ends this way when it crashes, "
        "is killed (the OOM killer, a signal) or calls os._exit; its output is in the Ray session's logs "
        "(worker-*.err, python-core-worker-*.log)."
    )
