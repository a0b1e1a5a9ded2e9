"""Spark tables as Ray Datasets, and back, without RayDP.

``to_ray_dataset(df)`` streams the table from the executors into Ray's object
store and returns a ``ray.data.Dataset`` of those blocks; nothing is collected
on the driver but one small row per block. ``from_ray_dataset(spark, ds)``
reads a Dataset's blocks in the executors, in parallel, into a DataFrame.

Who owns the blocks: a block belongs to the process that put it in the
object store, and dies with it. A Spark Python worker is the wrong owner (it
exits when Spark says, and on ``spark.stop()``; RayDP's datasets are lost that
way, raydp #375), and ``ray.put(_owner=...)`` is gone since Ray 2.56. So the
driver starts a ``BlockKeeper`` actor on every node (no CPU, pinned to its
node, named for the driver's Ray job), Spark workers send their shards to
the keeper on their own node, and the keeper puts them: its blocks live as
long as the driver's Ray connection and the Dataset holding them, whatever
Spark does. Once the driver holds the blocks' refs, the keeper drops its own,
so a block is freed when the last Dataset using it is.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from .checkpoint import checkpoint_surviving_an_executor
from .errors import ConfigError, SchemaError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

    from .cluster import RaySpec

# Blocks in flight from one Spark task to its keeper.
PUT_WINDOW = 2


class BlockKeeper:
    """Owns blocks for the driver, so that they outlive the processes that made them (a threaded actor)."""

    def __init__(self) -> None:
        self.blocks: dict[str, dict[Any, Any]] = collections.defaultdict(dict)
        self.loans: dict[str, list[Any]] = {}
        self.lock = threading.Lock()

    def put(self, dataset_id: str, key: Any, table: pa.Table) -> int:
        """Put ``table`` in the object store as this actor's block; returns its rows."""
        import ray

        ref = ray.put(table)
        with self.lock:
            self.blocks[dataset_id][key] = ref
        return table.num_rows

    def take(self, dataset_id: str, keys: list[Any]) -> list[Any]:
        """The refs of ``keys``, in that order; the caller borrows them."""
        with self.lock:
            held = self.blocks.get(dataset_id, {})
            missing = [key for key in keys if key not in held]
            if missing:
                raise KeyError(f"no blocks {missing[:5]} for dataset {dataset_id} in this keeper")
            return [held[key] for key in keys]

    def drop(self, dataset_id: str) -> None:
        """Forget the dataset's refs: its blocks now live as long as someone else holds them."""
        with self.lock:
            self.blocks.pop(dataset_id, None)

    def lend(self, loan_id: str, refs: list[Any]) -> int:
        """Hold the driver's refs (from_ray_dataset) so Spark workers can borrow them by index."""
        with self.lock:
            self.loans[loan_id] = list(refs)
        return len(refs)

    def borrow(self, loan_id: str, indices: list[int]) -> list[Any]:
        with self.lock:
            refs = self.loans.get(loan_id)
        if refs is None:
            raise KeyError(f"no blocks lent as {loan_id}: the from_ray_dataset call has ended")
        return [refs[index] for index in indices]

    def end_loan(self, loan_id: str) -> None:
        with self.lock:
            self.loans.pop(loan_id, None)

    def held(self) -> dict[str, int]:
        """Blocks and loans held now, by dataset (for tests and diagnostics)."""
        with self.lock:
            return {
                **{key: len(value) for key, value in self.blocks.items()},
                **{k: len(v) for k, v in self.loans.items()},
            }


_REMOTES: dict[str, Any] = {}


def _remote_keeper() -> Any:
    if "keeper" not in _REMOTES:
        import ray

        _REMOTES["keeper"] = ray.remote(BlockKeeper)
    return _REMOTES["keeper"]


@dataclass(frozen=True)
class Keepers:
    """The driver's keepers: one name per node, and the driver's node's as the fallback."""

    namespace: str
    by_node: tuple[tuple[str, str], ...]
    fallback: str

    def name_for(self, node_id: str) -> str:
        return dict(self.by_node).get(node_id, self.fallback)

    def handle(self, node_id: str | None = None) -> Any:
        """The keeper of ``node_id`` (this process's node by default), found by name."""
        import ray

        node = node_id or ray.get_runtime_context().get_node_id()
        return ray.get_actor(self.name_for(node), namespace=self.namespace)


