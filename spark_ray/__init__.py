"""spark-ray: run Python on Ray over Spark tables.

    from spark_ray import ray_transform
    out = ray_transform(df, fn, "id long, name string")

Public names load on first use: Ray workers import this package to run
shards and should not pay for importing pyspark.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .actor_pool import close_pools
    from .api import ray_transform
    from .cluster import shutdown
    from .conf import RayTransformConf, clear_session_conf, get_session_conf, set_session_conf
    from .datasets import from_ray_dataset, to_ray_dataset
    from .errors import (
        ConfigError,
        DataServerError,
        MemoryLimitError,
        PoolError,
        RayConnectionError,
        RayWorkLostError,
        ResultSchemaError,
        SchemaError,
        SchemaParseError,
        SparkRayError,
        UserCodeError,
        spark_ray_error_in,
    )
    from .registered_function import RegisteredFunction, register_function, registered_functions
    from .table_function import register

_PUBLIC = {
    "ray_transform": "api",
    "to_ray_dataset": "datasets",
    "from_ray_dataset": "datasets",
    "close_pools": "actor_pool",
    "register": "table_function",
    "register_function": "registered_function",
    "registered_functions": "registered_function",
    "RegisteredFunction": "registered_function",
    "shutdown": "cluster",  # the connection, the embedded Ray, and a Ray-on-Spark cluster
    "RayTransformConf": "conf",
    "clear_session_conf": "conf",
    "get_session_conf": "conf",
    "set_session_conf": "conf",
    "ConfigError": "errors",
    "DataServerError": "errors",
    "MemoryLimitError": "errors",
    "PoolError": "errors",
    "RayConnectionError": "errors",
    "RayWorkLostError": "errors",
    "ResultSchemaError": "errors",
    "SchemaError": "errors",
    "SchemaParseError": "errors",
    "SparkRayError": "errors",
    "UserCodeError": "errors",
    "spark_ray_error_in": "errors",
}

__all__ = [
    "ConfigError",
    "RegisteredFunction",
    "DataServerError",
    "MemoryLimitError",
    "PoolError",
    "RayConnectionError",
    "RayTransformConf",
    "RayWorkLostError",
    "ResultSchemaError",
    "SchemaError",
    "SchemaParseError",
    "SparkRayError",
    "UserCodeError",
    "clear_session_conf",
    "close_pools",
    "from_ray_dataset",
    "get_session_conf",
    "ray_transform",
    "register",
    "register_function",
    "registered_functions",
    "set_session_conf",
    "shutdown",
    "spark_ray_error_in",
    "to_ray_dataset",
]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'spark_ray' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
