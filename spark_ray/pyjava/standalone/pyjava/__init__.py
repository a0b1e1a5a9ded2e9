"""``import pyjava`` in a code file run as plain Python: spark-ray's shim under pyjava's name.

Inside a job, code strings reach the shim through their own ``__import__``
(code_string.py). A file run alone has no such hook, so this package, found
first on ``PYTHONPATH``, makes ``pyjava`` and its modules the shim's own
module objects; there ``RayContext.connect(globals(), ...)`` has
``is_in_mlsql`` False and reads ``ray_context.mock_data``.
"""

import importlib
import sys

_MODULES = ("api", "api.mlsql", "rayfix", "storage", "storage.streaming_tar")

for _name in _MODULES:
    sys.modules[f"pyjava.{_name}"] = importlib.import_module(f"spark_ray.pyjava.{_name}")
sys.modules[__name__] = importlib.import_module("spark_ray.pyjava")
