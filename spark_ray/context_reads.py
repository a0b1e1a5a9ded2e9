"""How model-mode code reads the table through its RayContext: shards, rows, batches, pandas, a Ray Dataset.

pyjava's RayContext has many ways to read a job's table (and a few of
Byzer's own servers that spark-ray refuses, with the reason); they are the
mixin ``TableReads`` here, so ``context`` holds what a code string declares
and sets, and this module what it reads. Outside a job (``is_in_mlsql``
False) the reads return ``mock_data``.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from .convert import rows_of, to_pandas
from .errors import ContextError
from .shard_server import ShardHandle, fetch_batches, fetch_table

if TYPE_CHECKING:
    from .context import PythonContext


def _block_size(block_size: Any) -> int:
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ContextError(f"block_size is rows per block, a whole number of at least 1; got {block_size!r}")
    return block_size


def _table_of_rows(rows: list[Any]) -> pa.Table:
    """Rows of a code file run as plain Python (no job schema): dicts by name, anything else as one column."""
    if all(isinstance(row, dict) for row in rows):
        return pa.Table.from_pylist(rows)
    return pa.table({"value": rows})


def fetch_rows(shard: ShardHandle) -> Iterator[dict[str, Any]]:
    for batch in fetch_batches(shard):
        yield from rows_of(pa.Table.from_batches([batch]))


class TableReads:
    """The reading half of ``context.RayContext`` (a mixin: it needs the RayContext's ``context``)."""

    if TYPE_CHECKING:
        context: PythonContext

        @property
        def is_in_mlsql(self) -> bool: ...

        @property
        def mock_data(self) -> list[Any]: ...

    # --- model mode ------------------------------------------------------
    def data_servers(self) -> list[ShardHandle]:
        """One handle per shard of the table; pass one to fetch_once_as_rows, in a Ray task if you like."""
        return self.context.data_servers()

    @staticmethod
    def fetch_once_as_rows(data_server: ShardHandle) -> Iterator[dict[str, Any]]:
        """The rows of one shard as dicts; works anywhere, e.g. inside a Ray task."""
        return fetch_rows(data_server)

    @staticmethod
    def fetch_once_as_batches(shard: ShardHandle) -> Iterator[pa.RecordBatch]:
        """The Arrow batches of one shard."""
        return fetch_batches(shard)

    @staticmethod
    def fetch_data_from_single_data_server(data_server: ShardHandle) -> Iterator[Any]:
        """One shard as pandas DataFrames, one per Arrow batch."""
        for batch in fetch_batches(data_server):
            yield to_pandas(pa.Table.from_batches([batch]))

    @staticmethod
    def fetch_data_from_single_data_server_as_arrow(data_server: ShardHandle) -> Iterator[pa.Table]:
        """One shard as Arrow tables, one per batch."""
        for batch in fetch_batches(data_server):
            yield pa.Table.from_batches([batch])

    @staticmethod
    def fetch_as_repeatable_file(
        context_id: Any, data_servers: Iterable[ShardHandle], file_ref: Any, batch_size: int
    ) -> Iterator[Any]:
        """The shards as pandas DataFrames of about ``batch_size`` rows; call again to read them again.

        pyjava copies the data to a local file first so it can be read twice;
        shard servers serve a shard as often as asked, so ``context_id`` and
        ``file_ref`` (pyjava's file) are not needed and not read.
        """
        size = _block_size(batch_size)
        for shard in list(data_servers):
            for batch in fetch_batches(shard):
                for start in range(0, batch.num_rows, size):
                    yield to_pandas(pa.Table.from_batches([batch.slice(start, size)]))

    def collect_as_file(self, batch_size: int) -> Iterator[Any]:
        """The whole table as pandas DataFrames of about ``batch_size`` rows, readable again by calling again."""
        return TableReads.fetch_as_repeatable_file(None, self.data_servers(), None, batch_size)

    @staticmethod
    def parse_servers(host_ports: str) -> list[Any]:
        """Refused: pyjava's ``host:port`` data servers are Byzer's Java side, which spark-ray does not have."""
        raise ContextError(
            f"TableReads.parse_servers({host_ports!r}) names Byzer's Java data servers, which spark-ray does not "
            "have: pass the handles of ray_context.data_servers() to your Ray tasks instead"
        )

    def data_servers_in_ray(self) -> Iterator[Any]:
        """Refused: pyjava's Ray actors in front of its Java data servers; shard handles are read from Ray directly."""
        raise ContextError(
            "data_servers_in_ray() serves pyjava's Java data servers from Ray actors; spark-ray's "
            "ray_context.data_servers() handles are read from Ray tasks as they are (TableReads.collect_from)"
        )

    def build_servers_in_ray(self) -> list[Any]:
        """Refused, as ``data_servers_in_ray``."""
        raise ContextError(
            "build_servers_in_ray() starts pyjava's Ray actors in front of its Java data servers; spark-ray's "
            "ray_context.data_servers() handles are read from Ray tasks as they are (TableReads.collect_from)"
        )

    @staticmethod
    def collect_from(servers: Iterable[ShardHandle] | ShardHandle) -> Iterator[dict[str, Any]]:
        """The rows of the given shards, in order, as dicts; works anywhere, e.g. inside a Ray task.

        pyjava's way to read some of the table: pass ``ray_context.data_servers()``
        (or a slice of it, or one handle) to a ``@ray.remote`` task and read them
        there. Rows are read as they are iterated, a batch at a time.
        """
        shards = [servers] if isinstance(servers, ShardHandle) else list(servers)
        for shard in shards:
            if not isinstance(shard, ShardHandle):
                raise ContextError(
                    f"collect_from expects handles from ray_context.data_servers(), got {type(shard).__name__}"
                )
            yield from fetch_rows(shard)

    def collect_batches(self) -> Iterator[pa.RecordBatch]:
        """The whole table as Arrow batches, in order, read a shard at a time as they are iterated.

        The batch API of model mode: no Python object per value, and only the
        shard being read in memory. Pair it with ``build_result_from_batches``
        for a program that is Arrow (or pandas, per batch) from end to end.
        """
        if not self.is_in_mlsql:
            yield from _table_of_rows(list(self.mock_data)).to_batches()
            return
        for shard in self.data_servers():
            yield from fetch_batches(shard)

    def collect(self) -> list[dict[str, Any]]:
        """The whole table as a list of dicts (it must fit in memory); ``mock_data`` outside a job."""
        if not self.is_in_mlsql:
            return list(self.mock_data)
        return [row for shard in self.data_servers() for row in fetch_rows(shard)]

    def to_pandas(self) -> Any:
        """The whole table as one pandas DataFrame (it must fit in memory)."""
        if not self.is_in_mlsql:
            import pandas as pd

            return pd.DataFrame(list(self.mock_data))
        tables = [fetch_table(shard) for shard in self.data_servers()]
        whole = pa.concat_tables(tables) if tables else (self.context.input_schema or pa.schema([])).empty_table()
        return to_pandas(whole)  # maps as dicts, as the pandas kind gets them

    def to_dataset(self, num_tables_per_block: int = 1) -> Any:
        """The whole table as a Ray Dataset, read shard by shard by Ray tasks as it is consumed.

        Streaming: Ray Data reads the shards as its operators need blocks, so
        the table is never held whole (see ``shard_datasource``). Consume it
        within the program. ``.to_dask()`` on it needs the dask package;
        without it the error says so and what to use instead.
        ``num_tables_per_block`` is pyjava's parameter: here a block is what one
        read task makes of a shard, so it is checked and not otherwise read.
        """
        _block_size(num_tables_per_block)
        from .shard_datasource import shard_dataset

        dataset = shard_dataset(self.data_servers(), self.context.input_schema or pa.schema([]))
        dataset.__class__ = _dataset_class(type(dataset))
        return dataset

    # --- setting the output, as pyjava's RayContext also offers ----------
    def build_result(self, items: Iterable[Any], block_size: int = 1024) -> None:
        """``context.build_result(items, block_size)``, reachable from the RayContext as in pyjava."""
        self.context.build_result(items, block_size)

    def build_result_from_batches(self, batches: Iterable[Any]) -> None:
        """Arrow batches or tables (or pandas DataFrames) as the output, each matched to the schema by name.

        Each is checked and kept as it arrives, so a generator over
        ``collect_batches()`` never holds the input whole.
        """
        for batch in batches:
            self.context.set_output(batch)

    def build_result_from_dataframe(self, df: Any) -> None:
        """A pandas DataFrame as the output, columns by name (pyjava's ``build_result_from_dataframe``)."""
        self.context.set_output(df)

    def build_result_from_dir(self, target_path: str) -> None:
        """A directory as Byzer's ``schema=file`` rows (start, offset, value)."""
        self.context.build_result_from_dir(target_path)

    def fetch_as_dir(self, target_dir: str, servers: Iterable[ShardHandle] | None = None) -> None:
        """Put back under ``target_dir`` the directory this table (or these shards) holds as ``schema=file`` rows."""
        from .pyjava.storage.streaming_tar import save_rows_as_file

        rows = self.collect() if not servers else TableReads.collect_from(list(servers))
        save_rows_as_file(rows, target_dir)


_DATASET_CLASSES: dict[Any, type] = {}


def _restore_dataset(cls: Any, state: Any) -> Any:
    """Unpickle a dataset as ``cls`` (Ray's class) from its pickled state."""
    dataset = cls.__new__(cls)
    if state is not None:
        setstate = getattr(dataset, "__setstate__", None)
        if setstate is not None:
            setstate(state)
        else:
            dataset.__dict__.update(state)
    return dataset


def _dataset_class(base: Any) -> type:
    """``base`` (Ray's Dataset class) with a ``to_dask`` that says what to install when dask is missing.

    The dataset keeps its class's every other behaviour, and ``isinstance``
    checks against Ray's classes still hold.
    """
    found = _DATASET_CLASSES.get(base)
    if found is None:

        def to_dask(self: Any, *args: Any, **kwargs: Any) -> Any:
            if importlib.util.find_spec("dask") is None:
                raise ModuleNotFoundError(
                    "to_dask() needs the 'dask' package, which is not installed in this Python "
                    f"({sys.executable}): pip install 'dask[dataframe]' here (and in the Ray workers' "
                    "environment), or read the table with ray_context.to_pandas() or iterate "
                    "ray_context.to_dataset() directly",
                    name="dask",
                )
            return base.to_dask(self, *args, **kwargs)

        def __reduce_ex__(self: Any, protocol: Any) -> Any:  # noqa: N807
            # Pickled (sent to a Ray task) as Ray's own class: this one is made here, at run time.
            reduced = base.__reduce_ex__(self, protocol)
            state = reduced[2] if isinstance(reduced, tuple) and len(reduced) > 2 else None
            return (_restore_dataset, (base, state))

        found = type(base.__name__, (base,), {"to_dask": to_dask, "__reduce_ex__": __reduce_ex__})
        _DATASET_CLASSES[base] = found
    return found
