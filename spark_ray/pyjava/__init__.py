"""What ``import pyjava`` gives inside a spark-ray code string (and, see ``standalone_path``, in a file run alone)."""

import os

from . import rayfix  # noqa: F401  (pyjava code does `from pyjava import rayfix`)


def standalone_path() -> str:
    """The folder to put on ``PYTHONPATH`` so that ``python file.py`` imports this shim as ``pyjava``.

    A code file written for Byzer then runs alone, with ``ray_context.is_in_mlsql``
    False and ``ray_context.mock_data`` as its table:
    ``PYTHONPATH=$(python -c 'import spark_ray.pyjava as p; print(p.standalone_path())') python file.py``.
    """
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "standalone")
