"""Schemas: parse the texts users write, and convert between Spark and Arrow.

``parse_schema`` accepts four forms, so users can reuse what they already have:

* a ``StructType``, returned unchanged;
* Spark's JSON form (what ``StructType.json()`` writes), recognised by a leading ``{``;
* Byzer's DSL, recognised by a leading ``st(``::

      st(field(id,long),field(tags,array(string)),field(attrs,map(string,double)))

* a DDL string, as in ``CREATE TABLE``: ``id long NOT NULL, tags array<string> COMMENT 'x'``,
  optionally wrapped in ``struct<...>``.

Everything here is pure Python: it runs where no SparkContext or JVM exists (for
example inside a UDTF's static ``analyze``), so it never calls into the JVM.
The DSL and DDL parsers share one small tokenizer and are recursive descent,
which lets every error point at the offending character.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, NoReturn

import pyarrow as pa
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

from .errors import SchemaError, SchemaParseError

__all__ = [
    "from_arrow_schema",
    "from_arrow_type",
    "parse_schema",
    "simple_type_string",
    "to_arrow_schema",
    "to_arrow_type",
    "to_byzer_dsl",
]

_MAX_DECIMAL_PRECISION = 38

# Primitive type names of each textual form, mapped to the Spark type they denote.
_DSL_PRIMITIVES: dict[str, Callable[[], DataType]] = {
    "boolean": BooleanType, "byte": ByteType, "short": ShortType, "integer": IntegerType,
    "int": IntegerType, "long": LongType, "float": FloatType, "double": DoubleType,
    "date": DateType, "timestamp": TimestampType, "binary": BinaryType, "string": StringType,
}  # fmt: skip

_DDL_PRIMITIVES: dict[str, Callable[[], DataType]] = {
    "boolean": BooleanType, "bool": BooleanType, "tinyint": ByteType, "byte": ByteType,
    "smallint": ShortType, "short": ShortType, "int": IntegerType, "integer": IntegerType,
    "bigint": LongType, "long": LongType, "float": FloatType, "real": FloatType,
    "double": DoubleType, "date": DateType, "timestamp": TimestampType,
    "timestamp_ltz": TimestampType, "timestamp_ntz": TimestampNTZType,
    "binary": BinaryType, "string": StringType,
}  # fmt: skip


# --------------------------------------------------------------------------- tokenizer


@dataclass(frozen=True)
class _Token:
    kind: str  # "ident", "quoted" (backquoted name), "number", "string", "punct", "error", "eof"
    value: str  # identifier/string contents, punctuation char, or error description
    pos: int  # 0-based offset of the token's first character
    raw: str  # the token as written, for error messages


_PUNCTUATION = "(),<>:"
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0"}


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _tokenize(text: str) -> list[_Token]:
    """Split ``text`` into tokens.

    A lexical fault becomes an ``error`` token instead of an exception, so the
    parser reports faults in text order: a bad type before a stray ``;`` is
    reported as the bad type.
    """
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in _PUNCTUATION:
            tokens.append(_Token("punct", ch, i, ch))
            i += 1
        elif _is_word_char(ch):
            start = i
            while i < n and _is_word_char(text[i]):
                i += 1
            word = text[start:i]
            tokens.append(_Token("number" if word.isdigit() else "ident", word, start, word))
        elif ch in "`'\"":
            token = _read_quoted(text, i)
            tokens.append(token)
            if token.kind == "error":
                break
            i += len(token.raw)
        else:
            tokens.append(_Token("error", f"unexpected character {ch!r}", i, ch))
            break
    tokens.append(_Token("eof", "", len(text.rstrip()), ""))
    return tokens


def _read_quoted(text: str, start: int) -> _Token:
    """Read a backquoted name (`` `` `` escapes a backquote) or a quoted string (backslash escapes)."""
    quote = text[start]
    chars: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == quote:
            if quote == "`" and text.startswith("`", i + 1):
                chars.append("`")
                i += 2
                continue
            kind = "quoted" if quote == "`" else "string"
            return _Token(kind, "".join(chars), start, text[start : i + 1])
        if ch == "\\" and quote != "`" and i + 1 < len(text):
            chars.append(_ESCAPES.get(text[i + 1], text[i + 1]))
            i += 2
            continue
        chars.append(ch)
        i += 1
    what = "backquoted name" if quote == "`" else "string"
    return _Token("error", f"unterminated {what}", start, quote)


# --------------------------------------------------------------------------- parsers


def _describe(token: _Token) -> str:
    return "end of schema" if token.kind == "eof" else repr(token.raw)


class _Parser:
    """Recursive descent over the tokens; subclasses supply one dialect's words and brackets."""

    primitives: ClassVar[dict[str, Callable[[], DataType]]] = {}
    decimal_names: tuple[str, ...] = ()
    extra_types: tuple[str, ...] = ()  # names other_type handles, for did-you-mean
    struct_word = ""
    opener, closer = "(", ")"
    field_hint = ""  # what a struct's first field starts with, for error messages

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0

    # -- cursor

    def peek(self, ahead: int = 0) -> _Token:
        token = self.tokens[min(self.index + ahead, len(self.tokens) - 1)]
        if token.kind == "error":
            self.fail(token.value, token)
        return token

    def advance(self) -> _Token:
        token = self.peek()
        if token.kind != "eof":
            self.index += 1
        return token

    def fail(self, description: str, token: _Token) -> NoReturn:
        raise SchemaParseError(description, self.text, token.pos)

    def at_punct(self, char: str, ahead: int = 0) -> bool:
        token = self.peek(ahead)
        return token.kind == "punct" and token.value == char

    def at_word(self, word: str) -> bool:
        token = self.peek()
        return token.kind == "ident" and token.value.lower() == word

    def expect(self, char: str, alternative: str = "") -> None:
        if not self.at_punct(char):
            wanted = f"'{char}'" + (f" or {alternative}" if alternative else "")
            self.fail(f"expected {wanted} but found {_describe(self.peek())}", self.peek())
        self.advance()

    def name(self) -> str:
        token = self.peek()
        if token.kind not in ("ident", "quoted"):
            self.fail(f"expected a field name but found {_describe(token)}", token)
        if not token.value:
            self.fail("field name is empty", token)
        return self.advance().value

    def number(self) -> tuple[int, _Token]:
        token = self.peek()
        if token.kind != "number":
            self.fail(f"expected a number but found {_describe(token)}", token)
        return int(self.advance().value), token

    def finish(self) -> None:
        token = self.peek()
        if token.kind != "eof":
            self.fail(f"unexpected {_describe(token)} after the end of the schema", token)

    # -- grammar shared by both dialects

    def field(self) -> StructField:
        raise NotImplementedError

    def struct(self) -> StructType:
        self.advance()  # the struct keyword, checked by the caller
        self.expect(self.opener)
        fields: list[StructField] = []
        if not self.at_punct(self.closer):
            fields.append(self.field())
            while self.at_punct(","):
                self.advance()
                fields.append(self.field())
        self.expect(self.closer, "','" if fields else self.field_hint)
        return StructType(fields)

    def data_type(self) -> DataType:
        token = self.peek()
        if token.kind != "ident":
            self.fail(f"expected a type but found {_describe(token)}", token)
        name = token.value.lower()
        if name == self.struct_word:
            return self.struct()
        self.advance()
        if name in self.primitives:
            return self.primitives[name]()
        if name in self.decimal_names:
            return self.decimal_arguments()
        if name == "array":
            self.expect(self.opener)
            element = self.data_type()
            self.expect(self.closer)
            return ArrayType(element, True)
        if name == "map":
            self.expect(self.opener)
            key = self.data_type()
            self.expect(",")
            value = self.data_type()
            self.expect(self.closer)
            return MapType(key, value, True)
        return self.other_type(name, token)

    def other_type(self, name: str, token: _Token) -> DataType:
        """Parse a type only one dialect has; by default the name is unknown."""
        known = (*self.primitives, *self.decimal_names, *self.extra_types, "array", "map", self.struct_word)
        description = f"unknown type '{token.raw}'"
        close = difflib.get_close_matches(name, known, n=1)
        if close:
            description += f"; did you mean '{close[0]}'?"
        self.fail(description, token)

    def decimal_arguments(self) -> DecimalType:
        """Parse the optional ``(p)`` or ``(p,s)`` after a decimal type name."""
        if not self.at_punct("("):
            return DecimalType(10, 0)
        self.advance()
        precision, precision_token = self.number()
        scale, scale_token = 0, precision_token
        if self.at_punct(","):
            self.advance()
            scale, scale_token = self.number()
        self.expect(")")
        if not 1 <= precision <= _MAX_DECIMAL_PRECISION:
            self.fail(f"decimal precision must be between 1 and {_MAX_DECIMAL_PRECISION}", precision_token)
        if scale > precision:
            self.fail(f"decimal scale {scale} is larger than precision {precision}", scale_token)
        return DecimalType(precision, scale)


