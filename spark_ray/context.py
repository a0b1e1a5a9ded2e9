"""The pyjava-style API that Byzer code strings are written against.

A code string sees ``context`` (a PythonContext, also bound as
``data_manager``) and can ``from pyjava.api.mlsql import RayContext``.

- Data mode: the code declares the per-row or per-shard function
  (``ray_context.foreach(fn)``, ``map_iter(fn)`` or ``setup(...)``) and
  spark-ray runs it over every shard.
- Model mode: the code runs once. It lists the shards
  (``ray_context.data_servers()``), reads them (``fetch_once_as_rows(shard)``,
  ``RayContext.collect_from(shards)``, also from inside Ray tasks), or takes the
  whole table (``collect()``, ``collect_batches()``, ``to_pandas()``,
  ``to_dataset()``, and ``to_dataset().to_dask()`` where dask is installed),
  and sets the output
  (``context.set_output([[pd.Series, ...]])``, ``context.build_result(rows)``,
  ``ray_context.build_result_from_dataframe(df)``,
  ``ray_context.build_result_from_batches(arrow_batches)``, or a directory as Byzer's
  ``schema=file`` rows with ``build_result_from_dir(path)``).
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pyarrow as pa

from .convert import ROWS_PER_CHUNK, conform_table, pandas_to_table, rows_of, rows_to_batch, to_pandas
from .errors import ContextError, ResultSchemaError, UserCodeError
from .shard_server import ShardHandle, fetch_batches, fetch_table

log = logging.getLogger(__name__)

# What requested_address holds until the code calls RayContext.connect.
UNSET: Any = object()


class PythonContext:
    """What ``context`` (and ``data_manager``) is inside a code string.

    Attributes:
        conf: the job's options as strings (Byzer's runnerConf).
        requested_address: the address the code passed to RayContext.connect,
            or UNSET if it never connected.
        registered: (kind, fn) pairs the code declared in data mode, in order.
        shards: model mode: the handles of the table's shards.
        schema: model mode: the Arrow output schema.
        input_schema: model mode: the Arrow schema of the table.
        outputs: model mode: the output tables set so far.
    """

    def __init__(
        self,
        conf: dict[str, str] | None = None,
        shards: list[ShardHandle] | None = None,
        schema: pa.Schema | None = None,
        input_schema: pa.Schema | None = None,
    ) -> None:
        self.conf = dict(conf or {})
        self.requested_address: Any = UNSET
        self.registered: list[tuple[str, Callable[..., Any]]] = []
        self.shards = shards
        self.schema = schema
        self.input_schema = input_schema
        self.outputs: list[pa.Table] = []
        self.log_client = LogClient()
        self._fetched = False

    @property
    def model_mode(self) -> bool:
        return self.shards is not None

    # --- reading the table (model mode) --------------------------------
    def data_servers(self) -> list[ShardHandle]:
        return list(self._model_shards("data_servers()"))

    def fetch_once(self) -> Iterator[dict[str, Any]]:
        """Every row of the table, once, as dicts (pyjava's data_manager.fetch_once())."""
        if self._fetched:
            raise ContextError("fetch_once() can be called only once; keep the rows, or use collect()")
        self._fetched = True
        return (row for shard in self._model_shards("fetch_once()") for row in fetch_rows(shard))

    def _model_shards(self, what: str) -> list[ShardHandle]:
        if self.shards is None:
            raise ContextError(f"{what} is for model mode (mode='model'); data mode passes rows to your function")
        return self.shards

    # --- setting the output (model mode) --------------------------------
    def set_output(self, value: Any) -> None:
        """Byzer's form: ``[[pd.Series, pd.Series, ...], ...]``, columns by position.

        A pandas DataFrame, an Arrow table or batch, or a list of those works too.
        """
        import pandas as pd

        schema = self._output_schema()
        batch_types = (list, tuple, pd.DataFrame, pa.Table, pa.RecordBatch)
        items = value if isinstance(value, list) and value and isinstance(value[0], batch_types) else [value]
        for item in items:
            self.outputs.append(_to_table(item, schema))

    def build_result(self, rows: Iterable[Any]) -> None:
        """Rows as dicts (by name) or tuples (by position), in batches so memory stays bounded."""
        schema = self._output_schema()
        chunk: list[Any] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) >= ROWS_PER_CHUNK:
                self.outputs.append(pa.Table.from_batches([rows_to_batch(chunk, schema, "build_result")]))
                chunk = []
        self.outputs.append(pa.Table.from_batches([rows_to_batch(chunk, schema, "build_result")]))

    def build_result_from_dir(self, target_dir: str) -> None:
        """A directory as Byzer's ``schema=file`` rows (start, offset, value): see pyjava.storage.streaming_tar."""
        from .pyjava.storage.streaming_tar import build_rows_from_file

        self.build_result(build_rows_from_file(target_dir))

    def _output_schema(self) -> pa.Schema:
        if self.schema is None:
            raise ContextError("set_output() and build_result() are for model mode (mode='model')")
        return self.schema


