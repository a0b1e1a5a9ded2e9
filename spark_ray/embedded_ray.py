"""The embedded Ray: a local Ray this driver starts when no address is asked for.

It is a single-node Ray on this machine, started with ``ray.init(address=
"local")`` so that it never joins whatever other Ray runs here, with token
auth on, and with a worker pool kept warm between Spark tasks (see
``_embedded_worker_pool``). A start that fails because the node was slow to
come up is cleaned up and tried once more. Connecting to it and when to stop
it are ``cluster``'s.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import TYPE_CHECKING

from . import own_processes
from .errors import RayConnectionError
from .ray_auth import token_mode_unless_set

if TYPE_CHECKING:
    from .conf import RayTransformConf

log = logging.getLogger(__name__)


def start_embedded_ray(conf: RayTransformConf) -> None:
    """Start the embedded Ray and connect this process to it, with ``conf``'s CPUs, namespace and runtime_env.

    Raises:
        RayConnectionError: Ray could not start.
    """
    import ray

    num_cpus = conf.local_ray_cpus or os.cpu_count() or 1
    log.info("starting an embedded local Ray with %s CPUs", num_cpus)
    token_mode_unless_set()
    for attempt in range(1, _EMBEDDED_START_ATTEMPTS + 1):
        before = own_processes.descendants()
        try:
            ray.init(
                address="local",  # never join whatever /tmp/ray/ray_current_cluster names
                num_cpus=num_cpus,
                include_dashboard=conf.dashboard,
                namespace=conf.ray_namespace,
                runtime_env=conf.runtime_env,
                logging_level=logging.WARNING,
                configure_logging=True,
                _system_config=_embedded_worker_pool(num_cpus),
            )
            break
        except Exception as error:
            stopped = _stop_failed_start(before)
            if attempt == _EMBEDDED_START_ATTEMPTS or _NODE_START_TIMED_OUT not in str(error):
                raise RayConnectionError(f"could not start the embedded local Ray: {error}") from error
            log.warning(
                "spark-ray: the embedded Ray's node did not come up (%s); stopped the %d processes it had "
                "started, and starting it once more.",
                error,
                stopped,
            )


# Ray gives a new node's raylet a fixed 30 s to register with the GCS, then raises an error holding these
# words. On a loaded machine, or when the raylet dies before its first log line, a second start works.
_NODE_START_TIMED_OUT = "timed out during startup"
_EMBEDDED_START_ATTEMPTS = 2


def _stop_failed_start(before: set[int]) -> int:
    """Stop the Ray processes a failed ``ray.init`` left running (Ray never recorded them); how many."""
    import ray

    with contextlib.suppress(Exception):
        ray.shutdown()
    ray_package = os.path.dirname(ray.__file__)
    left = {pid for pid in own_processes.descendants() - before if ray_package in own_processes.command_line(pid)}
    still = own_processes.stop(left)
    if still:
        log.warning("spark-ray: processes of a failed Ray start would not stop: %s", sorted(still))
    return len(left)


def _embedded_worker_pool(num_cpus: int) -> dict[str, int]:
    """Keep idle Ray workers alive between Spark tasks and between calls.

    Every Spark Python worker is a Ray job of its own, and Ray never lends a
    worker process from one job to another. With Ray's defaults (idle workers
    beyond one per CPU die after a second), Spark's workers take each other's
    Ray workers away between tasks, and each new task waits a second or two
    for a fresh Python process (up to 2 restarts per 10M-row job were counted
    here; with one Ray CPU for two Spark tasks, one per shard). One idle worker
    per CPU for each of a few jobs, kept for a minute, costs some idle
    processes and removes the churn: the CPU-bound benchmark went from 2.81x
    to 1.08x-1.23x of its Spark-native run with 1 Ray CPU, and from 1.75x to
    0.66x-0.93x with 2 (BENCHMARKS.md).
    """
    return {"num_workers_soft_limit": 2 * num_cpus + 2, "idle_worker_killing_time_threshold_ms": 60_000}