class _DslParser(_Parser):
    """Byzer's DSL: ``st(field(name,type),...)``; every field is nullable."""

    primitives = _DSL_PRIMITIVES
    decimal_names = ("decimal",)
    struct_word = "st"
    field_hint = "'field('"

    def parse(self) -> StructType:
        struct = self.struct()
        self.finish()
        return struct

    def field(self) -> StructField:
        if not self.at_word("field"):
            self.fail(f"expected 'field(' but found {_describe(self.peek())}", self.peek())
        self.advance()
        self.expect("(")
        name = self.name()
        self.expect(",")
        data_type = self.data_type()
        self.expect(")")
        return StructField(name, data_type, True)


class _DdlParser(_Parser):
    """DDL: ``name type [NOT NULL] [COMMENT 'text'], ...``, optionally inside ``struct<...>``."""

    primitives = _DDL_PRIMITIVES
    decimal_names = ("decimal", "dec", "numeric")
    extra_types = ("varchar", "char")
    struct_word = "struct"
    opener, closer = "<", ">"
    field_hint = "a field name"

    def parse(self) -> StructType:
        if self.at_word("struct") and self.at_punct("<", ahead=1):
            struct = self.struct()
        else:
            fields = [self.field()]
            while self.at_punct(","):
                self.advance()
                fields.append(self.field())
            token = self.peek()
            if token.kind != "eof":
                self.fail(f"expected ',' or end of schema but found {_describe(token)}", token)
            struct = StructType(fields)
        self.finish()
        return struct

    def field(self) -> StructField:
        name = self.name()
        if self.at_punct(":"):
            self.advance()
        data_type = self.data_type()
        nullable, metadata = True, {}
        while True:
            if self.at_word("not") and nullable:
                self.advance()
                if not self.at_word("null"):
                    self.fail(f"expected NULL after NOT but found {_describe(self.peek())}", self.peek())
                self.advance()
                nullable = False
            elif self.at_word("comment") and "comment" not in metadata:
                self.advance()
                comment = self.peek()
                if comment.kind != "string":
                    self.fail(f"expected a quoted comment but found {_describe(comment)}", comment)
                metadata["comment"] = self.advance().value
            else:
                return StructField(name, data_type, nullable, metadata)

    def other_type(self, name: str, token: _Token) -> DataType:
        if name in ("varchar", "char"):  # Spark reads these as strings too
            self.expect("(")
            self.number()
            self.expect(")")
            return StringType()
        return super().other_type(name, token)


