"""What ``import pyjava`` gives inside a spark-ray code string (and only there)."""

from . import rayfix  # noqa: F401  (pyjava code does `from pyjava import rayfix`)
