"""Spark types as text: how each schema dialect spells a type, and the one printer.

The parser (schema.py) reads type names from the tables here and the printer
writes them from the same tables, so what we print is what we read back.

``type_string(dt, style)`` writes a type in one of three styles:

* ``"readable"``: short names for error messages and ``!desc`` (``array<long>``,
  ``struct<a:long>``). Unlike ``DataType.simpleString`` (which says ``bigint``),
  it uses Spark's JSON type names (``long``), which users see in ``StructType.json()``;
* ``"dsl"``: Byzer's DSL (``array(long)``, ``st(field(a,long))``);
* ``"ddl"``: a schema as DDL (``id long, tags array<string>``), which
  ``parse_schema`` and Spark's own DDL parser both read back.

Example:
    >>> from pyspark.sql.types import ArrayType, LongType, StructField, StructType
    >>> schema = StructType([StructField("id", LongType()), StructField("my tags", ArrayType(LongType()))])
    >>> type_string(schema)
    'struct<id:long,`my tags`:array<long>>'
    >>> type_string(schema, "dsl")
    'st(field(id,long),field(`my tags`,array(long)))'
    >>> type_string(schema, "ddl")
    'id long, `my tags` array<long>'
"""

from __future__ import annotations

import re
from typing import Literal

from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    BooleanType,
    ByteType,
    DataType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    MapType,
    ShortType,
    StringType,
    StructType,
    TimestampNTZType,
    TimestampType,
)

from .errors import SchemaError

__all__ = [
    "DDL_TYPE_NAMES",
    "DSL_TYPE_NAMES",
    "MAX_DECIMAL_PRECISION",
    "Style",
    "simple_type_string",
    "to_byzer_dsl",
    "type_string",
]

# Spark's limit; a DecimalType outside it cannot be stored or sent through Arrow.
MAX_DECIMAL_PRECISION = 38

# The primitive type names of each dialect, mapped to the Spark type they denote.
# The first name of a type is the one the printer writes (so "integer", not "int").
DSL_TYPE_NAMES: dict[str, type[DataType]] = {
    "boolean": BooleanType, "byte": ByteType, "short": ShortType, "integer": IntegerType,
    "int": IntegerType, "long": LongType, "float": FloatType, "double": DoubleType,
    "date": DateType, "timestamp": TimestampType, "binary": BinaryType, "string": StringType,
}  # fmt: skip

DDL_TYPE_NAMES: dict[str, type[DataType]] = {
    "boolean": BooleanType, "bool": BooleanType, "tinyint": ByteType, "byte": ByteType,
    "smallint": ShortType, "short": ShortType, "int": IntegerType, "integer": IntegerType,
    "bigint": LongType, "long": LongType, "float": FloatType, "real": FloatType,
    "double": DoubleType, "date": DateType, "timestamp": TimestampType,
    "timestamp_ltz": TimestampType, "timestamp_ntz": TimestampNTZType,
    "binary": BinaryType, "string": StringType,
}  # fmt: skip

_PRINTED_NAMES: dict[type, str] = {}
for _name, _make in DSL_TYPE_NAMES.items():
    _PRINTED_NAMES.setdefault(_make, _name)

Style = Literal["readable", "dsl", "ddl"]

# A name Spark's own DDL parser reads unquoted too: an ASCII identifier.
_PLAIN_DDL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def type_string(dt: DataType, style: Style = "readable") -> str:
    """Write ``dt`` in ``style`` (see the module docstring).

    ``"ddl"`` writes a ``StructType`` as its list of columns; any other type,
    and every nested type, is written as ``"readable"``.

    Raises:
        SchemaError: ``style`` is ``"dsl"`` and the DSL has no name for a type
            in ``dt`` (``timestamp_ntz``, ``void``, intervals, ...).
    """
    if style == "ddl":
        if isinstance(dt, StructType):
            # Top-level names are quoted by Spark's stricter rule: `!desc t ddl` is meant
            # for CREATE TABLE as much as for schema=.
            return ", ".join(f"{_ddl_name(f.name)} {_write(f.dataType, False)}" for f in dt.fields)
        style = "readable"
    return _write(dt, style == "dsl")


def _write(dt: DataType, dsl: bool) -> str:
    if isinstance(dt, DecimalType):
        return f"decimal({dt.precision},{dt.scale})"
    if isinstance(dt, ArrayType):
        element = _write(dt.elementType, dsl)
        return f"array({element})" if dsl else f"array<{element}>"
    if isinstance(dt, MapType):
        key, value = _write(dt.keyType, dsl), _write(dt.valueType, dsl)
        return f"map({key},{value})" if dsl else f"map<{key},{value}>"
    if isinstance(dt, StructType):
        if dsl:
            return "st(" + ",".join(f"field({_quote_name(f.name)},{_write(f.dataType, dsl)})" for f in dt.fields) + ")"
        return "struct<" + ",".join(f"{_quote_name(f.name)}:{_write(f.dataType, dsl)}" for f in dt.fields) + ">"
    name = _PRINTED_NAMES.get(type(dt))
    if dsl:
        if name is None:
            raise SchemaError(f"Spark type '{_write(dt, False)}' cannot be written in Byzer's DSL")
        return name
    if name is not None and not isinstance(dt, StringType):  # a collated string says so in simpleString
        return name
    return dt.simpleString()


def _quote_name(name: str) -> str:
    """Backquote a field name unless schema.lark reads it back as a bare name (a word, not all digits)."""
    if name and all(ch.isalnum() or ch == "_" for ch in name) and not name.isdigit():
        return name
    return _backquote(name)


def _ddl_name(name: str) -> str:
    return name if _PLAIN_DDL_NAME.fullmatch(name) else _backquote(name)


def _backquote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def simple_type_string(dt: DataType) -> str:
    """Give a short, readable name for ``dt`` to use in error messages (``array<long>``).

    Kept for the modules that import it; same as ``type_string(dt, "readable")``.

    >>> simple_type_string(ArrayType(LongType()))
    'array<long>'
    """
    return type_string(dt, "readable")


def to_byzer_dsl(schema: StructType) -> str:
    """Write ``schema`` in Byzer's DSL, for tools and users that speak it.

    The DSL has no nullability or metadata, so those are dropped; for schemas
    whose fields are all nullable, ``parse_schema(to_byzer_dsl(s)) == s``.

    Raises:
        SchemaError: A type cannot be written in the DSL (e.g. ``timestamp_ntz``).
    """
    return type_string(schema, "dsl")
