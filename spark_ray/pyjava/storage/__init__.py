"""pyjava.storage, as seen by spark-ray code strings: ``streaming_tar``."""

from . import streaming_tar  # noqa: F401  (pyjava code does `from pyjava.storage import streaming_tar`)
