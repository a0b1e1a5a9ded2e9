"""Turn what user code returns into Arrow data of the declared output schema.

User functions return dicts, tuples, pandas DataFrames or Arrow data; Spark
needs Arrow batches of exactly the output schema. Conversions that keep the
value (int to long, int to double, an integral float to long, a narrower
integer to a wider one) happen silently; anything else raises a
ResultSchemaError naming the column, the expected type, the value and the
function that produced it, because "We can not reconstruct data from Python"
helps nobody.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator
from typing import Any

import pyarrow as pa

from .errors import ResultSchemaError, SchemaError


def _type_name(t: pa.DataType) -> str:
    """Spark's name for an Arrow type, as users wrote it in the schema."""
    from .schema import from_arrow_type, simple_type_string  # pyspark: only when there is an error to report

    try:
        return simple_type_string(from_arrow_type(t))
    except SchemaError:
        return str(t)


def _value_error(
    column: str, expected: pa.DataType, value: Any, row: int | None, producer: str, why: str
) -> ResultSchemaError:
    where = f" in row {row} of its output" if row is not None else ""
    return ResultSchemaError(
        f"column {column!r} expects {_type_name(expected)}, but {producer} returned "
        f"{value!r} ({type(value).__name__}){where}: {why}"
    )


def _find_bad_value(
    column: str, values: Iterable[Any], expected: pa.DataType, producer: str
) -> ResultSchemaError | None:
    """Scan a column value by value for the first one Arrow refuses, to name it."""
    for row, value in enumerate(values):
        try:
            _strict_array([value], expected)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as error:
            return _value_error(column, expected, value, row, producer, str(error))
    return None


def _strict_array(values: list[Any], expected: pa.DataType) -> pa.Array:
    """pa.array, but refusing the one lossy conversion it does silently: 1.5 -> 1."""
    array = pa.array(values, type=expected)
    if pa.types.is_integer(expected):
        for value in values:
            if type(value) is float and not value.is_integer():
                raise ValueError("a fractional float would be truncated")
    return array


