"""spark-ray: run Python on Ray over Spark tables.

    from spark_ray import ray_transform
    out = ray_transform(df, fn, "id long, name string")
"""

from .api import ray_transform
from .cluster import shutdown
from .conf import RayTransformConf, clear_session_conf, get_session_conf, set_session_conf
from .errors import (
    ConfigError,
    RayConnectionError,
    ResultSchemaError,
    SchemaError,
    SchemaParseError,
    SparkRayError,
    UserCodeError,
)

__all__ = [
    "ConfigError",
    "RayConnectionError",
    "RayTransformConf",
    "ResultSchemaError",
    "SchemaError",
    "SchemaParseError",
    "SparkRayError",
    "UserCodeError",
    "clear_session_conf",
    "get_session_conf",
    "ray_transform",
    "set_session_conf",
    "shutdown",
]
