"""Ray on Spark: ``ray_address="spark"`` starts a Ray cluster inside the Spark application.

Ray's own ``ray.util.spark.setup_ray_cluster`` does the work: a Ray head node
on the driver and Ray worker nodes as long-running Spark tasks, each holding a
task slot for the cluster's life. This module gives Ray's processes what they
need here (``ray`` on PATH, the auth token), starts the cluster once per
driver process and SparkSession, and stops it on ``spark_ray.shutdown()``,
when the SparkSession stops, and at the driver's exit. How big it is comes
from ``ray_on_spark_sizing``.

The driver's connection to the cluster is ``cluster``'s, which imports this
module; nothing here imports ``cluster``. Whoever joins the cluster says so
with ``before_stop``, and is told just before the cluster stops, whichever
way it stops: a connection left open to a head that is gone would wait on it.

Nothing here imports pyspark or Ray at import time: ``spark_ray.shutdown``
reaches it and must stay cheap.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, RayConnectionError
from .ray_auth import auth_for_a_new_cluster
from .ray_on_spark_sizing import setup_args

if TYPE_CHECKING:
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    from .conf import RayTransformConf

log = logging.getLogger(__name__)

SPARK_ADDRESS = "spark"

# Ray on Spark reads its start hook's class from this variable (ray.util.spark.cluster_init).
_HOOK_ENV = "RAY_ON_SPARK_START_HOOK"
_HOOK_CLASS = f"{__name__}.StartHook"
_HEAD_EXIT_TIMEOUT_S = 30.0
_WATCH_INTERVAL_S = 1.0


def is_spark_address(address: str | None) -> bool:
    """Whether ``address`` asks for Ray on Spark."""
    return address == SPARK_ADDRESS


@dataclass
class RayOnSpark:
    """This driver's running Ray-on-Spark cluster."""

    address: str  # the GCS address, host:port, which executors and the driver join
    client_address: str  # ray://host:port, for clients on other machines
    setup_args: dict[str, Any]  # what setup_ray_cluster was called with
    asked: dict[str, Any]  # the ray_on_spark option it was started with
    spark_context: Any = field(repr=False)
    handle: Any = field(repr=False)  # ray.util.spark.cluster_init.RayClusterOnSpark
    started_s: float = 0.0

    @property
    def temp_dir(self) -> str | None:
        return getattr(self.handle, "temp_dir", None)

    def head_alive(self) -> bool:
        return self.handle.head_proc.poll() is None


class _State:
    lock = threading.RLock()
    cluster: RayOnSpark | None = None
    node_env: dict[str, str] = {}  # what the start hook gives Ray's node processes
    user_hook: str | None = None  # a RAY_ON_SPARK_START_HOOK set before ours, wrapped by ours
    exit_hook = False
    warned_options = False
    before_stop: list[Callable[[str], None]] = []  # told the address of a cluster about to stop


def current() -> RayOnSpark | None:
    """The running Ray-on-Spark cluster of this driver, or None."""
    with _State.lock:
        return _State.cluster


def before_stop(hook: Callable[[str], None]) -> None:
    """Have ``hook(address)`` run just before this driver's cluster at ``address`` stops (once per hook)."""
    with _State.lock:
        if hook not in _State.before_stop:
            _State.before_stop.append(hook)


# --- the environment of Ray's processes ---------------------------------------


def _node_environment(sc: SparkContext) -> dict[str, str]:
    """Set this process's PATH and auth settings for Ray, and return what Ray's node processes need.

    Ray on Spark runs ``sys.executable $(which ray) start`` for every node, so ``ray`` must be on
    PATH, also in the executors, whose environment was fixed when Spark started them. Ray clusters
    here require a token (``ray_auth.auth_for_a_new_cluster``).
    """
    bin_dir = os.path.dirname(sys.executable)
    path = os.environ.get("PATH", "")
    if shutil.which("ray") is None:
        path = os.pathsep.join([bin_dir, path]) if path else bin_dir
        os.environ["PATH"] = path
    executor_python = sc.getConf().get("spark.pyspark.python", None) or os.environ.get("PYSPARK_PYTHON")
    front = [os.path.dirname(p) for p in (executor_python, sys.executable) if p and os.path.isabs(p)]
    env = {"PATH": os.pathsep.join(dict.fromkeys([*front, *path.split(os.pathsep)]))}
    env.update(auth_for_a_new_cluster())
    return env