def _to_table(item: Any, schema: pa.Schema) -> pa.Table:
    import pandas as pd

    producer = "set_output"
    if isinstance(item, pd.DataFrame):
        return pandas_to_table(item, schema, producer)
    if isinstance(item, (pa.Table, pa.RecordBatch)):
        return conform_table(item, schema, producer)
    if isinstance(item, (list, tuple)):
        if len(item) != len(schema):
            raise ResultSchemaError(
                f"set_output got {len(item)} columns, but the schema has {len(schema)} columns {schema.names}"
            )
        arrays = [pa.array(column.tolist() if isinstance(column, pd.Series) else column) for column in item]
        lengths = {len(array) for array in arrays}
        if len(lengths) > 1:
            raise ResultSchemaError(f"set_output got columns of different lengths {[len(a) for a in arrays]}")
        return conform_table(pa.Table.from_arrays(arrays, names=schema.names), schema, producer)
    raise ResultSchemaError(
        f"set_output expects [[pd.Series, ...]], a pandas DataFrame or an Arrow table; got {type(item).__name__}"
    )


class LogClient:
    """``context.log_client.log_to_driver(msg)``: pyjava's way to show a message to the person running the script.

    Byzer sends it to its log server; here it goes to the standard error of the
    process the code runs in (the driver's console in ``runIn=driver``).
    """

    def log_to_driver(self, message: Any) -> None:
        print(message, file=sys.stderr, flush=True)


def fetch_rows(shard: ShardHandle) -> Iterator[dict[str, Any]]:
    for batch in fetch_batches(shard):
        yield from rows_of(pa.Table.from_batches([batch]))


