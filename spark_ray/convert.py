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

from collections.abc import Iterable, Iterator
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


def rows_to_batch(rows: list[Any], schema: pa.Schema, producer: str) -> pa.RecordBatch:
    """Build one batch from rows given as dicts (by name) or tuples (by position).

    Dict keys that are not in the schema are ignored, so a function may return
    its input row whole and let the schema pick columns; a missing key is an error.
    """
    names = schema.names
    try:
        # Fast path: every row a dict (what the row functions usually return).
        columns = [[row[name] for row in rows] for name in names]
    except (KeyError, TypeError, IndexError):
        columns = _columns_from_mixed_rows(rows, names, producer)
    arrays = []
    for name, values, schema_field in zip(names, columns, schema):
        try:
            arrays.append(_strict_array(values, schema_field.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as error:
            found = _find_bad_value(name, values, schema_field.type, producer)
            raise (found or _value_error(name, schema_field.type, values, None, producer, str(error))) from None
    return _checked_batch(arrays, schema, producer)


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
    """A pandas DataFrame from user code, as an Arrow table of the schema."""
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise ResultSchemaError(f"{producer} must return a pandas DataFrame, got {type(frame).__name__}")
    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise ResultSchemaError(f"{producer} returned a DataFrame Arrow cannot read: {error}") from None
    return conform_table(table, schema, producer)


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
