"""The child of test_bad_input.py's empty-offsets test: a batch as Spark sends a column of empty lists of
strings, whose strings' vector has length 0 and an empty offsets buffer that ends where a PROT_NONE page
begins, so any read of an offset from it is a segfault every time.

    guard_page_child.py nbytes     # RecordBatch.nbytes: reads the first offset (segfaults)
    guard_page_child.py coalesce   # spark-ray's coalesce cuts two such batches into a shard, then IPC-writes it

``coalesce`` writes (``processes.write_result``) the shards, the first shard's tags and ids, and its nbytes.
"""

from __future__ import annotations

import ctypes
import mmap
import sys

import pyarrow as pa


def guarded_batch() -> tuple[pa.RecordBatch, mmap.mmap]:
    """The batch, and the mapping under it (which must outlive the batch)."""
    page = mmap.PAGESIZE
    region = mmap.mmap(-1, 2 * page)
    start = ctypes.addressof(ctypes.c_char.from_buffer(region))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    assert libc.mprotect(start + page, page, 0) == 0, ctypes.get_errno()
    no_offsets = pa.foreign_buffer(start + page, 0, base=region)
    strings = pa.StringArray.from_buffers(0, no_offsets, pa.py_buffer(b""))
    tags = pa.ListArray.from_arrays(pa.array([0, 0, 0], pa.int32()), strings)
    return pa.record_batch([pa.array([1, 2], pa.int64()), tags], names=["id", "tags"]), region


def main(step: str) -> None:
    batch, _region = guarded_batch()
    if step == "nbytes":
        print(batch.nbytes)
        return
    from processes import write_result

    from spark_ray.runners import coalesce

    shards = list(coalesce([batch, batch], 1 << 20, 1000))
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, shards[0].schema) as writer:  # as the relay and Ray's serializer do
        writer.write_table(shards[0])
    first = shards[0]
    write_result(
        {
            "shards": len(shards),
            "tags": first.column("tags").to_pylist(),
            "ids": first.column("id").to_pylist(),
            "nbytes": first.nbytes,
        }
    )


if __name__ == "__main__":
    main(sys.argv[1])
