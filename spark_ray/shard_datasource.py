"""Model mode's ``to_dataset()``: the served shards as a Ray Dataset that reads them as it runs.

A Dataset made from object refs (``from_arrow_refs``) has read every shard into
the object store before the program sees a single row, so the whole table sits
there at once. A Ray Data datasource instead hands Ray Data one read task per
group of shards, and Ray Data's streaming executor runs them as its operators
downstream consume blocks: the table flows through, bounded by Ray Data's
backpressure, and a program that stops early (``take``, ``limit``) reads only
what it used.

The read tasks fetch from the job's data servers, which live while the model
program runs: consume the Dataset inside the program (or ``materialize()`` it
there), not after it returns.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from .shard_server import ShardHandle, fetch_batches


def _read_shards(shards: list[ShardHandle]) -> Iterator[pa.Table]:
    for shard in shards:
        for batch in fetch_batches(shard):
            yield pa.Table.from_batches([batch])


def _groups(shards: list[ShardHandle], count: int) -> list[list[ShardHandle]]:
    """``shards`` cut into ``count`` runs of neighbours, in order (at least one shard each)."""
    count = max(1, min(count, len(shards)))
    size, extra = divmod(len(shards), count)
    groups, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        groups.append(shards[start:end])
        start = end
    return groups


def shard_dataset(shards: list[ShardHandle], schema: pa.Schema) -> Any:
    """``shards`` as a lazily read ``ray.data.Dataset`` of ``schema``, one read task per shard (or per group)."""
    import ray
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    if not shards:
        return ray.data.from_arrow(schema.empty_table())

    class ServedShards(Datasource):  # type: ignore[misc]
        def estimate_inmemory_data_size(self) -> int | None:
            return None

        def get_read_tasks(
            self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
        ) -> list[ReadTask]:
            unknown_size = BlockMetadata(num_rows=None, size_bytes=None, exec_stats=None, input_files=None)
            groups = _groups(shards, parallelism if parallelism > 0 else len(shards))
            return [
                ReadTask(
                    functools.partial(_read_shards, group),
                    unknown_size,
                    schema=schema,
                    per_task_row_limit=per_task_row_limit,
                )
                for group in groups
            ]

    return ray.data.read_datasource(ServedShards(), override_num_blocks=len(shards))