class StartHook:
    """Ray on Spark's start hook (Ray loads it by name from RAY_ON_SPARK_START_HOOK): the one a
    user set, or Ray's default, with spark-ray's node environment added."""

    def __init__(self, is_global: bool = False) -> None:  # Ray builds hooks named by the variable without arguments
        from ray.util.spark.databricks_hook import DefaultDatabricksRayOnSparkStartHook
        from ray.util.spark.start_hook_base import RayOnSparkStartHook
        from ray.util.spark.utils import is_in_databricks_runtime

        if _State.user_hook:
            from ray._common.utils import load_class

            self._base = load_class(_State.user_hook)()
        elif is_in_databricks_runtime():
            self._base = DefaultDatabricksRayOnSparkStartHook(is_global)
        else:
            self._base = RayOnSparkStartHook(is_global)

    def get_default_temp_root_dir(self) -> str:
        return str(self._base.get_default_temp_root_dir())

    def on_ray_dashboard_created(self, port: int) -> None:
        self._base.on_ray_dashboard_created(port)

    def on_cluster_created(self, ray_cluster_handler: Any) -> None:
        self._base.on_cluster_created(ray_cluster_handler)

    def on_spark_job_created(self, job_group_id: str) -> None:
        self._base.on_spark_job_created(job_group_id)

    def custom_environment_variables(self) -> dict[str, str]:
        return {**self._base.custom_environment_variables(), **_State.node_env}


# --- start and stop -----------------------------------------------------------


def cluster_address(conf: RayTransformConf) -> str:
    """The GCS address of this driver's Ray-on-Spark cluster, started on the active SparkSession
    if none runs there. The driver must not be connected to Ray (``ensure_driver_ray`` disconnects
    first).

    Raises:
        ConfigError: no active classic SparkSession, a bad ``ray_on_spark`` option, a driver
            connected to Ray by the user, or an application too small to share.
        RayConnectionError: Ray could not start the cluster.
    """
    import ray

    sc = _active_session().sparkContext  # also this thread's active session, where Ray looks for it
    with _State.lock:
        running = _State.cluster
        if running is not None and running.spark_context is sc and running.head_alive():
            asked = dict(conf.ray_on_spark or {})
            if asked and asked != running.asked and not _State.warned_options:
                _State.warned_options = True
                log.warning(
                    "ray_on_spark=%r is ignored: the Ray-on-Spark cluster already runs with %r "
                    "(spark_ray.shutdown() stops it, and the next call starts it again)",
                    asked,
                    running.asked,
                )
            return running.address
        if running is not None:
            log.info("the SparkSession of Ray on Spark at %s is gone: starting a new cluster", running.address)
            _stop_locked(running)
        if ray.is_initialized():
            raise ConfigError(
                "ray_address='spark' starts a Ray cluster inside Spark, and Ray refuses to start one in a "
                "process already connected to Ray (ray.init() was called): call ray.shutdown() first"
            )
        _State.cluster = _start(sc, conf)
        return _State.cluster.address


def _active_session() -> SparkSession:
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    if SparkContext._active_spark_context is None:
        raise ConfigError(
            "ray_address='spark' starts Ray inside a running classic SparkSession (with a SparkContext), and "
            "there is none in this process (a Spark Connect session cannot start Ray worker nodes)"
        )
    # Ray finds the session with getActiveSession(), which is per thread: make it this thread's.
    return SparkSession.getActiveSession() or SparkSession.builder.getOrCreate()


def _start(sc: SparkContext, conf: RayTransformConf) -> RayOnSpark:
    from ray.util.spark import cluster_init, setup_ray_cluster

    args = setup_args(sc, conf)
    _State.node_env = _node_environment(sc)
    if os.environ.get(_HOOK_ENV) != _HOOK_CLASS:
        _State.user_hook = os.environ.get(_HOOK_ENV)
        os.environ[_HOOK_ENV] = _HOOK_CLASS  # read again whenever Ray starts a worker node's Spark job
    log.info("starting Ray on Spark (%s): %s", sc.master, args)
    previous_address = os.environ.get("RAY_ADDRESS")
    started = time.monotonic()
    try:
        address, client_address = setup_ray_cluster(**args)
    except ValueError as error:  # Ray's checks of the arguments
        _restore_hook()
        raise ConfigError(f"ray_on_spark: ray.util.spark.setup_ray_cluster({_show(args)}) refused: {error}") from error
    except Exception as error:
        _restore_hook()
        raise RayConnectionError(
            f"could not start Ray on Spark on {sc.master} (ray.util.spark.setup_ray_cluster({_show(args)})): "
            f"{error}{_cause(error)}"
        ) from error
    finally:
        _restore_env("RAY_ADDRESS", previous_address)  # Ray sets it; spark-ray's address rule stays ours
    elapsed = time.monotonic() - started
    log.info("Ray on Spark runs at %s (%s), started in %.0f s", address, client_address, elapsed)
    running = RayOnSpark(
        address=address,
        client_address=client_address,
        setup_args=args,
        asked=dict(conf.ray_on_spark or {}),
        spark_context=sc,
        handle=cluster_init._active_ray_cluster,
        started_s=elapsed,
    )
    _stop_before(sc)
    threading.Thread(target=_watch, args=(running,), name="spark-ray-on-spark-watch", daemon=True).start()
    if not _State.exit_hook:
        _register_exit_hook()
        _State.exit_hook = True
    return running


