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

from .convert import conform_table, pandas_to_table, rows_of, rows_to_batch, to_pandas
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
        in_engine: False for the context a code file gets when it runs as a
            plain Python file (``RayContext.connect(globals(), ...)`` with no
            ``context`` there): pyjava's ``is_in_mlsql`` is False and the rows
            are ``ray_context.mock_data``.
        mock_data: the rows such a file reads (set ``ray_context.mock_data``).

    Method names and parameters (with their defaults) are pyjava's, so code
    written for Byzer calls them unchanged; ``sql_ext/README.md`` lists each
    with what it does here.
    """

    def __init__(
        self,
        conf: dict[str, str] | None = None,
        shards: list[ShardHandle] | None = None,
        schema: pa.Schema | None = None,
        input_schema: pa.Schema | None = None,
        *,
        in_engine: bool = True,
    ) -> None:
        self.conf = dict(conf or {})
        self.requested_address: Any = UNSET
        self.registered: list[tuple[str, Callable[..., Any]]] = []
        self.shards = shards
        self.schema = schema
        self.input_schema = input_schema
        self.outputs: list[pa.Table] = []
        self.log_client = LogClient(self.conf)
        self.in_engine = in_engine
        self.mock_data: list[Any] = []
        self._fetched = False

    @classmethod
    def standalone(cls) -> PythonContext:
        """The context of a code file run as plain Python, outside any script (pyjava's ``is_in_mlsql=False``)."""
        return cls({"pythonMode": "ray", "python_mode": "ray"}, in_engine=False)

    @property
    def model_mode(self) -> bool:
        return self.shards is not None

    @property
    def rayContext(self) -> RayContext:  # noqa: N802  (pyjava's name)
        """pyjava's ``context.rayContext``: a RayContext over this context."""
        return RayContext(self, None if self.requested_address is UNSET else self.requested_address)

    # --- reading the table (model mode) --------------------------------
    def data_servers(self) -> list[ShardHandle]:
        if not self.in_engine:
            return []
        return list(self._model_shards("data_servers()"))

    def fetch_once(self) -> Iterator[dict[str, Any]]:
        """Every row of the table, once, as dicts (pyjava's data_manager.fetch_once() gives DataFrames)."""
        return self._once("fetch_once()", self._all_rows)

    def fetch_once_as_rows(self) -> Iterator[dict[str, Any]]:
        """Every row of the table, once, as dicts."""
        return self._once("fetch_once_as_rows()", self._all_rows)

    def fetch_once_as_dataframe(self) -> Iterator[Any]:
        """The table, once, as pandas DataFrames, one per Arrow batch."""
        return self._once("fetch_once_as_dataframe()", lambda: (to_pandas(table) for table in self._all_tables()))

    def fetch_once_as_batch_rows(self) -> Iterator[Iterator[dict[str, Any]]]:
        """The table, once, as one iterator of dict rows per Arrow batch."""
        return self._once("fetch_once_as_batch_rows()", lambda: (rows_of(table) for table in self._all_tables()))

    def noops_fetch(self) -> None:
        """Read the whole table and drop it (pyjava uses it to drain the input)."""
        for _ in self.fetch_once():
            pass

    def fetch_as_dir(self, target_dir: str) -> None:
        """Put back under ``target_dir`` the directory this table holds as ``schema=file`` rows."""
        from .pyjava.storage.streaming_tar import save_rows_as_file

        save_rows_as_file(self.fetch_once_as_rows(), target_dir)

    def _once(self, what: str, rows: Callable[[], Iterator[Any]]) -> Iterator[Any]:
        if self._fetched:
            raise ContextError(f"{what}: the table can be fetched only once; keep the rows, or use collect()")
        if self.in_engine:
            self._model_shards(what)
        self._fetched = True
        return rows()

    def _all_rows(self) -> Iterator[dict[str, Any]]:
        if not self.in_engine:
            return iter(list(self.mock_data))
        return (row for shard in self._model_shards("fetch_once()") for row in fetch_rows(shard))

    def _all_tables(self) -> Iterator[pa.Table]:
        if not self.in_engine:
            yield _table_of_rows(list(self.mock_data))
            return
        for shard in self._model_shards("fetch_once()"):
            for batch in fetch_batches(shard):
                yield pa.Table.from_batches([batch])

    def _model_shards(self, what: str) -> list[ShardHandle]:
        if self.shards is None:
            raise ContextError(f"{what} is for model mode (mode='model'); data mode passes rows to your function")
        return self.shards

    # --- setting the output (model mode) --------------------------------
    def set_output(self, value: Any, schema: str = "") -> None:
        """Byzer's form: ``[[pd.Series, pd.Series, ...], ...]``, columns by position.

        A pandas DataFrame, an Arrow table or batch, or a list of those works too.
        ``schema`` is pyjava's parameter; the output schema here is the job's
        ``schema=`` option, so a schema given here is not read.
        """
        import pandas as pd

        if not self.in_engine:
            self.outputs.append(_standalone_table(value))
            return
        schema_ = self._output_schema()
        batch_types = (list, tuple, pd.DataFrame, pa.Table, pa.RecordBatch)
        items = value if isinstance(value, list) and value and isinstance(value[0], batch_types) else [value]
        for item in items:
            self.outputs.append(_to_table(item, schema_))

    def build_result(self, items: Iterable[Any], block_size: int = 1024) -> None:
        """Rows as dicts (by name) or tuples (by position), ``block_size`` rows per batch (pyjava's blocks).

        The rows are read a block at a time, so memory stays bounded.
        """
        size = _block_size(block_size)
        if not self.in_engine:
            self.outputs.append(_table_of_rows(list(items)))
            return
        schema = self._output_schema()
        chunk: list[Any] = []
        for row in items:
            chunk.append(row)
            if len(chunk) >= size:
                self.outputs.append(pa.Table.from_batches([rows_to_batch(chunk, schema, "build_result")]))
                chunk = []
        self.outputs.append(pa.Table.from_batches([rows_to_batch(chunk, schema, "build_result")]))

    @staticmethod
    def build_chunk_result(items: Iterable[dict[str, Any]], block_size: int = 1024) -> Iterator[Any]:
        """Dict rows as pandas DataFrames of ``block_size`` rows each (the last may be shorter)."""
        import pandas as pd

        size = _block_size(block_size)
        block: list[dict[str, Any]] = []
        for item in items:
            block.append(item)
            if len(block) == size:
                yield pd.DataFrame(block, columns=list(block[0]))
                block = []
        if block:
            yield pd.DataFrame(block, columns=list(block[0]))

    def build_result_from_dir(self, target_dir: str, block_size: int = 1024) -> None:
        """A directory as Byzer's ``schema=file`` rows (start, offset, value): see pyjava.storage.streaming_tar.

        ``block_size`` is rows per batch, as in ``build_result``; each row holds
        a chunk of the directory's tar stream.
        """
        from .pyjava.storage.streaming_tar import build_rows_from_file

        self.build_result(build_rows_from_file(target_dir), block_size)

    def output(self) -> list[pa.Table]:
        """The output set so far, as Arrow tables (pyjava returns what it will send)."""
        return list(self.outputs)

    def _output_schema(self) -> pa.Schema:
        if self.schema is None:
            raise ContextError("set_output() and build_result() are for model mode (mode='model')")
        return self.schema


def _block_size(block_size: Any) -> int:
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ContextError(f"block_size is rows per block, a whole number of at least 1; got {block_size!r}")
    return block_size


def _table_of_rows(rows: list[Any]) -> pa.Table:
    """Rows of a code file run as plain Python (no job schema): dicts by name, anything else as one column."""
    if all(isinstance(row, dict) for row in rows):
        return pa.Table.from_pylist(rows)
    return pa.table({"value": rows})


def _standalone_table(value: Any) -> pa.Table:
    """``set_output`` outside a script: a DataFrame, an Arrow table or batch, or pyjava's ``[[series, ...]]``."""
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        return pa.Table.from_pandas(value, preserve_index=False)
    if isinstance(value, pa.RecordBatch):
        return pa.Table.from_batches([value])
    if isinstance(value, pa.Table):
        return value
    if isinstance(value, list) and value and isinstance(value[0], (list, tuple)):
        value = value[0]
    columns = {getattr(column, "name", None) or f"_{index + 1}": list(column) for index, column in enumerate(value)}
    return pa.table(columns)


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
    ``conf`` is pyjava's parameter (where its log server is); nothing here reads it.
    """

    def __init__(self, conf: dict[str, str] | None = None) -> None:
        self.conf = conf if conf is not None else {}

    def log_to_driver(self, msg: Any) -> None:
        print(msg, file=sys.stderr, flush=True)

    def close(self) -> None:
        """Nothing to close: there is no connection to a log server."""


def fetch_rows(shard: ShardHandle) -> Iterator[dict[str, Any]]:
    for batch in fetch_batches(shard):
        yield from rows_of(pa.Table.from_batches([batch]))


class RayContext:
    """pyjava's RayContext.

    ``is_in_mlsql`` is True when the code runs in a job (a script, a notebook
    cell, ``ray_transform``), False when a code file runs as plain Python
    (``python file.py`` with the shim importable, see ``pyjava.standalone_path``):
    then ``mock_data`` is the table, ``foreach``/``map_iter`` run the function
    over it in this process and return what it made, and the output is kept
    in ``context.output()``. One file can so be tried alone and run in a job.
    """

    def __init__(self, context: PythonContext, address: str | None) -> None:
        self.context = context
        self.address = address
        self.is_dev = False

    @property
    def python_context(self) -> PythonContext:
        """pyjava's name for ``context``."""
        return self.context

    @property
    def is_in_mlsql(self) -> bool:
        """True inside a job; False in a code file run as plain Python (``mock_data`` is the table)."""
        return self.context.in_engine

    @property
    def mock_data(self) -> list[Any]:
        """The rows a code file reads when it runs as plain Python; a job reads its table instead."""
        return self.context.mock_data

    @mock_data.setter
    def mock_data(self, rows: Iterable[Any]) -> None:
        self.context.mock_data = list(rows)

    @property
    def servers(self) -> list[ShardHandle]:
        """pyjava's attribute: the shard handles (model mode), else none."""
        return self.context.data_servers() if self.context.model_mode or not self.is_in_mlsql else []

    @property
    def is_setup(self) -> bool:
        """True once the code declared its data-mode function."""
        return bool(self.context.registered)

    def conf(self) -> dict[str, str]:
        """pyjava's ``ray_context.conf()``: the job's settings, as ``context.conf``."""
        return self.context.conf

    @classmethod
    def connect(cls, _context: Any, url: str | None = None, **kwargs: Any) -> RayContext:
        """Accepts ``context`` or ``globals()`` as in pyjava; ``url`` None means no Ray.

        ``address=`` is spark-ray's older name for ``url``. spark-ray has
        connected to Ray before the code runs (the address is read from the
        code), so this only records what the code asked for; other keywords
        are ignored. ``globals()`` without a ``context`` in it means the code
        runs as a plain Python file: the RayContext has ``is_in_mlsql`` False,
        and ``context`` (and ``data_manager``) are set in those globals if they
        are not there, so the rest of the file runs as in a job.
        """
        if "address" in kwargs:
            url = kwargs.pop("address")
        context = _context
        if isinstance(_context, dict):
            context = _context.get("context")
            if context is None:
                context = PythonContext.standalone()
                _context.setdefault("context", context)
                _context.setdefault("data_manager", context)
        if not isinstance(context, PythonContext):
            raise TypeError(
                "RayContext.connect expects `context` or `globals()` of a spark-ray code string, "
                f"got {type(_context).__name__}"
            )
        context.requested_address = url
        return cls(context, url)

    # --- data mode -------------------------------------------------------
    def foreach(self, func_for_row: Callable[[dict[str, Any]], Any]) -> Any:
        """Process the table row by row: ``func_for_row(row: dict)`` returns a row, rows or None."""
        return self._register("row", func_for_row)

    def map_iter(self, func_for_rows: Callable[[Any], Any]) -> Any:
        """Process the table shard by shard: ``func_for_rows(rows)`` yields rows."""
        return self._register("rows", func_for_rows)

    def setup(self, func_for_row: Callable[..., Any] | None, func_for_rows: Callable[..., Any] | None = None) -> Any:
        """The older form: a per-shard function wins over a per-row one.

        Outside a job (``is_in_mlsql`` False) the function runs here over
        ``mock_data`` and its output rows are returned, as pyjava returns them.
        """
        if func_for_rows is not None:
            return self._register("rows", func_for_rows)
        if func_for_row is not None:
            return self._register("row", func_for_row)
        raise TypeError("setup() needs a per-row or a per-shard function")

    def _register(self, kind: str, fn: Callable[..., Any]) -> Any:
        if not self.is_in_mlsql:
            return _run_on_mock_data(kind, fn, self.mock_data)
        if self.context.model_mode:
            raise UserCodeError(
                "foreach/map_iter/setup declare a data-mode function, but this job runs in model mode: "
                "read the shards with ray_context.data_servers() and set the output, or use mode='data'"
            )
        if not callable(fn):
            raise TypeError(f"expected a function, got {type(fn).__name__}")
        self.context.registered.append((kind, fn))
        return None

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
        return RayContext.fetch_as_repeatable_file(None, self.data_servers(), None, batch_size)

    @staticmethod
    def parse_servers(host_ports: str) -> list[Any]:
        """Refused: pyjava's ``host:port`` data servers are Byzer's Java side, which spark-ray does not have."""
        raise ContextError(
            f"RayContext.parse_servers({host_ports!r}) names Byzer's Java data servers, which spark-ray does not "
            "have: pass the handles of ray_context.data_servers() to your Ray tasks instead"
        )

    def data_servers_in_ray(self) -> Iterator[Any]:
        """Refused: pyjava's Ray actors in front of its Java data servers; shard handles are read from Ray directly."""
        raise ContextError(
            "data_servers_in_ray() serves pyjava's Java data servers from Ray actors; spark-ray's "
            "ray_context.data_servers() handles are read from Ray tasks as they are (RayContext.collect_from)"
        )

    def build_servers_in_ray(self) -> list[Any]:
        """Refused, as ``data_servers_in_ray``."""
        raise ContextError(
            "build_servers_in_ray() starts pyjava's Ray actors in front of its Java data servers; spark-ray's "
            "ray_context.data_servers() handles are read from Ray tasks as they are (RayContext.collect_from)"
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

        rows = self.collect() if not servers else RayContext.collect_from(list(servers))
        save_rows_as_file(rows, target_dir)


def _run_on_mock_data(kind: str, fn: Callable[..., Any], rows: list[Any]) -> list[Any]:
    """A data-mode function over ``mock_data``, here, as pyjava runs it outside Byzer: its output rows."""
    if not callable(fn):
        raise TypeError(f"expected a function, got {type(fn).__name__}")
    copies = [dict(row) if isinstance(row, dict) else row for row in rows]  # as a Ray task gets them
    if kind == "rows":
        return list(fn(iter(copies)) or [])
    made: list[Any] = []
    for row in copies:
        out = fn(row)
        if out is None:
            continue
        if isinstance(out, dict):
            made.append(out)
        else:
            made.extend(out)
    return made


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
