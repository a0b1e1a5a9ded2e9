"""A directory as rows of a table, and back: Byzer's ``schema=file``.

Byzer-python returns a directory (a trained model, say) as a table: the
directory is written as one tar stream, cut into chunks, one row per chunk,
with the schema ``st(field(start,long),field(offset,long),field(value,binary))``
that ``!python conf "schema=file"`` stands for. ``start`` is the chunk's byte
offset in the stream and ``offset``, despite its name, the chunk's length (the
names are Byzer's, so tables saved by Byzer read back here and the other way).
Such a table can be saved like any other, and ``save_rows_as_file`` (or
``ray_context.fetch_as_dir(dir)`` in a later script) puts the directory back.

The tar stream is written piece by piece, never whole: a header, the file's
bytes as read, the padding, so a directory of any size costs one chunk of
memory while its rows are produced.

Example:
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as source, tempfile.TemporaryDirectory() as target:
    ...     with open(os.path.join(source, "weights.bin"), "wb") as file:
    ...         _ = file.write(b"0123456789")
    ...     rows = list(build_rows_from_file(source))
    ...     save_rows_as_file(rows, target)
    ...     print(sorted(rows[0]), open(os.path.join(target, "weights.bin"), "rb").read())
    ['offset', 'start', 'value'] b'0123456789'
"""

from __future__ import annotations

import os
import tarfile
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

__all__ = ["CHUNK_BYTES", "FILE_SCHEMA", "build_rows_from_file", "save_rows_as_file"]

# What `schema=file` stands for.
FILE_SCHEMA = "st(field(start,long),field(offset,long),field(value,binary))"
# Bytes per row: small enough for Arrow batches and Spark rows, large enough to keep rows few.
CHUNK_BYTES = 1024 * 1024
_READ_BYTES = 64 * 1024


def build_rows_from_file(target_dir: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[dict[str, Any]]:
    """The files under ``target_dir`` as rows ``{"start", "offset", "value"}`` of a tar stream.

    Files only (empty directories are not kept), with paths relative to
    ``target_dir``, in a stable order.

    Raises:
        FileNotFoundError: ``target_dir`` is not a directory.
    """
    if not os.path.isdir(target_dir):
        raise FileNotFoundError(f"build_rows_from_file needs a directory; {target_dir!r} is not one")
    start = 0
    pending = bytearray()
    for piece in _tar_pieces(target_dir):
        pending += piece
        while len(pending) >= chunk_bytes:
            value = bytes(pending[:chunk_bytes])
            del pending[:chunk_bytes]
            yield {"start": start, "offset": len(value), "value": value}
            start += len(value)
    if pending:
        yield {"start": start, "offset": len(pending), "value": bytes(pending)}


def _tar_pieces(root: str) -> Iterator[bytes]:
    """A tar archive of the files under ``root``, as a stream of byte strings."""
    for directory, subdirectories, files in os.walk(root):
        subdirectories.sort()
        for name in sorted(files):
            path = os.path.join(directory, name)
            status = os.stat(path)
            info = tarfile.TarInfo(os.path.relpath(path, root).replace(os.sep, "/"))
            info.size = status.st_size
            info.mtime = int(status.st_mtime)
            info.mode = status.st_mode & 0o777
            yield info.tobuf(tarfile.PAX_FORMAT)  # PAX: any path length, any characters
            written = 0
            with open(path, "rb") as file:
                while written < info.size:
                    block = file.read(min(_READ_BYTES, info.size - written))
                    if not block:
                        raise OSError(f"{path} shrank while it was being read ({written} of {info.size} bytes)")
                    written += len(block)
                    yield block
            remainder = info.size % tarfile.BLOCKSIZE
            if remainder:
                yield tarfile.NUL * (tarfile.BLOCKSIZE - remainder)
    yield tarfile.NUL * (2 * tarfile.BLOCKSIZE)  # end of archive


def save_rows_as_file(data: Iterable[Mapping[str, Any]], target_dir: str) -> None:
    """Write the directory that ``build_rows_from_file`` turned into ``data`` back under ``target_dir``.

    Rows may come in any order (a table's rows often do): they are put back in
    ``start`` order. Extraction refuses paths that would leave ``target_dir``.

    Raises:
        ValueError: the rows leave a gap or overlap (rows of two directories,
            or a missing row).
    """
    rows = sorted(data, key=lambda row: int(row["start"]))
    os.makedirs(target_dir, exist_ok=True)
    handle, archive = tempfile.mkstemp(suffix=".tar")
    try:
        with os.fdopen(handle, "wb") as file:
            expected = 0
            for row in rows:
                if int(row["start"]) != expected:
                    raise ValueError(
                        f"the file rows do not join up: a row starts at byte {row['start']}, expected {expected}"
                    )
                value = bytes(row["value"])
                file.write(value)
                expected += len(value)
        with tarfile.open(archive, mode="r:") as tar:
            tar.extractall(target_dir, filter="data")
    finally:
        os.remove(archive)
