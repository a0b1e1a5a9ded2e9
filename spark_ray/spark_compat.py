"""Which pyspark this is, and what it can do: the one place spark-ray asks.

spark-ray is built on pyspark 4 and also runs on the 3.5 line, which Spark on
Ray through RayDP needs (raydp 1.6.5 requires pyspark <= 3.5.7). The features
3.5 lacks are named here once, as flags, so that no other module compares
versions or probes pyspark on its own, and a call that cannot work says which
feature is missing and which pyspark has it (``require``), rather than failing
on an import or an attribute deep inside pyspark.

What differs, and what spark-ray does about it:

* ``HAS_UDTF_ANALYZE`` (4.0): Python table functions with a static
  ``analyze``, which the generic ``ray_transform`` SQL table function needs
  (its schema is an argument of each query). On 3.5 ``register(spark)``
  raises ``SparkVersionError``; ``register_function`` (schema fixed at
  registration) works without it.
* ``HAS_ARROW_UDTF`` (4.1): the vectorized ``arrow_udtf``. Without it,
  registered functions use the row protocol (``registered_function`` says so
  once), where the input's types are read from the values (``row_type_of``).
* ``spark.conf.getAll`` (4.0): ``runtime_conf`` reads the runtime conf with
  ``SET`` where it is missing, so ``spark.conf.set("spark.ray.*", ...)`` works.
* ``getCondition`` / ``getMessage`` of Spark's errors (4.0):
  ``spark_error_message`` gives the same text on 3.5, and ``sql_error_spans``
  the positions of ``getQueryContext``.
* Spark's ``variant`` type (4.0) does not exist on 3.5; no spark-ray path
  carries it on any version.
* ``DataFrame.toArrow`` (4.0) is not used by the library (only by the bench).

``AnalyzeArgument`` and ``AnalyzeResult`` are pyspark's where it has them, and
stand-ins with the same fields otherwise, so that ``table_function`` imports
(and ``sql_ext`` with it) on 3.5 and only registering the function fails.

Example:
    >>> PYSPARK_VERSION >= (3, 5)
    True
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyspark
import pyspark.sql.functions
import pyspark.sql.udtf
from pyspark.sql import Row

from .errors import SparkVersionError

__all__ = [
    "HAS_ARROW_UDTF",
    "HAS_UDTF_ANALYZE",
    "PYSPARK_VERSION",
    "AnalyzeArgument",
    "AnalyzeResult",
    "require",
    "row_type_of",
    "runtime_conf",
    "spark_error_message",
    "sql_error_spans",
]


def _version(text: str) -> tuple[int, int]:
    """(major, minor) of a version string such as '3.5.7' or '4.1.0.dev0'."""
    found = re.match(r"(\d+)\.(\d+)", text)
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


PYSPARK_VERSION: tuple[int, int] = _version(pyspark.__version__)

HAS_UDTF_ANALYZE: bool = hasattr(pyspark.sql.udtf, "AnalyzeArgument")
HAS_ARROW_UDTF: bool = hasattr(pyspark.sql.functions, "arrow_udtf")

if TYPE_CHECKING or HAS_UDTF_ANALYZE:
    from pyspark.sql.udtf import AnalyzeArgument, AnalyzeResult
else:

    @dataclass(frozen=True)
    class AnalyzeArgument:
        """pyspark 4's ``AnalyzeArgument``, for type hints on a pyspark without it (never given by Spark)."""

        dataType: Any
        value: Any = None
        isTable: bool = False
        isConstantExpression: bool = False

    @dataclass
    class AnalyzeResult:
        """pyspark 4's ``AnalyzeResult``, so subclasses can be defined on a pyspark without it."""

        schema: Any
        withSinglePartition: bool = False


def runtime_conf(spark: Any) -> dict[str, str]:
    """The session's runtime conf (``spark.conf.set`` and what it started with), by key.

    pyspark 4 has ``spark.conf.getAll`` (a dict on a classic session, a method
    over Spark Connect); 3.5 has neither, and Spark SQL's ``SET`` lists the same.
    """
    get_all = getattr(spark.conf, "getAll", None)
    if get_all is not None:
        return dict(get_all if isinstance(get_all, Mapping) else get_all())
    return {str(row[0]): str(row[1]) for row in spark.sql("SET").collect()}