def _parse_json(text: str) -> StructType:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise SchemaParseError(f"invalid JSON: {error.msg}", text, error.pos) from None
    if not isinstance(value, dict) or value.get("type") != "struct":
        raise SchemaError('a JSON schema must be a struct type: {"type": "struct", "fields": [...]}')
    try:
        return StructType.fromJson(value)
    except KeyError as error:
        raise SchemaError(f"invalid JSON schema: missing key {error}") from error
    except (TypeError, ValueError, AttributeError) as error:
        raise SchemaError(f"invalid JSON schema: {error}") from error


def _check_unique_names(data_type: DataType) -> None:
    if isinstance(data_type, StructType):
        seen: set[str] = set()
        for field in data_type.fields:
            if field.name in seen:
                raise SchemaError(f"duplicate field name '{field.name}' in schema")
            seen.add(field.name)
            _check_unique_names(field.dataType)
    elif isinstance(data_type, ArrayType):
        _check_unique_names(data_type.elementType)
    elif isinstance(data_type, MapType):
        _check_unique_names(data_type.keyType)
        _check_unique_names(data_type.valueType)


def _is_dsl(text: str) -> bool:
    stripped = text.lstrip()
    return stripped[:2].lower() == "st" and stripped[2:].lstrip().startswith("(")