class RayContext:
    """pyjava's RayContext."""

    def __init__(self, context: PythonContext, address: str | None) -> None:
        self.context = context
        self.address = address

    @classmethod
    def connect(cls, context_or_globals: Any, address: str | None = None, **options: Any) -> RayContext:
        """Accepts ``context`` or ``globals()`` as in pyjava; ``address`` None means no Ray.

        pyjava names the address ``url`` (``connect(globals(), url="host:port")``
        in Byzer's docs), so that keyword works too. spark-ray has connected to
        Ray before the code runs (the address is read from the code), so this
        only records what the code asked for; other keywords are ignored.
        """
        if "url" in options:
            address = options.pop("url")
        context = context_or_globals
        if isinstance(context_or_globals, dict):
            context = context_or_globals.get("context")
        if not isinstance(context, PythonContext):
            raise TypeError(
                "RayContext.connect expects `context` or `globals()` of a spark-ray code string, "
                f"got {type(context_or_globals).__name__}"
            )
        context.requested_address = address
        return cls(context, address)

    # --- data mode -------------------------------------------------------
    def foreach(self, func_for_row: Callable[[dict[str, Any]], Any]) -> None:
        """Process the table row by row: ``func_for_row(row: dict)`` returns a row, rows or None."""
        self._register("row", func_for_row)

    def map_iter(self, func_for_rows: Callable[[Any], Any]) -> None:
        """Process the table shard by shard: ``func_for_rows(rows)`` yields rows."""
        self._register("rows", func_for_rows)

    def map_batches(self, fn: Callable[[Any], Any], batch_format: str = "pyarrow") -> None:
        """Process the table a batch at a time, as Ray Data's ``map_batches``: ``fn(batch)`` gets a pyarrow
        RecordBatch (``batch_format="pyarrow"``) or a pandas DataFrame (``"pandas"``) and returns the same.
        A spark-ray addition to pyjava's API; ``fn`` may be a callable class (an actor pool)."""
        from .conf import BATCH_FORMATS

        if batch_format not in BATCH_FORMATS:
            raise TypeError(f"map_batches takes batch_format 'pyarrow' or 'pandas', got {batch_format!r}")
        self._register(BATCH_FORMATS[batch_format], fn)

    def setup(self, func_for_row: Callable[..., Any] | None, func_for_rows: Callable[..., Any] | None = None) -> None:
        """The older form: a per-shard function wins over a per-row one."""
        if func_for_rows is not None:
            self._register("rows", func_for_rows)
        elif func_for_row is not None:
            self._register("row", func_for_row)
        else:
            raise TypeError("setup() needs a per-row or a per-shard function")

    def _register(self, kind: str, fn: Callable[..., Any]) -> None:
        if self.context.model_mode:
            raise UserCodeError(
                "foreach/map_iter/setup declare a data-mode function, but this job runs in model mode: "
                "read the shards with ray_context.data_servers() and set the output, or use mode='data'"
            )
        if not callable(fn):
            raise TypeError(f"expected a function, got {type(fn).__name__}")
        self.context.registered.append((kind, fn))

    # --- model mode ------------------------------------------------------
    def data_servers(self) -> list[ShardHandle]:
        """One handle per shard of the table; pass one to fetch_once_as_rows, in a Ray task if you like."""
        return self.context.data_servers()

    @staticmethod
    def fetch_once_as_rows(shard: ShardHandle) -> Iterator[dict[str, Any]]:
        """The rows of one shard as dicts; works anywhere, e.g. inside a Ray task."""
        return fetch_rows(shard)

    @staticmethod
    def fetch_once_as_batches(shard: ShardHandle) -> Iterator[pa.RecordBatch]:
        """The Arrow batches of one shard."""
        return fetch_batches(shard)

    @staticmethod
    def collect_from(shards: Iterable[ShardHandle] | ShardHandle) -> Iterator[dict[str, Any]]:
        """The rows of the given shards, in order, as dicts; works anywhere, e.g. inside a Ray task.

        pyjava's way to read some of the table: pass ``ray_context.data_servers()``
        (or a slice of it, or one handle) to a ``@ray.remote`` task and read them
        there. Rows are read as they are iterated, a batch at a time.
        """
        if isinstance(shards, ShardHandle):
            shards = [shards]
        for shard in list(shards):
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
        for shard in self.data_servers():
            yield from fetch_batches(shard)

    def collect(self) -> list[dict[str, Any]]:
        """The whole table as a list of dicts (it must fit in memory)."""
        return [row for shard in self.data_servers() for row in fetch_rows(shard)]

    def to_pandas(self) -> Any:
        """The whole table as one pandas DataFrame (it must fit in memory)."""
        tables = [fetch_table(shard) for shard in self.data_servers()]
        whole = pa.concat_tables(tables) if tables else (self.context.input_schema or pa.schema([])).empty_table()
        return to_pandas(whole)  # maps as dicts, as the pandas kind gets them

    def to_dataset(self) -> Any:
        """The whole table as a Ray Dataset, read shard by shard by Ray tasks as it is consumed.

        Streaming: Ray Data reads the shards as its operators need blocks, so
        the table is never held whole (see ``shard_datasource``). Consume it
        within the program. ``.to_dask()`` on it needs the dask package;
        without it the error says so and what to use instead.
        """
        from .shard_datasource import shard_dataset

        dataset = shard_dataset(self.data_servers(), self.context.input_schema or pa.schema([]))
        dataset.__class__ = _dataset_class(type(dataset))
        return dataset

    # --- setting the output, as pyjava's RayContext also offers ----------
    def build_result(self, rows: Iterable[Any]) -> None:
        """``context.build_result(rows)``, reachable from the RayContext as in pyjava."""
        self.context.build_result(rows)

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

    def build_result_from_dir(self, target_dir: str) -> None:
        """A directory as Byzer's ``schema=file`` rows (start, offset, value)."""
        self.context.build_result_from_dir(target_dir)

    def fetch_as_dir(self, target_dir: str) -> None:
        """Put back under ``target_dir`` the directory this table holds as ``schema=file`` rows."""
        from .pyjava.storage.streaming_tar import save_rows_as_file

        save_rows_as_file(self.collect(), target_dir)


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
