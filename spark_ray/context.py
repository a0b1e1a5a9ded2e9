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

import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pyarrow as pa

from .context_reads import TableReads, _block_size, _table_of_rows, fetch_rows
from .convert import conform_table, pandas_to_table, rows_of, rows_to_batch, to_pandas
from .errors import ContextError, ResultSchemaError, UserCodeError
from .shard_server import ShardHandle, fetch_batches

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


class RayContext(TableReads):
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

    def map_batches(self, fn: Callable[[Any], Any], batch_format: str = "pyarrow") -> Any:
        """Process the table a batch at a time, as Ray Data's ``map_batches``: ``fn(batch)`` gets a pyarrow
        RecordBatch (``batch_format="pyarrow"``) or a pandas DataFrame (``"pandas"``) and returns the same.
        A spark-ray addition to pyjava's API; ``fn`` may be a callable class (an actor pool)."""
        from .conf import BATCH_FORMATS

        if batch_format not in BATCH_FORMATS:
            raise TypeError(f"map_batches takes batch_format 'pyarrow' or 'pandas', got {batch_format!r}")
        return self._register(BATCH_FORMATS[batch_format], fn)

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


def _run_on_mock_data(kind: str, fn: Callable[..., Any], rows: list[Any]) -> list[Any]:
    """A data-mode function over ``mock_data``, here, as pyjava runs it outside Byzer: its output rows."""
    if not callable(fn):
        raise TypeError(f"expected a function, got {type(fn).__name__}")
    copies = [dict(row) if isinstance(row, dict) else row for row in rows]  # as a Ray task gets them
    if kind == "rows":
        return list(fn(iter(copies)) or [])
    if kind in ("arrow", "pandas"):  # map_batches: the whole mock table as one batch
        table = _table_of_rows(copies)
        out = fn(table.to_batches()[0] if kind == "arrow" and table.num_rows else to_pandas(table))
        return list(out.to_pylist() if hasattr(out, "to_pylist") else out.to_dict("records"))
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