def _register_exit_hook() -> None:
    """Run ``stop_cluster`` at the driver's exit, before Python waits for its non-daemon threads: Ray on
    Spark reads the head node's output in one, which ends only when the head does, and the head ends
    only when this process does, so a driver that exits without ``spark_ray.shutdown()`` would hang
    (seen here). ``threading._register_atexit`` runs exactly then; plain ``atexit`` would run too late."""
    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        try:
            register(stop_cluster)
            return
        except RuntimeError:  # the interpreter is already shutting down
            pass
    atexit.register(stop_cluster)


def _show(args: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in args.items())


def _cause(error: BaseException) -> str:
    cause = error.__cause__ or error.__context__
    return f": {cause}" if cause is not None else ""


def _restore_env(key: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value


def _restore_hook() -> None:
    if os.environ.get(_HOOK_ENV) == _HOOK_CLASS:
        _restore_env(_HOOK_ENV, _State.user_hook)


def _stop_before(sc: SparkContext) -> None:
    """Stop the cluster just before its SparkContext stops (``sc.stop()``, which ``spark.stop()``
    calls), wrapping that one object's ``stop``. After it, Ray's autoscaler would first see the worker
    nodes die and try to start new ones through the stopped SparkContext (a traceback from Ray's job
    server), and the nodes' Spark jobs would end as failures rather than be cancelled."""
    original = sc.stop
    if getattr(original, "_spark_ray_stops_ray_on_spark", False):
        return

    def stop(*args: Any, **kwargs: Any) -> Any:
        running = _State.cluster
        if running is not None and running.spark_context is sc:
            log.info("the SparkSession of Ray on Spark at %s stops: stopping the cluster first", running.address)
            _stop(running)
        return original(*args, **kwargs)

    stop._spark_ray_stops_ray_on_spark = True  # type: ignore[attr-defined]
    sc.stop = stop  # type: ignore[method-assign]


def _watch(running: RayOnSpark) -> None:
    """Stop the cluster when its SparkContext has stopped some other way than ``sc.stop()``
    (``SparkContext.stop`` clears the active context: a Python attribute, read without a call to the
    JVM)."""
    from pyspark import SparkContext

    while True:
        time.sleep(_WATCH_INTERVAL_S)
        if _State.cluster is not running:
            return
        if SparkContext._active_spark_context is not running.spark_context:
            break
    log.info("the SparkSession of Ray on Spark at %s stopped: stopping the cluster", running.address)
    _stop(running)


def _stop(running: RayOnSpark) -> None:
    """Tell the ``before_stop`` hooks, then stop ``running`` if it is still this driver's cluster.

    The hooks run outside the lock: a hook takes the connection's lock, which
    is held while ``cluster_address`` takes this one.
    """
    for hook in list(_State.before_stop):
        hook(running.address)
    with _State.lock:
        if _State.cluster is running:
            _stop_locked(running)


def _stop_locked(running: RayOnSpark) -> None:
    """Stop the cluster: Ray cancels its worker nodes' Spark jobs and stops the head; where the
    SparkContext is already gone (Spark cancelled those jobs itself), stop the head directly."""
    from ray.util.spark import cluster_init

    previous_address = os.environ.get("RAY_ADDRESS")  # Ray's shutdown pops it
    try:
        handle: Any = running.handle
        with cluster_init._active_ray_cluster_rwlock:
            active = cluster_init._active_ray_cluster is handle
            if active:
                try:
                    cluster_init.shutdown_ray_cluster()
                except Exception as error:
                    log.info("Ray on Spark's shutdown failed (%s): stopping its head node directly", error)
                    cluster_init._active_ray_cluster = None
                    handle.is_shutdown = True
        head = handle.head_proc
        if head.poll() is None:
            head.terminate()
        try:
            head.wait(timeout=_HEAD_EXIT_TIMEOUT_S)
        except Exception:
            head.kill()
            head.wait(timeout=_HEAD_EXIT_TIMEOUT_S)
    finally:
        _restore_env("RAY_ADDRESS", previous_address)
        _restore_hook()
        if _State.cluster is running:
            _State.cluster = None
        _State.warned_options = False


def stop_cluster() -> None:
    """Stop this driver's Ray-on-Spark cluster, if one runs, once whoever joined it has left
    (``before_stop``); ``cluster.shutdown`` (``spark_ray.shutdown()``) calls it."""
    running = _State.cluster
    if running is not None:
        _stop(running)