def parse_schema(spec: str | StructType) -> StructType:
    """Turn any schema form a user may write into a ``StructType``.

    Args:
        spec: A ``StructType``, Spark JSON, Byzer DSL (``st(field(...))``) or DDL text.

    Returns:
        The schema as a ``StructType``.

    Raises:
        SchemaParseError: The text is malformed; ``position`` points at the fault.
        SchemaError: The text parses but is not a usable schema (duplicate names,
            JSON that is not a struct).
    """
    if isinstance(spec, StructType):
        return spec
    if not isinstance(spec, str):
        raise SchemaError(f"a schema must be a string or StructType, not {type(spec).__name__}")
    if not spec.strip():
        raise SchemaParseError("schema is empty", spec, 0)
    if spec.lstrip().startswith("{"):
        struct = _parse_json(spec)
    elif _is_dsl(spec):
        struct = _DslParser(spec).parse()
    else:
        struct = _DdlParser(spec).parse()
    _check_unique_names(struct)
    return struct


# --------------------------------------------------------------------------- Arrow

_ATOMIC_TO_ARROW: dict[type, Callable[[], pa.DataType]] = {
    BooleanType: pa.bool_, ByteType: pa.int8, ShortType: pa.int16, IntegerType: pa.int32,
    LongType: pa.int64, FloatType: pa.float32, DoubleType: pa.float64, DateType: pa.date32,
    TimestampType: lambda: pa.timestamp("us", tz="UTC"), TimestampNTZType: lambda: pa.timestamp("us"),
    BinaryType: pa.binary, StringType: pa.string, CharType: pa.string, VarcharType: pa.string,
    NullType: pa.null,
}  # fmt: skip


def to_arrow_type(dt: DataType) -> pa.DataType:
    """Give the Arrow type that carries values of Spark type ``dt`` between Spark and Ray.

    Timestamps become UTC microseconds, the way Spark stores them; arrays use
    Spark's ``element`` item name. Field metadata (such as comments) is not carried.

    Raises:
        SchemaError: ``dt`` has no Arrow counterpart here (intervals, variant, ...).
    """
    make = _ATOMIC_TO_ARROW.get(type(dt))
    if make is not None:
        return make()
    if isinstance(dt, DecimalType):
        return pa.decimal128(dt.precision, dt.scale)
    if isinstance(dt, ArrayType):
        return pa.list_(_arrow_field("element", dt.elementType, dt.containsNull))
    if isinstance(dt, MapType):
        return pa.map_(
            _arrow_field("key", dt.keyType, False), _arrow_field("value", dt.valueType, dt.valueContainsNull)
        )
    if isinstance(dt, StructType):
        return pa.struct([_arrow_field(f.name, f.dataType, f.nullable) for f in dt.fields])
    raise SchemaError(f"Spark type '{simple_type_string(dt)}' has no Arrow equivalent in spark-ray")