def spark_error_message(error: Any) -> str:
    """Spark's message for a ``PySparkException``, without the query plan Spark appends to some.

    pyspark 4 has ``getCondition`` and ``getMessage``; 3.5 names the condition
    ``getErrorClass`` and has no ``getMessage``, so the same text is asked of
    Spark's ``SparkThrowableHelper``, as pyspark 4 does.
    """
    if hasattr(error, "getCondition"):
        return str(error.getMessage() if error.getCondition() else error).strip()
    condition = error.getErrorClass()
    origin = getattr(error, "_origin", None)  # the JVM exception of a captured error
    if condition and origin is not None:
        from pyspark import SparkContext

        helper = getattr(SparkContext._jvm, "org.apache.spark.SparkThrowableHelper")
        return str(helper.getMessage(condition, origin.getMessageParameters())).strip()
    return str(error).strip()


def sql_error_spans(error: Any) -> list[tuple[int, int]]:
    """Where in its SQL text Spark says ``error`` is: (start, stop) character offsets, stop included.

    pyspark 4 has ``getQueryContext`` (with SQL and DataFrame contexts); on 3.5
    the same SQL contexts are asked of the JVM exception.
    """
    if hasattr(error, "getQueryContext"):
        contexts = [c for c in error.getQueryContext() if c.contextType().name == "SQL"]
    else:
        origin = getattr(error, "_origin", None)  # the JVM exception of a captured error
        try:
            contexts = list(origin.getQueryContext()) if origin is not None else []
        except Exception:  # noqa: BLE001 - an exception that is no SparkThrowable has none
            contexts = []
    return [(int(c.startIndex()), int(c.stopIndex())) for c in contexts if c.startIndex() >= 0]


def row_type_of(rows: Sequence[Any]) -> pa.StructType:
    """The Arrow type of a batch of Spark's rows, read from their values.

    A table function without ``analyze`` (pyspark before 4.0, and registered
    functions on the row protocol) is never told its input's types. pyspark
    hands a struct as a ``Row`` and a map as a ``dict``, so the values say
    which is which, where Arrow's own inference would make every dict a struct.
    Scalars are inferred by Arrow over the whole column (so decimals widen to fit).
    """
    row_type = _type_of(list(rows))
    assert pa.types.is_struct(row_type), "Spark's rows are Rows"
    return row_type


def _type_of(values: list[Any]) -> pa.DataType:
    present = [value for value in values if value is not None]
    if not present:
        return pa.null()
    sample = present[0]
    if isinstance(sample, Row):  # a struct, its fields in order
        names = sample.__fields__
        return pa.struct([pa.field(name, _type_of([value[i] for value in present])) for i, name in enumerate(names)])
    if isinstance(sample, dict):  # a map
        items = [item for value in present for item in value.items()]
        key = _type_of([key for key, _ in items])
        return pa.map_(pa.string() if pa.types.is_null(key) else key, _type_of([value for _, value in items]))
    if isinstance(sample, list):
        return pa.list_(_type_of([item for value in present for item in value]))
    return pa.array(present).type


def arrow_udtf() -> Any:
    """pyspark's vectorized ``arrow_udtf`` decorator, or None on a pyspark without it (before 4.1)."""
    return getattr(pyspark.sql.functions, "arrow_udtf", None)


def require(available: bool, feature: str, version: str = "4.0", instead: str = "") -> None:
    """Fail with the feature's name and the pyspark it needs, when ``available`` is False.

    Args:
        available: one of the flags above.
        feature: what the caller asked for, as users name it.
        version: the first pyspark that has it.
        instead: what works on this pyspark, if anything.

    Raises:
        SparkVersionError: "<feature> needs pyspark >= 4.0 (this is pyspark 3.5.7). <instead>"
    """
    if not available:
        message = f"{feature} needs pyspark >= {version} (this is pyspark {pyspark.__version__})."
        raise SparkVersionError(f"{message} {instead}" if instead else message)
