"""pyjava.api, as seen by spark-ray code strings."""

from . import mlsql  # noqa: F401