def rows_to_batch(
    rows: list[Any], schema: pa.Schema, producer: str, droppable: Collection[str] | None = None
) -> pa.RecordBatch:
    """Build one batch from rows given as dicts (by name) or tuples (by position).

    A missing key is an error. Keys that are not in the schema may be dropped
    only when they are in ``droppable`` (the input's columns: a function may
    return its input row whole and let the schema pick columns); any other
    extra key is a value the function computed and the schema would lose
    silently, so it is an error that names it. ``droppable`` None drops every
    extra key (callers that do not know the input).
    """
    names = schema.names
    try:
        # Fast path: every row a dict (what the row functions usually return).
        columns = [[row[name] for row in rows] for name in names]
    except (KeyError, TypeError, IndexError):
        columns = _columns_from_mixed_rows(rows, names, producer)
    if droppable is not None:
        _refuse_extra_keys(rows, names, droppable, producer)
    arrays = []
    for name, values, schema_field in zip(names, columns, schema):
        try:
            arrays.append(_strict_array(values, schema_field.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as error:
            found = _find_bad_value(name, values, schema_field.type, producer)
            raise (found or _value_error(name, schema_field.type, values, None, producer, str(error))) from None
    return _checked_batch(arrays, schema, producer)


def _refuse_extra_keys(rows: list[Any], names: list[str], droppable: Collection[str], producer: str) -> None:
    """Name the keys of a dict row (or fields of a Row) that neither the schema nor the input has.

    Every row has every schema column by now, so only a row longer than the
    schema can have extra keys; the usual row costs one ``len``.
    """
    width = len(names)
    allowed: set[str] | None = None
    for index, row in enumerate(rows):
        if not isinstance(row, dict) and not hasattr(row, "asDict"):
            continue
        if len(row) <= width:
            continue
        if allowed is None:
            allowed = set(names).union(droppable)
        keys = row if isinstance(row, dict) else row.asDict(recursive=False)
        extra = [key for key in keys if key not in allowed]
        if extra:
            raise ResultSchemaError(
                f"{producer} returned a row with key(s) {sorted(map(str, extra))} that are not in the schema "
                f"(row {index}; schema columns {names}): add them to the schema, or leave them out of the row"
            )


def _columns_from_mixed_rows(rows: list[Any], names: list[str], producer: str) -> list[list[Any]]:
    width = len(names)
    normalized: list[tuple[Any, ...]] = []
    for index, row in enumerate(rows):
        if hasattr(row, "asDict"):  # pyspark.sql.Row
            row = row.asDict(recursive=False)
        if isinstance(row, dict):
            missing = [name for name in names if name not in row]
            if missing:
                raise ResultSchemaError(
                    f"{producer} returned a row without column(s) {missing} of the schema "
                    f"(row {index} has keys {sorted(map(str, row))}; schema columns {names})"
                )
            normalized.append(tuple(row[name] for name in names))
        elif isinstance(row, (tuple, list)):
            if len(row) != width:
                raise ResultSchemaError(
                    f"{producer} returned a row of {len(row)} values, but the schema has {width} "
                    f"columns {names}: {row!r} (row {index})"
                )
            normalized.append(tuple(row))
        else:
            raise ResultSchemaError(
                f"{producer} returned {row!r} ({type(row).__name__}) as a row; "
                "return a dict, a tuple, None, or an iterable of those"
            )
    return [list(column) for column in zip(*normalized)] if normalized else [[] for _ in names]


def _check_not_null(columns: list[Any], schema: pa.Schema, producer: str) -> None:
    """Arrow does not enforce a field's nullability; Spark would take the nulls silently."""
    for column, schema_field in zip(columns, schema):
        if not schema_field.nullable and column.null_count:
            raise ResultSchemaError(
                f"column {schema_field.name!r} is declared NOT NULL, but {producer} returned "
                f"{column.null_count} null value(s) for it"
            )


def _checked_batch(arrays: list[pa.Array], schema: pa.Schema, producer: str) -> pa.RecordBatch:
    _check_not_null(arrays, schema, producer)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _castable(source: pa.DataType, target: pa.DataType) -> bool:
    """Whether casting keeps meaning: numbers to numbers, text to text, same shapes inside."""
    if source == target or pa.types.is_null(source):
        return True
    groups = (
        (pa.types.is_integer, pa.types.is_floating, pa.types.is_decimal),
        (pa.types.is_string, pa.types.is_large_string),
        (pa.types.is_binary, pa.types.is_large_binary),
        (pa.types.is_timestamp, pa.types.is_date),
    )
    for group in groups:
        if any(test(source) for test in group) and any(test(target) for test in group):
            # Floats and decimals do not become integers silently by type; values decide (safe cast).
            return True
    if pa.types.is_list(target) and (pa.types.is_list(source) or pa.types.is_large_list(source)):
        return _castable(source.value_type, target.value_type)
    if pa.types.is_map(target) and pa.types.is_map(source):
        return _castable(source.key_type, target.key_type) and _castable(source.item_type, target.item_type)
    if pa.types.is_struct(target) and pa.types.is_struct(source):
        return [f.name for f in source] == [f.name for f in target] and all(
            _castable(s.type, t.type) for s, t in zip(source, target)
        )
    if pa.types.is_dictionary(source):
        return _castable(source.value_type, target)
    return False


def conform_table(data: pa.Table | pa.RecordBatch, schema: pa.Schema, producer: str) -> pa.Table:
    """Match columns to the schema (by name if the names match, else by position) and cast safely."""
    table = pa.Table.from_batches([data]) if isinstance(data, pa.RecordBatch) else data
    got = table.column_names
    if got == schema.names or sorted(got) == sorted(schema.names):
        columns = [table.column(name) for name in schema.names]
    elif len(got) == len(schema.names):
        columns = list(table.columns)
    else:
        raise ResultSchemaError(
            f"{producer} returned {len(got)} columns {got}, but the schema has "
            f"{len(schema.names)} columns {schema.names}"
        )
    arrays = []
    for name, column, schema_field in zip(schema.names, columns, schema):
        target = schema_field.type
        if column.type != target:
            if not _castable(column.type, target):
                sample = next((v for v in column.to_pylist() if v is not None), None)
                raise _value_error(
                    name,
                    target,
                    sample,
                    None,
                    producer,
                    f"a column of {_type_name(column.type)} cannot become {_type_name(target)}",
                )
            try:
                column = column.cast(target, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
                found = _find_bad_value(name, column.to_pylist(), target, producer)
                raise (found or _value_error(name, target, None, None, producer, str(error))) from None
        arrays.append(column)
    _check_not_null(arrays, schema, producer)
    return pa.Table.from_arrays(arrays, schema=schema)


def pandas_to_table(frame: Any, schema: pa.Schema, producer: str) -> pa.Table:
    """A pandas DataFrame from user code, as an Arrow table of the schema.

    Arrow reads each column by guessing its type from the values, then
    ``conform_table`` checks and casts it, so a wrong column gets an error
    naming it. A column the schema declares a map is read apart
    (``_map_array``): pandas holds maps as dicts or lists of pairs, from which
    Arrow guesses a struct or fails ("Expected bytes, got a 'int' object").
    """
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise ResultSchemaError(f"{producer} must return a pandas DataFrame, got {type(frame).__name__}")
    names = [str(name) for name in frame.columns]
    targets: list[pa.DataType | None] = [None] * len(names)
    if len(set(names)) == len(names) and set(names) == set(schema.names):
        targets = [schema.field(name).type for name in names]
    elif len(names) == len(schema.names):
        targets = list(schema.types)
    arrays = []
    for position, (name, target) in enumerate(zip(names, targets)):
        series = frame.iloc[:, position]
        if target is not None and pa.types.is_map(target):
            arrays.append(_map_array(series.tolist(), target, name, producer))
            continue
        try:
            arrays.append(pa.array(series, from_pandas=True))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError) as error:
            raise ResultSchemaError(
                f"{producer} returned a DataFrame whose column {name!r} Arrow cannot read: {error}"
            ) from None
    return conform_table(pa.Table.from_arrays(arrays, names=names), schema, producer)


def _map_array(cells: list[Any], target: pa.MapType, column: str, producer: str) -> pa.Array:
    """Maps given as dicts or lists of (key, value) pairs (None or NaN: a null map), as ``target``.

    Keys and values are read and checked as columns of their own (``_conformed``),
    so a value that does not fit (1.5 for a long) is refused as anywhere else,
    not truncated as Arrow's direct conversion to a map type would.
    """
    offsets = [0]
    nulls = []
    keys: list[Any] = []
    items: list[Any] = []
    for row, cell in enumerate(cells):
        missing = cell is None or (isinstance(cell, float) and cell != cell)
        nulls.append(missing)
        if missing:
            pass
        elif isinstance(cell, dict):
            keys.extend(cell.keys())
            items.extend(cell.values())
        else:
            try:
                pairs = [(key, item) for key, item in cell]
            except (TypeError, ValueError):
                raise _value_error(
                    column, target, cell, row, producer, "a map is a dict, or a list of (key, value) pairs"
                ) from None
            keys.extend(key for key, _ in pairs)
            items.extend(item for _, item in pairs)
        offsets.append(len(keys))
    return pa.MapArray.from_arrays(
        pa.array(offsets, pa.int32()),
        _conformed(keys, target.key_type, f"{column} (map keys)", producer),
        _conformed(items, target.item_type, f"{column} (map values)", producer),
        type=target,
        mask=pa.array(nulls, pa.bool_()) if any(nulls) else None,
    )


def _conformed(values: list[Any], target: pa.DataType, column: str, producer: str) -> pa.Array:
    """Python values as an Arrow array of ``target``, guessed then cast safely as any result column."""
    if pa.types.is_map(target):
        return _map_array(values, target, column, producer)
    try:
        guessed = pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError) as error:
        raise (
            _find_bad_value(column, values, target, producer)
            or _value_error(column, target, None, None, producer, str(error))
        ) from None
    table = conform_table(pa.table({column: guessed}), pa.schema([pa.field(column, target)]), producer)
    return table.column(0).combine_chunks()


def to_pandas(table: pa.Table) -> Any:
    """A shard as the pandas DataFrame a ``kind="pandas"`` function gets: maps as dicts, as Spark's
    mapInPandas and our row kind give them (Arrow's default is a list of pairs)."""
    maps = "strict" if any(has_map(f.type) for f in table.schema) else None
    return table.to_pandas(maps_as_pydicts=maps)


# Rows turned into Python objects (or back) at a time: a shard as Python dicts is ~50x its Arrow size,
# so every row-level conversion (shards, model-mode output, the table function's input) works in chunks.
ROWS_PER_CHUNK = 50_000


def rows_of(table: pa.Table) -> Iterator[dict[str, Any]]:
    """A shard's rows as dicts, one Arrow batch at a time; maps become dicts too.

    maps_as_pydicts costs about 2.5x on every column, so it is asked for only
    when the schema has a map somewhere.
    """
    maps = "strict" if any(has_map(f.type) for f in table.schema) else None
    for batch in table.to_batches():
        yield from batch.to_pylist(maps_as_pydicts=maps)


def has_map(t: pa.DataType) -> bool:
    """Whether a map hides anywhere in ``t`` (Arrow returns maps as lists of pairs unless asked)."""
    if pa.types.is_map(t):
        return True
    if pa.types.is_struct(t):
        return any(has_map(f.type) for f in t)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return has_map(t.value_type)
    return False


def _has_offsets(t: pa.DataType) -> bool:
    """Whether arrays of ``t`` hold an offsets buffer somewhere (strings, binaries, lists, maps)."""
    if pa.types.is_struct(t):
        return any(_has_offsets(f.type) for f in t)
    return _offsets_width(t) is not None


def _offsets_width(t: pa.DataType) -> int | None:
    if pa.types.is_large_string(t) or pa.types.is_large_binary(t) or pa.types.is_large_list(t):
        return 8
    if pa.types.is_string(t) or pa.types.is_binary(t) or pa.types.is_list(t) or pa.types.is_map(t):
        return 4
    return None


def _short_offsets(array: pa.Array) -> bool:
    """Whether ``array`` or a child has fewer offsets than its length needs.

    Arrow Java (Spark) writes an empty offsets buffer for an empty string or
    list vector, such as the keys of a column whose maps are all empty or null;
    Arrow allows it, but Ray's Arrow serializer then fails ("Buffer #1 too
    small"), or falls back to IPC with a warning.
    """
    t = array.type
    if pa.types.is_struct(t):
        return any(_short_offsets(array.field(i)) for i in range(t.num_fields))
    width = _offsets_width(t)
    if width is None:
        return False
    offsets = array.buffers()[1]
    if offsets is None or offsets.size < (array.offset + len(array) + 1) * width:
        return True
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_map(t):
        return _short_offsets(array.values)
    return False


def _rebuilt(array: pa.Array) -> pa.Array:
    # Concatenating writes fresh buffers, with every offset in place.
    return pa.concat_arrays([array, pa.array([], type=array.type)])


def with_complete_offsets(data: pa.Table) -> pa.Table:
    """``data``, with the columns whose offsets buffers are short (see ``_short_offsets``) rebuilt.

    Called on every shard as ``runners.Coalescer`` closes it (so each path,
    the relay and Ray's serializer get complete offsets), and on results (an
    ``arrow`` function may return its input). Other columns are untouched, so
    the usual table costs a look at its column types.
    """
    for index, column in enumerate(data.columns):
        if not _has_offsets(column.type) or not any(_short_offsets(chunk) for chunk in column.chunks):
            continue
        rebuilt = pa.chunked_array([_rebuilt(chunk) for chunk in column.chunks], type=column.type)
        data = data.set_column(index, data.schema.field(index), rebuilt)
    return data


# An input column name pyspark can pass to mapInArrow: it resolves each input column by name
# (``df[name]``), where a dot means a struct field and a backtick quotes, so "a.b" fails to resolve.
_PLAIN_NAME = re.compile(r"[^\W\d]\w*")


def spark_safe_input(df: Any) -> tuple[Any, list[str] | None]:
    """``df`` with placeholder column names when pyspark's mapInArrow could not pass its own, and the
    names to give the shards back (``ShardProgram.input_names``); ``(df, None)`` when its names are fine.

    pyspark's ``mapInArrow`` picks its input columns with ``df[name]``, which
    reads "a.b" as field b of column a and fails, and is ambiguous for a
    name used twice. Renaming by position (``toDF``) resolves nothing.
    """
    names = list(df.columns)
    lowered = [name.lower() for name in names]
    if all(_PLAIN_NAME.fullmatch(name) for name in names) and len(set(lowered)) == len(lowered):
        return df, None
    return df.toDF(*[f"_spark_ray_input_{index}" for index in range(len(names))]), names
