"""How big a Ray-on-Spark cluster is: the sizing rule and ``setup_ray_cluster``'s arguments.

Ray gets about half of the application's task slots and Spark keeps the rest,
because ``ray_transform``'s own Spark tasks (the executor path's
``mapInArrow``, the driver path's relay, model mode's table stream) need free
slots while the Ray worker nodes hold theirs. On a cluster (standalone, YARN,
``local-cluster``): worker nodes of half an executor's cores (at least 1) and
all its GPUs, as many as fit in half of all cores (``local-cluster[1,2,2048]``
and ``local-cluster[2,1,1024]``: one node of 1 CPU; 10 executors of 8 cores:
10 nodes of 4 CPUs). In local mode Ray cannot size nodes (no stage-level
scheduling): each node gets ``spark.task.cpus`` CPUs, and there are half as
many nodes as slots (``local[2]``: one node of 1 CPU). An application with a
single task slot is refused: no Spark task of ``ray_transform`` could ever
run next to the Ray worker node.

The ``ray_on_spark`` option (whose keys are ``setup_ray_cluster``'s own
parameters) goes over the rule. Starting and stopping the cluster is
``ray_on_spark``'s.
"""

from __future__ import annotations

import inspect
import logging
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    from pyspark import SparkContext

    from .conf import RayTransformConf

log = logging.getLogger(__name__)

_LOCAL_MASTER = re.compile(r"local(?:\[\s*(\*|\d+)\s*(?:,\s*\d+\s*)?\])?")
_LOCAL_CLUSTER_MASTER = re.compile(r"local-cluster\[\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\]")


