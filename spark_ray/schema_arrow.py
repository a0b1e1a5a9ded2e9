"""Spark <-> Arrow types, with the layout Spark itself uses between the JVM and Python.

Spark -> Arrow goes through pyspark's own converter (``pyspark.sql.pandas.types``),
so our batches have exactly the layout Spark's Arrow code expects: timestamps as
UTC microseconds, list items named ``element``, map entries ``key`` (never null)
and ``value``. Before handing a type over we settle the cases where pyspark's
answer is not ours: char/varchar become strings (pyspark refuses them), a
non-nullable ``void`` becomes nullable (pyarrow refuses a non-nullable null
field), and types we cannot carry (intervals, variant, time, UDTs) are refused
with a SchemaError, where pyspark would map some of them and raise its own
errors for others.

Arrow -> Spark is our own: pyspark's ``from_arrow_type`` refuses unsigned
integers, view types and ``date64``, reads a naive timestamp as ``TimestampType``,
accepts a decimal256 wider than Spark's 38 digits, and recurses into itself, so
an Arrow list of any of those would fail inside it.

Example:
    >>> to_arrow_type(ArrayType(TimestampType()))
    ListType(list<element: timestamp[us, tz=UTC]>)
    >>> from_arrow_type(pa.uint32())
    LongType()
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
from pyspark.errors import PySparkException
from pyspark.sql.pandas import types as pyspark_arrow
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    BooleanType,
    ByteType,
    CharType,
    DataType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    MapType,
    NullType,
    ShortType,
    StringType,
    StructField,
    StructType,
    TimestampNTZType,
    TimestampType,
    VarcharType,
)

from .errors import SchemaError
from .schema_text import MAX_DECIMAL_PRECISION, simple_type_string

__all__ = ["check_unique_names", "from_arrow_schema", "from_arrow_type", "to_arrow_schema", "to_arrow_type"]

# Spark types pyspark maps to Arrow the way we carry them, unchanged.
_ARROW_READY = (
    BooleanType, ByteType, ShortType, IntegerType, LongType, FloatType, DoubleType, DecimalType,
    DateType, TimestampType, TimestampNTZType, BinaryType, StringType, NullType,
)  # fmt: skip


def to_arrow_type(dt: DataType) -> pa.DataType:
    """Give the Arrow type that carries values of Spark type ``dt`` between Spark and Ray.

    Timestamps become UTC microseconds, the way Spark stores them; arrays use
    Spark's ``element`` item name. Field metadata (such as comments) is not carried.

    Raises:
        SchemaError: ``dt`` has no Arrow counterpart here (intervals, variant, ...).
    """
    ready = _arrow_ready(dt)
    try:
        return pyspark_arrow.to_arrow_type(ready)
    except (PySparkException, ValueError) as error:  # e.g. DecimalType(50, 2), which pyarrow refuses
        raise SchemaError(f"Spark type '{simple_type_string(dt)}' has no Arrow equivalent: {error}") from None


def to_arrow_schema(schema: StructType) -> pa.Schema:
    """Give the Arrow schema for a Spark schema, keeping each field's nullability.

    A non-nullable ``void`` (``NullType``) field becomes nullable, as Arrow requires.
    """
    ready = _arrow_ready(schema)
    assert isinstance(ready, StructType)
    try:
        return pyspark_arrow.to_arrow_schema(ready)
    except (PySparkException, ValueError) as error:
        raise SchemaError(f"schema '{simple_type_string(schema)}' has no Arrow equivalent: {error}") from None


def _arrow_ready(dt: DataType) -> DataType:
    """``dt`` rewritten so that pyspark's converter gives our layout, or a SchemaError."""
    if isinstance(dt, StructType):
        return StructType(
            [StructField(f.name, _arrow_ready(f.dataType), _nullable(f.dataType, f.nullable)) for f in dt]
        )
    if isinstance(dt, ArrayType):
        return ArrayType(_arrow_ready(dt.elementType), _nullable(dt.elementType, dt.containsNull))
    if isinstance(dt, MapType):
        if isinstance(dt.keyType, NullType):
            raise SchemaError(f"Spark type '{simple_type_string(dt)}' has no Arrow equivalent: map keys cannot be void")
        value = _arrow_ready(dt.valueType)
        return MapType(_arrow_ready(dt.keyType), value, _nullable(dt.valueType, dt.valueContainsNull))
    if type(dt) in (CharType, VarcharType):
        return StringType()
    if type(dt) in _ARROW_READY:
        return dt
    raise SchemaError(f"Spark type '{simple_type_string(dt)}' has no Arrow equivalent in spark-ray")


