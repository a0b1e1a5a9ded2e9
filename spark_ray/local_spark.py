"""A local SparkSession set up the way spark-ray's demo, tests and benchmarks need it.

Spark's Python workers must run this interpreter (else they find no pyarrow),
and a laptop-sized run wants quiet logs and few shuffle partitions.
"""

from __future__ import annotations

import os
import sys

from pyspark.sql import SparkSession

_CONF_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "conf")


def local_spark(master: str = "local[2]", app_name: str = "spark-ray", **conf: str) -> SparkSession:
    """Get or create a local SparkSession whose Python workers use this interpreter."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
    )
    log4j = os.path.join(_CONF_DIR, "log4j2.properties")
    if os.path.exists(log4j):
        option = f"-Dlog4j2.configurationFile=file:{log4j}"
        builder = builder.config("spark.driver.extraJavaOptions", option).config(
            "spark.executor.extraJavaOptions", option
        )
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