def ensure_keepers() -> Keepers:
    """The driver's keepers, one per alive node, started if missing (call on the driver).

    They belong to the driver's Ray job, so they go when the driver
    disconnects, and never with a Spark worker or ``spark.stop()``.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from .cluster import driver_actor

    context = ray.get_runtime_context()
    namespace = context.namespace
    prefix = f"spark_ray_blocks_{context.get_job_id()}"
    names = []
    handles = []
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        node_id = node["NodeID"]
        name = f"{prefix}_{node_id[:16]}"
        names.append((node_id, name))
        options = {
            "name": name,
            "namespace": namespace,
            "get_if_exists": True,
            "num_cpus": 0,
            "max_concurrency": 16,
            "scheduling_strategy": NodeAffinitySchedulingStrategy(node_id, soft=False),
        }
        handles.append(driver_actor(name, _keeper_maker(options)))
    ray.get([handle.__ray_ready__.remote() for handle in handles])
    own = context.get_node_id()
    fallback = dict(names).get(own) or names[0][1]
    return Keepers(namespace, tuple(names), fallback)


def _keeper_maker(options: dict[str, Any]) -> Callable[[], Any]:
    return lambda: _remote_keeper().options(**options).remote()


# --------------------------------------------------------------------------- Spark -> Ray


def push_function(
    ray_spec: RaySpec, keepers: Keepers, dataset_id: str, max_bytes: int, max_rows: int
) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The mapInArrow function of to_ray_dataset: each shard to this node's keeper, one small row out."""

    def push_partition(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        from .cluster import ensure_worker_ray
        from .ray_results import task_result
        from .runners import coalesce

        ensure_worker_ray(ray_spec)  # before `import ray`: Ray reads its auth token when imported
        import ray

        context = TaskContext.get()
        partition = context.partitionId() if context is not None else 0
        attempt = context.attemptNumber() if context is not None else 0
        node = ray.get_runtime_context().get_node_id()
        keeper_name = keepers.name_for(node)
        keeper = ray.get_actor(keeper_name, namespace=keepers.namespace)
        in_flight: collections.deque[tuple[int, Any]] = collections.deque()
        chunks, rows = [], []

        def settle(limit: int) -> None:
            while len(in_flight) > limit:
                chunk, ref = in_flight.popleft()
                chunks.append(chunk)
                rows.append(task_result(ref))

        try:
            for chunk, shard in enumerate(coalesce(batches, max_bytes, max_rows)):
                in_flight.append((chunk, keeper.put.remote(dataset_id, (partition, attempt, chunk), shard)))
                settle(PUT_WINDOW - 1)
            settle(0)
        finally:
            for _, ref in in_flight:
                ray.cancel(ref)
        yield pa.RecordBatch.from_pydict(
            {
                "partition": pa.array([partition] * len(chunks), pa.int32()),
                "attempt": pa.array([attempt] * len(chunks), pa.int32()),
                "chunk": pa.array(chunks, pa.int32()),
                "keeper": pa.array([keeper_name] * len(chunks), pa.string()),
                "rows": pa.array(rows, pa.int64()),
            }
        )

    push_partition.__name__ = push_partition.__qualname__ = "to_ray_dataset"
    return push_partition


_PUSHED_SCHEMA = "partition int, attempt int, chunk int, keeper string, rows long"


def to_ray_dataset(
    df: DataFrame,
    *,
    batch_bytes: int | None = None,
    batch_rows: int | None = None,
    ray_address: str | None = None,
    runtime_env: dict[str, Any] | None = None,
    job_group: str | None = None,
    job_description: str | None = None,
    **options: Any,
) -> Any:
    """The DataFrame as a ``ray.data.Dataset``, streamed from the executors into Ray.

    Each Spark task cuts its partition into shards (``batch_bytes`` /
    ``batch_rows``) and hands them to the block keeper on its node; the
    driver collects only one small row per block. The blocks belong to the
    keeper, not to Spark's workers, so the Dataset stays readable after the
    Spark job, the workers' exit and ``spark.stop()``, for as long as this
    driver stays connected to Ray. Rows keep Spark's partition order.

    Args:
        df: the table.
        batch_bytes, batch_rows: the size of a block.
        ray_address, runtime_env: the Ray connection, as ``ray_transform`` takes them.
        job_group, job_description: the Spark job's group and description.
        **options: the other connection options (``ray_namespace``, ``local_ray_cpus``...). An
            option this door cannot honour (``num_gpus``, ``kind``...) is refused by name.

    Returns:
        A materialized ``ray.data.Dataset`` with the DataFrame's columns.

    Example:
        ds = spark_ray.to_ray_dataset(spark.range(1000))
        ds.sum("id")
    """
    import ray

    from . import cluster
    from .actor_pool import make_way_for_a_new_call
    from .conf import door_options, resolve_conf
    from .doors import TO_DATASET
    from .jobs import new_job_id, spark_job_group
    from .schema import to_arrow_schema

    knobs = dict(batch_bytes=batch_bytes, batch_rows=batch_rows, ray_address=ray_address, runtime_env=runtime_env)
    knobs |= dict(job_group=job_group, job_description=job_description)
    conf = resolve_conf(df.sparkSession, door_options(knobs, options, ray_args=False), door=TO_DATASET)
    if not conf.uses_ray:
        raise ConfigError("to_ray_dataset needs Ray; python_mode='python' has none")
    spec = cluster.ensure_driver_ray(conf)
    make_way_for_a_new_call()
    keepers = ensure_keepers()
    dataset_id = new_job_id()
    pushed = df.mapInArrow(push_function(spec, keepers, dataset_id, conf.batch_bytes, conf.batch_rows), _PUSHED_SCHEMA)
    try:
        with spark_job_group(df.sparkSession, conf, dataset_id, "spark-ray to_ray_dataset"):
            placed = sorted(pushed.collect(), key=lambda row: (row.partition, row.chunk))
        refs = _take_in_order(keepers, dataset_id, placed)
    finally:
        for _, name in keepers.by_node:  # the driver holds the refs now (or the call failed)
            ray.get_actor(name, namespace=keepers.namespace).drop.remote(dataset_id)
    if not refs:
        return ray.data.from_arrow(to_arrow_schema(df.schema).empty_table())
    return ray.data.from_arrow_refs(refs)


def _take_in_order(keepers: Keepers, dataset_id: str, placed: list[Any]) -> list[Any]:
    """The blocks' refs in table order, each borrowed from the keeper that holds it."""
    import ray

    by_keeper: dict[str, list[int]] = collections.defaultdict(list)
    for position, row in enumerate(placed):
        by_keeper[row.keeper].append(position)
    refs: list[Any] = [None] * len(placed)
    for name, positions in by_keeper.items():
        keeper = ray.get_actor(name, namespace=keepers.namespace)
        keys = [(placed[p].partition, placed[p].attempt, placed[p].chunk) for p in positions]
        taken: list[Any] = ray.get(keeper.take.remote(dataset_id, keys))
        for position, ref in zip(positions, taken):
            refs[position] = ref
    return refs


# --------------------------------------------------------------------------- Ray -> Spark


def _plain_schema(schema: pa.Schema) -> pa.Schema:
    """Extension types (Ray's tensors) as their storage types, which Spark can hold."""
    return pa.schema(
        [
            field.with_type(field.type.storage_type) if isinstance(field.type, pa.ExtensionType) else field
            for field in schema
        ]
    )


def _plain_table(table: pa.Table) -> pa.Table:
    if not any(isinstance(field.type, pa.ExtensionType) for field in table.schema):
        return table
    columns = [
        pa.chunked_array([chunk.storage for chunk in column.chunks], column.type.storage_type)
        if isinstance(column.type, pa.ExtensionType)
        else column
        for column in table.columns
    ]
    return pa.Table.from_arrays(columns, names=table.column_names)


def read_function(
    ray_spec: RaySpec, keepers: Keepers, loan_id: str, keeper_node: str, output: pa.Schema
) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The mapInArrow function of from_ray_dataset: block indices in, the blocks' rows out."""

    def read_blocks(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from .cluster import ensure_worker_ray
        from .convert import conform_table

        ensure_worker_ray(ray_spec)  # before `import ray`: Ray reads its auth token when imported
        import ray

        indices = [index for batch in batches for index in batch.column(0).to_pylist()]
        if not indices:
            return
        keeper = keepers.handle(keeper_node)
        refs = ray.get(keeper.borrow.remote(loan_id, indices))
        for ref in refs:
            table = _plain_table(ray.get(ref))
            if table.num_rows:  # an empty block may have no columns at all (e.g. after a filter)
                yield from conform_table(table, output, "the Ray Dataset").to_batches()

    read_blocks.__name__ = read_blocks.__qualname__ = "from_ray_dataset"
    return read_blocks


def _dataset_schema(ds: Any) -> pa.Schema | None:
    schema = ds.schema(fetch_if_missing=True)
    base = getattr(schema, "base_schema", schema)
    return base if isinstance(base, pa.Schema) else None


def from_ray_dataset(
    spark: SparkSession,
    ds: Any,
    schema: str | StructType | None = None,
    *,
    ray_address: str | None = None,
    runtime_env: dict[str, Any] | None = None,
    job_group: str | None = None,
    job_description: str | None = None,
    **options: Any,
) -> DataFrame:
    """A ``ray.data.Dataset`` as a DataFrame, its blocks read by the executors in parallel.

    The Dataset runs (``to_arrow_refs``: its pipeline executes in Ray, the
    blocks stay in the object store), the driver lends the refs to its
    keeper, and Spark tasks borrow them by index and read them; the result is
    locally checkpointed, so the blocks are needed only during this call.
    Columns keep their names and Arrow types (Ray's tensor columns become
    lists); with ``schema`` the columns are matched by name, else by position,
    and cast safely.

    Args:
        spark: the session to make the DataFrame in.
        ds: a ``ray.data.Dataset``.
        schema: the DataFrame's schema (any form ``ray_transform`` takes); None
            derives it from the Dataset's.
        ray_address, runtime_env: the Ray connection, as ``ray_transform`` takes them.
        job_group, job_description: the Spark job's group and description.
        **options: the other connection options (``ray_namespace``...). An option this door
            cannot honour (``batch_rows``, ``num_cpus``...) is refused by name.

    Example:
        df = spark_ray.from_ray_dataset(spark, ray.data.range(100).map_batches(lambda b: {"sq": b["id"] ** 2}))
    """
    import ray

    from . import cluster
    from .actor_pool import make_way_for_a_new_call
    from .conf import door_options, resolve_conf
    from .doors import FROM_DATASET
    from .jobs import new_job_id, spark_job_group
    from .schema import parse_schema, to_arrow_schema
    from .schema_arrow import from_arrow_schema
    from .spark_session_kind import kind_of

    knobs = dict(ray_address=ray_address, runtime_env=runtime_env, job_group=job_group, job_description=job_description)
    conf = resolve_conf(spark, door_options(knobs, options, ray_args=False), door=FROM_DATASET)
    if not conf.uses_ray:
        raise ConfigError("from_ray_dataset needs Ray; python_mode='python' has none")
    spec = cluster.ensure_driver_ray(conf)
    make_way_for_a_new_call()
    refs = ds.to_arrow_refs()
    if schema is not None:
        struct = parse_schema(schema)
    else:
        found = _dataset_schema(ds)
        if found is None:
            found = _plain_table(ray.get(refs[0])).schema if refs else None
        if found is None:
            raise SchemaError("the Ray Dataset is empty and has no schema: pass schema=...")
        try:
            struct = from_arrow_schema(_plain_schema(found))
        except SchemaError as error:
            raise SchemaError(f"the Ray Dataset's schema cannot be a Spark schema: {error}; pass schema=...") from None
    if not refs:
        return spark.createDataFrame([], struct)
    keepers = ensure_keepers()
    keeper_node = ray.get_runtime_context().get_node_id()
    keeper = keepers.handle(keeper_node)
    loan_id = new_job_id()
    ray.get(keeper.lend.remote(loan_id, refs))
    partitions = min(len(refs), max(1, kind_of(spark).default_parallelism() * 2))
    reader = read_function(spec, keepers, loan_id, keeper_node, to_arrow_schema(struct))
    try:
        with spark_job_group(spark, conf, loan_id, "spark-ray from_ray_dataset"):
            indices = spark.range(0, len(refs), numPartitions=partitions)
            return checkpoint_surviving_an_executor(indices.mapInArrow(reader, struct))
    finally:
        keeper.end_loan.remote(loan_id)
