"""Classic Spark or Spark Connect: the one place that tells the two kinds of session apart.

A DataFrame from ``SparkSession.builder.remote("sc://host:port")`` lives on a Spark
Connect server. Most of what spark-ray asks of Spark exists in both kinds of session
(``mapInArrow``, ``localCheckpoint``, ``toLocalIterator``, ``createDataFrame``,
``spark.udtf.register``, ``arrow_udtf``), but a Connect client has no SparkContext: no
job groups, no job descriptions, no ``defaultParallelism``, no launch conf, and its
table functions are objects of other classes. The rest of the library never asks
which kind it has; it calls ``kind_of(spark)`` and uses what that returns, which does
each thing the way the session can, or raises a ``ConfigError`` naming the feature
and Spark Connect.

Where things run over Spark Connect: the process that calls spark-ray (the Connect
client) is spark-ray's driver: it joins Ray, owns actor pools and block keepers, and
runs the relay server (run_in="driver") and model programs (mode="model",
run_in="driver"). Spark's executors are the Connect server's Python workers: they
need spark-ray (and its pyarrow and Ray) importable in the server's Python, and they
reach Ray and the client's data servers over the network.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol, cast

from .errors import ConfigError, InternalError

if TYPE_CHECKING:
    from pyspark.sql.udtf import UserDefinedTableFunction

# Spark Connect's operation tags, which stand in for job groups there, cannot contain this.
_TAG_SEPARATOR = ","
# Rows of the query that counts the partitions a Connect server gives a scan by default.
_PROBE_ROWS = 1 << 16


class SessionKind(Protocol):
    """What spark-ray needs from a SparkSession that differs between classic Spark and Spark Connect."""

    name: str
    is_connect: bool

    def default_parallelism(self) -> int:
        """Spark's default parallelism: the partitions a scan gets unless told."""
        ...

    def launch_conf(self) -> list[tuple[str, str]]:
        """The Spark conf the application was launched with (``--conf``), beyond the runtime conf."""
        ...

    def executors_on_this_host(self) -> bool:
        """Whether every Spark executor runs on this host (so a data server may listen on loopback)."""
        ...

    def check_job_group(self, group_id: str, description_set: bool) -> None:
        """Fail now if the job group or a chosen description cannot be applied."""
        ...

    def job_group(self, group_id: str, description: str) -> contextlib.AbstractContextManager[None]:
        """Spark jobs started inside (by this thread) belong to ``group_id``; the caller's state comes back."""
        ...

    def cancel_job_group(self, group_id: str) -> None:
        """Cancel the running jobs of ``group_id`` (from any thread)."""
        ...


def is_connect(spark: Any) -> bool:
    """Whether ``spark`` is a Spark Connect session (``SparkSession.builder.remote(...)``)."""
    return type(spark).__module__.startswith("pyspark.sql.connect.")


def kind_of(spark: Any) -> SessionKind:
    """How to do the session-dependent things with ``spark``."""
    return SparkConnect(spark) if is_connect(spark) else ClassicSpark(spark)


def table_function_types() -> tuple[type, ...]:
    """The classes a registered Python table function may have: classic, and Spark Connect's
    when the Connect client's dependencies are installed (``pyspark[connect]``)."""
    from pyspark.sql.udtf import UserDefinedTableFunction

    try:
        from pyspark.sql.connect.udtf import UserDefinedTableFunction as ConnectTableFunction
    except ImportError:
        return (UserDefinedTableFunction,)
    return (UserDefinedTableFunction, ConnectTableFunction)


def checked_table_function(function: object, made_by: str) -> UserDefinedTableFunction:
    """``function`` as a table function, classic or Spark Connect's (which pyspark's ``udtf`` and
    ``arrow_udtf`` make while a Connect session is up; it is no subclass of the classic one, but
    ``spark.udtf.register`` of a Connect session takes it); else an InternalError naming ``made_by``."""
    if not isinstance(function, table_function_types()):
        raise InternalError(f"{made_by} returned {type(function).__name__}, not a table function")
    return cast("UserDefinedTableFunction", function)


def not_over_connect(feature: str, instead: str) -> ConfigError:
    """The error for a feature Spark Connect does not have; ``instead`` says what to do."""
    return ConfigError(f"{feature} is not available over Spark Connect; {instead}")