def _arrow_field(name: str, dt: DataType, nullable: bool) -> pa.Field:
    # Arrow refuses a non-nullable null-typed field; such a field only ever holds nulls anyway.
    return pa.field(name, to_arrow_type(dt), nullable=nullable or isinstance(dt, NullType))


def to_arrow_schema(schema: StructType) -> pa.Schema:
    """Give the Arrow schema for a Spark schema, keeping each field's nullability.

    A non-nullable ``void`` (``NullType``) field becomes nullable, as Arrow requires.
    """
    return pa.schema([_arrow_field(f.name, f.dataType, f.nullable) for f in schema.fields])


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
        if not 1 <= t.precision <= _MAX_DECIMAL_PRECISION or not 0 <= t.scale <= t.precision:
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
    _check_unique_names(struct)
    return struct


# --------------------------------------------------------------------------- text out


def _quote_name(name: str) -> str:
    """Backquote a field name unless the tokenizer reads it back as a bare identifier."""
    if name and all(_is_word_char(ch) for ch in name) and not name.isdigit():
        return name
    return "`" + name.replace("`", "``") + "`"


_DSL_NAMES: dict[type, str] = {
    BooleanType: "boolean", ByteType: "byte", ShortType: "short", IntegerType: "integer",
    LongType: "long", FloatType: "float", DoubleType: "double", DateType: "date",
    TimestampType: "timestamp", BinaryType: "binary", StringType: "string",
}  # fmt: skip


def _dsl_type(dt: DataType) -> str:
    name = _DSL_NAMES.get(type(dt))
    if name is not None:
        return name
    if isinstance(dt, DecimalType):
        return f"decimal({dt.precision},{dt.scale})"
    if isinstance(dt, ArrayType):
        return f"array({_dsl_type(dt.elementType)})"
    if isinstance(dt, MapType):
        return f"map({_dsl_type(dt.keyType)},{_dsl_type(dt.valueType)})"
    if isinstance(dt, StructType):
        fields = ",".join(f"field({_quote_name(f.name)},{_dsl_type(f.dataType)})" for f in dt.fields)
        return f"st({fields})"
    raise SchemaError(f"Spark type '{simple_type_string(dt)}' cannot be written in Byzer's DSL")


def to_byzer_dsl(schema: StructType) -> str:
    """Write ``schema`` in Byzer's DSL, for tools and users that speak it.

    The DSL has no nullability or metadata, so those are dropped; for schemas
    whose fields are all nullable, ``parse_schema(to_byzer_dsl(s)) == s``.

    Raises:
        SchemaError: A type cannot be written in the DSL (e.g. ``timestamp_ntz``).
    """
    return _dsl_type(schema)


def simple_type_string(dt: DataType) -> str:
    """Give a short, readable name for ``dt`` to use in error messages (``array<long>``).

    Unlike ``DataType.simpleString`` (which says ``bigint``), this uses Spark's
    type names (``long``), matching what users see in ``StructType.json()``.
    """
    if isinstance(dt, DecimalType):
        return f"decimal({dt.precision},{dt.scale})"
    if isinstance(dt, ArrayType):
        return f"array<{simple_type_string(dt.elementType)}>"
    if isinstance(dt, MapType):
        return f"map<{simple_type_string(dt.keyType)},{simple_type_string(dt.valueType)}>"
    if isinstance(dt, StructType):
        fields = ",".join(f"{_quote_name(f.name)}:{simple_type_string(f.dataType)}" for f in dt.fields)
        return f"struct<{fields}>"
    name = _DSL_NAMES.get(type(dt))
    if name is not None and not isinstance(dt, StringType):  # a collated string says so in simpleString
        return name
    return dt.simpleString()
