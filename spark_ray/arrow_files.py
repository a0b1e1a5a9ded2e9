"""Shards on disk as Arrow IPC files: spilled results, model-mode inputs.

One format and one naming scheme for every place a shard waits on disk, read
back memory-mapped so a shard costs no copy to serve or to hand to Spark.
"""

from __future__ import annotations

import os

import pyarrow as pa


def write_shard_file(directory: str, index: int, table: pa.Table) -> str:
    """Write ``table`` as ``shard-<index>.arrow`` in ``directory``; return its path."""
    path = os.path.join(directory, f"shard-{index:06d}.arrow")
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return path


def read_shard_file(path: str) -> pa.Table:
    """A shard file, memory-mapped: the table's buffers point into the file."""
    with pa.memory_map(path) as source:
        return pa.ipc.open_file(source).read_all()