class ClassicSpark:
    """A classic SparkSession: the SparkContext is in this process."""

    name = "classic Spark"
    is_connect = False

    def __init__(self, spark: Any) -> None:
        self.spark = spark

    def default_parallelism(self) -> int:
        return int(self.spark.sparkContext.defaultParallelism)

    def launch_conf(self) -> list[tuple[str, str]]:
        return list(self.spark.sparkContext.getConf().getAll())

    def executors_on_this_host(self) -> bool:
        return str(self.spark.sparkContext.master).startswith("local")

    def check_job_group(self, group_id: str, description_set: bool) -> None:
        return None

    @contextlib.contextmanager
    def job_group(self, group_id: str, description: str) -> Iterator[None]:
        sc = self.spark.sparkContext
        keys = ("spark.jobGroup.id", "spark.job.description", "spark.job.interruptOnCancel")
        previous = {key: sc.getLocalProperty(key) for key in keys}
        sc.setJobGroup(group_id, description, interruptOnCancel=True)
        try:
            yield
        finally:
            for key, value in previous.items():
                sc.setLocalProperty(key, value)  # None removes it

    def cancel_job_group(self, group_id: str) -> None:
        self.spark.sparkContext.cancelJobGroup(group_id)


# The default parallelism of each Connect session, asked of the server once.
_CONNECT_PARALLELISM: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


class SparkConnect:
    """A Spark Connect client session: the SparkContext is in the server.

    Job groups become Spark Connect operation tags (``spark.addTag``), which the
    server turns into Spark job tags, and ``spark.interruptTag`` cancels them.
    Job descriptions have no Connect equivalent: the server describes every job
    as ``Spark Connect - <plan>`` (whose MapInArrow names the call).
    """

    name = "Spark Connect"
    is_connect = True

    def __init__(self, spark: Any) -> None:
        self.spark = spark

    def default_parallelism(self) -> int:
        """``spark.default.parallelism`` if the server sets it, else the partitions of a default
        ``range`` scan, counted once per session by a small query (Connect has no ``sparkContext``)."""
        known = _CONNECT_PARALLELISM.get(self.spark)
        if known is not None:
            return known
        configured = self.spark.conf.get("spark.default.parallelism", None)
        if configured:
            count = int(configured)
        else:
            # A SQL text, not Column functions: those follow pyspark's process-wide Connect switch.
            probe = f"SELECT max(p) + 1 AS n FROM (SELECT spark_partition_id() AS p FROM range(0, {_PROBE_ROWS}))"
            count = int(self.spark.sql(probe).first()[0])
        _CONNECT_PARALLELISM[self.spark] = max(1, count)
        return max(1, count)

    def launch_conf(self) -> list[tuple[str, str]]:
        # The server's launch conf (its --conf spark.ray.*) is in the session's runtime conf, which
        # resolve_conf reads anyway; there is no SparkConf to read from here.
        return []

    def executors_on_this_host(self) -> bool:
        """A local master on a server reached by loopback, or by this host's own name or address;
        a server elsewhere (or one that hides its master) counts as remote."""
        try:
            master = str(self.spark.conf.get("spark.master", ""))
        except Exception:  # noqa: BLE001 - a server may refuse to show its conf
            return False
        return master.startswith("local") and _is_this_host(self.server_host())

    def server_host(self) -> str | None:
        """The Connect server's host name, as the client was given it (``sc://host:port``)."""
        builder = getattr(self.spark.client, "_builder", None)  # pyspark keeps it there, privately
        host = getattr(builder, "host", None)
        return host if isinstance(host, str) else None

    def check_job_group(self, group_id: str, description_set: bool) -> None:
        if description_set:
            raise not_over_connect(
                "job_description (a Spark job description)",
                "a Connect client cannot describe its jobs (the server names them 'Spark Connect - <plan>'). "
                "Remove the option; job_group still works, as a Spark Connect operation tag",
            )
        if not group_id or _TAG_SEPARATOR in group_id:
            raise ConfigError(
                f"job_group={group_id!r} cannot be a Spark Connect operation tag (which is how job groups work "
                f"over Spark Connect): it must be non-empty and contain no {_TAG_SEPARATOR!r}"
            )

    @contextlib.contextmanager
    def job_group(self, group_id: str, description: str) -> Iterator[None]:
        had_it = group_id in self.spark.getTags()
        self.spark.addTag(group_id)  # this thread's operations only, as a job group is
        try:
            yield
        finally:
            if not had_it:
                self.spark.removeTag(group_id)

    def cancel_job_group(self, group_id: str) -> None:
        self.spark.interruptTag(group_id)


def _is_this_host(host: str | None) -> bool:
    if not host:
        return False
    host = host.strip("[]")
    if host in ("localhost", "::1") or host.startswith("127."):
        return True
    import socket

    try:
        own = {socket.gethostname(), socket.getfqdn(), *socket.gethostbyname_ex(socket.gethostname())[2]}
    except OSError:
        own = {socket.gethostname()}
    return host in own