def _nullable(dt: DataType, nullable: bool) -> bool:
    # Arrow refuses a non-nullable null-typed field; such a field only ever holds nulls anyway.
    return nullable or isinstance(dt, NullType)


def from_arrow_type(t: pa.DataType) -> DataType:
    """Give the Spark type that can hold values of Arrow type ``t``.

    Arrow has more types than Spark, so some map many-to-one: large and view
    variants map like the plain ones, fixed-size lists become arrays, any
    timestamp unit maps to Spark's microseconds (with a time zone -> ``TimestampType``,
    without -> ``TimestampNTZType``), ``date64`` becomes ``DateType``, and a
    dictionary becomes its value type. Unsigned integers widen to the next
    signed Spark type (uint8 -> short, uint16 -> integer, uint32 -> long), except
    uint64, which becomes ``LongType`` and is lossy: values above 2**63 - 1 do not fit.

    Raises:
        SchemaError: ``t`` has no Spark counterpart (durations, unions, ...).
    """
    types = pa.types
    simple: list[tuple[Callable[[pa.DataType], bool], Callable[[], DataType]]] = [
        (types.is_null, NullType), (types.is_boolean, BooleanType),
        (types.is_int8, ByteType), (types.is_int16, ShortType), (types.is_int32, IntegerType),
        (types.is_int64, LongType), (types.is_uint8, ShortType), (types.is_uint16, IntegerType),
        (types.is_uint32, LongType), (types.is_uint64, LongType),
        (types.is_float32, FloatType), (types.is_float64, DoubleType),
        (types.is_string, StringType), (types.is_large_string, StringType),
        (types.is_string_view, StringType), (types.is_binary, BinaryType),
        (types.is_large_binary, BinaryType), (types.is_binary_view, BinaryType),
        (types.is_date32, DateType), (types.is_date64, DateType),
    ]  # fmt: skip
    for matches, make in simple:
        if matches(t):
            return make()
    if types.is_timestamp(t):
        return TimestampType() if t.tz is not None else TimestampNTZType()
    if types.is_decimal(t):
        if not 1 <= t.precision <= MAX_DECIMAL_PRECISION or not 0 <= t.scale <= t.precision:
            raise SchemaError(f"Arrow type '{t}' does not fit Spark's decimal (precision at most 38)")
        return DecimalType(t.precision, t.scale)
    if types.is_list(t) or types.is_large_list(t) or types.is_fixed_size_list(t):
        return ArrayType(from_arrow_type(t.value_type), t.value_field.nullable)
    if types.is_map(t):
        return MapType(from_arrow_type(t.key_type), from_arrow_type(t.item_type), t.item_field.nullable)
    if types.is_struct(t):
        fields = [t.field(i) for i in range(t.num_fields)]
        return StructType([StructField(f.name, from_arrow_type(f.type), f.nullable) for f in fields])
    if types.is_dictionary(t):
        return from_arrow_type(t.value_type)
    raise SchemaError(f"Arrow type '{t}' has no Spark equivalent in spark-ray")


def from_arrow_schema(s: pa.Schema) -> StructType:
    """Give the Spark schema for an Arrow schema, keeping each field's nullability.

    Raises:
        SchemaError: A field's type is unsupported, or two fields share a name.
    """
    struct = StructType([StructField(f.name, from_arrow_type(f.type), f.nullable) for f in s])
    check_unique_names(struct)
    return struct


def check_unique_names(data_type: DataType) -> None:
    """Refuse a struct, at any depth, with two fields of one name: Spark cannot select either.

    Raises:
        SchemaError: naming the first repeated name.
    """
    if isinstance(data_type, StructType):
        seen: set[str] = set()
        for field in data_type.fields:
            if field.name in seen:
                raise SchemaError(f"duplicate field name '{field.name}' in schema")
            seen.add(field.name)
            check_unique_names(field.dataType)
    elif isinstance(data_type, ArrayType):
        check_unique_names(data_type.elementType)
    elif isinstance(data_type, MapType):
        check_unique_names(data_type.keyType)
        check_unique_names(data_type.valueType)
