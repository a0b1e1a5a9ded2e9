"""The job's program in this process, and the body of every shard's Ray task.

A Ray worker process (a task's, or an actor's of a pool) and, for
python_mode="python", a Spark worker run many shards of one job: the program
is unpickled once per process and job and kept, so a callable class is built
once there too. Each shard's run is timed around the user's code alone, and
the time travels with its result for the shard sizing (``shard_sizing``).

Kept apart from the runners (which submit shards) and the actor pools (whose
actors run them) because both run shards through it.
"""

from __future__ import annotations

import collections
import time
from typing import Any

import pyarrow as pa

from .shard_program import ShardProgram
from .shard_server import ShardHandle, fetch_table
from .shard_sizing import stamp


class _Recent(collections.OrderedDict):  # type: ignore[type-arg]
    """A small per-process cache by job id: a job's tasks reuse one entry, old jobs fall out."""

    def __init__(self, size: int = 8) -> None:
        super().__init__()
        self.size = size

    def remember(self, key: str, value: Any) -> Any:
        self[key] = value
        while len(self) > self.size:
            self.popitem(last=False)
        return value


# Programs unpickled in this Ray worker process.
_PROGRAMS = _Recent()


def cached_program(job_id: str, program_blob: bytes) -> ShardProgram:
    """This job's program in this process, unpickled once (a callable class is built once, too)."""
    program = _PROGRAMS.get(job_id)
    if program is None:
        import cloudpickle

        program = _PROGRAMS.remember(job_id, cloudpickle.loads(program_blob))
    return program  # type: ignore[no-any-return]


def run_timed(program: ShardProgram, shard: pa.Table | ShardHandle) -> pa.Table:
    """Run one shard (fetched first if it is a handle) and stamp how long the user's code took."""
    if isinstance(shard, ShardHandle):
        shard = fetch_table(shard)
    program.instantiate()  # a class's __init__ is not the shard's work
    start = time.perf_counter()
    result = program.run(shard)
    return stamp(result, time.perf_counter() - start, shard.num_rows)


def run_shard_task(job_id: str, program_blob: bytes, shard: pa.Table | ShardHandle) -> pa.Table:
    """The body of every Ray task: fetch this job's program (cached) and run one shard.

    The shard comes by value (executor path) or as a handle to read from the
    driver's data server (driver path). The result carries its timing (see
    ``shard_sizing``).
    """
    return run_timed(cached_program(job_id, program_blob), shard)
