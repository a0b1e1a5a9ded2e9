"""pyjava.api.mlsql: RayContext and PythonContext, spark-ray's implementations."""

from ...context import PythonContext, RayContext

__all__ = ["PythonContext", "RayContext"]
