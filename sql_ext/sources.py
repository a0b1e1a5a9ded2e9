"""``load`` and ``save``: Byzer's data-source names mapped onto Spark's readers and writers.

Byzer scripts name a format and a path (``load csv.`/data/x.csv` as t``).
Apart from ``jsonStr`` (JSON lines held in a variable) and ``table``/``hive``
(a catalog table), every format name goes to Spark unchanged, so any data
source Spark can load by name works here too, with the ``where`` options as
reader or writer options.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

from pyspark.sql import DataFrame, SparkSession

from spark_ray.errors import did_you_mean

# Formats that name a catalog table instead of a path.
CATALOG_FORMATS = ("table", "hive")
# Save options that are not writer options: they shape the write itself.
_PARTITION_BY = "partitionby"
_FILE_NUM = "filenum"


class BadOption(ValueError):
    """An option's value cannot be used; ``key`` names the option as written."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(message)


def json_lines(text: str) -> list[str]:
    """The JSON documents in a ``jsonStr`` variable, one per line.

    Tolerates what people paste: blank lines, indentation, and a trailing
    comma after each object (seed 001 writes ``{"Busn_A":114,"Busn_B":57},``).
    A value starting with ``[`` is one JSON array, which Spark reads as rows.

    Example:
        >>> json_lines('{"a":1},\\n\\n{"a":2}\\n')
        ['{"a":1}', '{"a":2}']
    """
    stripped = text.strip()
    if stripped.startswith("["):
        return [stripped]
    lines = []
    for line in stripped.splitlines():
        line = line.strip()
        while line.endswith(","):
            line = line[:-1].rstrip()
        if line:
            lines.append(line)
    return lines


def load_json_string(spark: SparkSession, text: str, options: Mapping[str, str]) -> DataFrame:
    """A DataFrame from JSON lines held in a string (Byzer's ``jsonStr``)."""
    lines = json_lines(text)
    rdd = spark.sparkContext.parallelize(lines, 1)
    return spark.read.options(**options).json(rdd)


def load(spark: SparkSession, fmt: str, path: str, options: Mapping[str, str]) -> DataFrame:
    """``load fmt.`path` where options``: a catalog table, or Spark's reader for ``fmt``."""
    if fmt.lower() in CATALOG_FORMATS:
        return spark.table(path)
    reader = spark.read.format(fmt).options(**options)
    with _quiet_metadata_probe(spark):
        return reader.load(path) if path else reader.load()


# Spark's FileStreamSink (its package moved in Spark 4) logs a WARN with a whole
# java.io.FileNotFoundException when a path is a glob (`/data/*.csv`): before any
# file read it looks for a streaming sink's `_spark_metadata` under the path as
# written, fails, and goes on to read the files. The load itself is fine.
_METADATA_PROBE_LOGGERS = (
    "org.apache.spark.sql.execution.streaming.sinks.FileStreamSink",
    "org.apache.spark.sql.execution.streaming.FileStreamSink",
)


@contextlib.contextmanager
def _quiet_metadata_probe(spark: SparkSession) -> Iterator[None]:
    """Silence that probe's warning for one load, then put the loggers' levels back.

    Only a classic session has a JVM here; over Spark Connect the server logs it, and nothing is changed.
    """
    jvm = getattr(spark, "_jvm", None)
    try:
        log4j = jvm.org.apache.logging.log4j  # type: ignore[union-attr]
        configurator = log4j.core.config.Configurator
        before = {name: log4j.LogManager.getLogger(name).getLevel() for name in _METADATA_PROBE_LOGGERS}
        for name in _METADATA_PROBE_LOGGERS:
            configurator.setLevel(name, log4j.Level.ERROR)
    except Exception:  # no JVM, or no log4j 2 on it: leave the logging alone
        yield
        return
    try:
        yield
    finally:
        for name, level in before.items():
            configurator.setLevel(name, level)


def save(df: DataFrame, fmt: str, path: str, mode: str | None, options: Mapping[str, str]) -> None:
    """``save [mode] t as fmt.`path` where options``.

    ``partitionBy="a,b"`` partitions the output by those columns and
    ``fileNum="4"`` writes that many files (Byzer's names); every other option
    is a writer option of the format.
    """
    writer_options = {}
    partition_columns: list[str] = []
    for key, value in options.items():
        if key.lower() == _PARTITION_BY:
            partition_columns = [column.strip() for column in value.split(",") if column.strip()]
            known = {column.lower() for column in df.columns}
            for column in partition_columns:
                if column.lower() not in known:
                    raise BadOption(
                        key,
                        f"{key} names no column {column!r} of the table.{did_you_mean(column, df.columns)} "
                        f"Its columns: {', '.join(df.columns)}",
                    )
        elif key.lower() == _FILE_NUM:
            if not value.strip().isdigit() or int(value) < 1:
                raise BadOption(key, f"{key} must be a whole number of files, at least 1; got {value!r}")
            df = df.repartition(int(value))
        else:
            writer_options[key] = value
    writer = df.write.options(**writer_options)
    if mode is not None:
        writer = writer.mode(mode.lower())
    if partition_columns:
        writer = writer.partitionBy(*partition_columns)
    if fmt.lower() in CATALOG_FORMATS:
        writer.saveAsTable(path)
    else:
        writer.format(fmt).save(path)
