"""How big a shard is, and how many are in flight: sized to the work, not to the partition.

A fixed shard size is wrong both ways. A cheap function wants big shards, so
that per-task costs vanish; a slow one wants many small shards, so that a
single Spark partition keeps every Ray CPU (or every actor of a pool) busy.
With Spark ``local[1]`` and 2 Ray CPUs, a 1M-row partition as one shard ran a
CPU-bound function on one Ray CPU at a time, slower than Spark alone.

``ShardSizer`` learns from the shards themselves: every Ray task stamps the
seconds the user's code took and the rows it read into its result's schema
metadata (``stamp``); the Spark side reads them back (``take_timing``) as it
collects results, and cuts later shards to about ``TARGET_SHARD_S`` seconds of
work, between one incoming Arrow batch and ``batch_rows`` / ``batch_bytes``.
Until the first timing arrives it cuts one incoming batch per shard, so the
first results come back quickly. ``batch_sizing="fixed"`` (or setting
``batch_rows`` / ``batch_bytes``) turns this off.

``window_for`` picks the shards in flight per Spark partition: enough for the
partitions Spark runs at once to fill the Ray CPUs (or the pool's actors),
plus one being read and written, at least 2.
"""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa

# Seconds of user code per shard that auto sizing aims at: long enough that a
# task's fixed cost (a few ms) stays under ~5%, short enough that a partition
# makes many shards. Measured in BENCHMARKS.md ("Batch sizing").
TARGET_SHARD_S = 0.25
# How much a new timing moves the estimate (an exponential moving average of seconds per row).
_WEIGHT = 0.5
_SECONDS_KEY = b"spark_ray.seconds"
_ROWS_KEY = b"spark_ray.rows"
# A window never grows past this, whatever the cluster: each slot is a shard in memory.
MAX_WINDOW = 16


class ShardSizer:
    """The current row limit of a partition's shards, learnt from their timings.

    Attributes:
        max_rows, max_bytes: the ceilings (batch_rows, batch_bytes).
        seconds_per_row: the estimate so far, None before the first timing.
    """

    def __init__(self, max_rows: int, max_bytes: int, target_s: float = TARGET_SHARD_S) -> None:
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.target_s = target_s
        self.seconds_per_row: float | None = None

    def row_limit(self) -> int:
        """Rows at which the shard being built closes (1: the next incoming batch alone)."""
        if self.seconds_per_row is None:
            return 1
        if self.seconds_per_row <= 0:
            return self.max_rows
        return max(1, min(self.max_rows, int(self.target_s / self.seconds_per_row)))

    def observe(self, rows: int, seconds: float) -> None:
        if rows <= 0:
            return
        rate = max(0.0, seconds) / rows
        if self.seconds_per_row is None:
            self.seconds_per_row = rate
        else:
            self.seconds_per_row = (1 - _WEIGHT) * self.seconds_per_row + _WEIGHT * rate


def stamp(table: pa.Table, seconds: float, rows: int) -> pa.Table:
    """``table`` carrying how long the user's code took on ``rows`` input rows (no copy of the data)."""
    metadata = dict(table.schema.metadata or {})
    metadata[_SECONDS_KEY] = f"{seconds:.6f}".encode()
    metadata[_ROWS_KEY] = str(rows).encode()
    return table.replace_schema_metadata(metadata)


def take_timing(table: pa.Table) -> tuple[pa.Table, tuple[int, float] | None]:
    """``table`` without the stamp, and the (rows, seconds) it carried, if any."""
    metadata = table.schema.metadata
    if not metadata or _SECONDS_KEY not in metadata:
        return table, None
    timing = (int(metadata[_ROWS_KEY]), float(metadata[_SECONDS_KEY]))
    rest = {key: value for key, value in metadata.items() if key not in (_SECONDS_KEY, _ROWS_KEY)}
    return table.replace_schema_metadata(rest or None), timing


def observing(collect: Any, sizer: ShardSizer | None) -> Any:
    """``collect`` that feeds each result's timing to ``sizer`` and hands the table on unstamped."""

    def collect_and_observe(pending: Any) -> pa.Table:
        table, timing = take_timing(collect(pending))
        if timing is not None and sizer is not None:
            sizer.observe(*timing)
        return table

    return collect_and_observe


def window_for(slots: int, parallel: float) -> int:
    """Shards in flight per Spark partition: ``parallel`` shards at work across the cluster
    (Ray CPUs over a task's CPUs, or an actor pool's call slots) shared by the ``slots``
    partitions Spark runs at once, plus one being read or written; between 2 and MAX_WINDOW.
    """
    if not math.isfinite(parallel):
        return MAX_WINDOW
    return max(2, min(MAX_WINDOW, math.ceil(parallel / max(1, slots)) + 1))