@dataclass(frozen=True)
class SparkShape:
    """What sizes a Ray-on-Spark cluster: the Spark application's executors and slots."""

    master: str
    local: bool
    executors: int
    cores_per_executor: int
    task_cpus: int = 1
    gpus_per_executor: int = 0

    @property
    def cores(self) -> int:
        return self.executors * self.cores_per_executor

    @property
    def slots(self) -> int:
        return self.executors * (self.cores_per_executor // self.task_cpus)


def spark_shape(sc: SparkContext) -> SparkShape:
    """The executors and slots of ``sc``'s application: parsed from a local or local-cluster
    master, else from ``spark.executor.cores`` / ``spark.executor.instances``, else from the
    executors registered once one Spark job has run."""
    conf = sc.getConf()
    master = str(sc.master)
    task_cpus = int(conf.get("spark.task.cpus", "1"))
    gpus = int(float(conf.get("spark.executor.resource.gpu.amount", "0")))
    local = _LOCAL_MASTER.fullmatch(master)
    if local:
        cores = (os.cpu_count() or 1) if local.group(1) == "*" else int(local.group(1) or 1)
        return SparkShape(master, True, 1, cores, task_cpus, 0)
    cluster = _LOCAL_CLUSTER_MASTER.fullmatch(master)
    if cluster:
        return SparkShape(master, False, int(cluster.group(1)), int(cluster.group(2)), task_cpus, gpus)
    cores_conf = conf.get("spark.executor.cores", None)
    instances = conf.get("spark.executor.instances", None)
    dynamic = conf.get("spark.dynamicAllocation.enabled", "false").lower() == "true"
    if cores_conf is not None and instances is not None and not dynamic:
        return SparkShape(master, False, int(instances), int(cores_conf), task_cpus, gpus)
    sc.parallelize([0], 1).count()  # waits for an executor
    jsc = sc._jsc.sc()  # type: ignore[attr-defined]
    registered = max(1, jsc.getExecutorMemoryStatus().size() - 1)  # minus the driver
    slots = jsc.maxNumConcurrentTasks(jsc.resourceProfileManager().defaultResourceProfile())
    cores = int(cores_conf) if cores_conf is not None else max(1, slots * task_cpus // registered)
    executors = int(instances) if instances is not None and not dynamic else registered
    return SparkShape(master, False, executors, cores, task_cpus, gpus)


def default_setup_args(shape: SparkShape) -> dict[str, Any]:
    """``setup_ray_cluster`` arguments that leave Spark half of the application (the rule in the module docstring).

    Raises:
        ConfigError: the application has one task slot, which a Ray worker node would take.
    """
    if shape.local:
        nodes = shape.slots // 2
        if nodes < 1:
            raise _too_small(shape)
        return {"max_worker_nodes": nodes}
    cpus = max(1, shape.cores_per_executor // 2)
    if shape.cores_per_executor - cpus < shape.task_cpus:
        # No Spark task would fit beside a node: give Ray whole executors, half of them.
        cpus = shape.cores_per_executor
        nodes = shape.executors // 2
    else:
        nodes = (shape.cores // 2) // cpus
    if nodes < 1:
        raise _too_small(shape)
    return {"max_worker_nodes": nodes, "num_cpus_worker_node": cpus, "num_gpus_worker_node": shape.gpus_per_executor}


def _too_small(shape: SparkShape) -> ConfigError:
    return ConfigError(
        f"ray_address='spark' needs a Spark application with at least 2 task slots, and {shape.master} "
        f"has {shape.slots}: each Ray worker node holds a Spark task slot for the cluster's life, and "
        "ray_transform's own Spark tasks need another. Give Spark more cores (local[2], more executors), "
        "or use a Ray cluster by address."
    )


def setup_args(sc: SparkContext, conf: RayTransformConf) -> dict[str, Any]:
    """The ``setup_ray_cluster`` arguments for ``conf``: the sizing rule's, a head node without a
    dashboard unless ``dashboard=True``, then the ``ray_on_spark`` option over them.

    Raises:
        ConfigError: ``ray_on_spark`` names a parameter ``setup_ray_cluster`` does not have.
    """
    if conf.ray_on_spark is not None and not isinstance(conf.ray_on_spark, dict):
        raise ConfigError(
            f"option ray_on_spark expects a dict of setup_ray_cluster arguments, got {type(conf.ray_on_spark).__name__}"
        )
    asked = dict(conf.ray_on_spark or {})
    _check_option_names(asked)
    shape = spark_shape(sc)
    args = default_setup_args(shape)
    if shape.local and ("num_cpus_worker_node" in asked or "num_gpus_worker_node" in asked):
        raise ConfigError(
            f"ray_on_spark: num_cpus_worker_node and num_gpus_worker_node cannot be set on a local master "
            f"({shape.master}): Ray sizes local-mode worker nodes by spark.task.cpus (no stage-level "
            "scheduling); set max_worker_nodes only, or use a local-cluster[...] or cluster master"
        )
    args["head_node_options"] = {"include_dashboard": conf.dashboard, **(asked.pop("head_node_options", None) or {})}
    args.update(asked)
    if not shape.local:
        _warn_if_no_room(shape, args)
    return args


def _check_option_names(asked: dict[str, Any]) -> None:
    from ray.util.spark import setup_ray_cluster

    known = sorted(
        name for name, p in inspect.signature(setup_ray_cluster).parameters.items() if p.kind is p.KEYWORD_ONLY
    )
    for name in asked:
        if name not in known:
            raise ConfigError(
                f"ray_on_spark: {name!r} is not a parameter of ray.util.spark.setup_ray_cluster."
                f"{did_you_mean(name, known)} Known: {', '.join(known)}"
            )


def _warn_if_no_room(shape: SparkShape, args: dict[str, Any]) -> None:
    nodes = args.get("max_worker_nodes")
    cpus = args.get("num_cpus_worker_node") or shape.cores_per_executor
    if isinstance(nodes, int) and (nodes < 0 or nodes * cpus > shape.cores - shape.task_cpus):
        log.warning(
            "ray_on_spark asks for %s Ray worker nodes of %s CPUs on %s cores (%s): ray_transform's Spark "
            "tasks need a free task slot beside them, and will wait for one",
            "all possible" if nodes < 0 else nodes,
            cpus,
            shape.cores,
            shape.master,
        )
