"""Schemas: parse the texts users write, and convert between Spark and Arrow.

``parse_schema`` accepts five forms, so users can reuse what they already have:

* a ``StructType``, returned unchanged;
* Spark's JSON form (what ``StructType.json()`` writes), recognised by a leading ``{``;
* Byzer's DSL, recognised by a leading ``st(``::

      st(field(id,long),field(tags,array(string)),field(attrs,map(string,double)))

* a DDL string, as in ``CREATE TABLE``: ``id long NOT NULL, tags array<string> COMMENT 'x'``,
  optionally wrapped in ``struct<...>``;
* MySQL's ``CREATE TABLE`` statement, Byzer's third form, recognised by a leading
  ``CREATE TABLE``: ``CREATE TABLE t1 (c1 INT, c2 VARCHAR(20)) ENGINE=NDB``. MySQL type
  names map to Spark types (``MYSQL_TYPE_NAMES``); the table name, index entries,
  attributes other than ``NOT NULL`` and ``COMMENT``, and table options are ignored.

Everything here is pure Python: it runs where no SparkContext or JVM exists (for
example inside a UDTF's static ``analyze``), so it never calls into the JVM, and
in particular not Spark's own DDL parser. The DSL, DDL and MySQL grammar is
schema.lark; this module turns what lark reads into Spark types, and lark's
errors into SchemaParseErrors that point at the offending character.

The Arrow conversions live in schema_arrow.py and the type printer in
schema_text.py; their public functions are importable from here too.

Example:
    >>> parse_schema("id long NOT NULL, tags array<string>").simpleString()
    'struct<id:bigint,tags:array<string>>'
    >>> parse_schema("st(field(id,long))") == parse_schema("struct<id:long>")
    True
    >>> parse_schema("CREATE TABLE t1 (c1 INT, c2 VARCHAR(20)) ENGINE NDB").simpleString()
    'struct<c1:int,c2:string>'
"""

from __future__ import annotations

import functools
import json
import re
from typing import TYPE_CHECKING, Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken
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
    StructField,
    StructType,
    TimestampType,
)

from .errors import SchemaError, SchemaParseError, did_you_mean
from .schema_arrow import check_unique_names, from_arrow_schema, from_arrow_type, to_arrow_schema, to_arrow_type
from .schema_text import (
    DDL_TYPE_NAMES,
    DSL_TYPE_NAMES,
    MAX_DECIMAL_PRECISION,
    simple_type_string,
    to_byzer_dsl,
    type_string,
)

if TYPE_CHECKING:
    from lark.parsers.lalr_interactive_parser import InteractiveParser

__all__ = [
    "MYSQL_TYPE_NAMES",
    "from_arrow_schema",
    "from_arrow_type",
    "parse_schema",
    "simple_type_string",
    "to_arrow_schema",
    "to_arrow_type",
    "to_byzer_dsl",
    "type_string",
]


def parse_schema(spec: str | StructType) -> StructType:
    """Turn any schema form a user may write into a ``StructType``.

    Args:
        spec: A ``StructType``, Spark JSON, Byzer DSL (``st(field(...))``), DDL text or
            MySQL's ``CREATE TABLE ...``.

    Returns:
        The schema as a ``StructType``.

    Raises:
        SchemaParseError: The text is malformed; ``position`` points at the fault.
        SchemaError: The text parses but is not a usable schema (duplicate names,
            JSON that is not a struct).
    """
    if isinstance(spec, StructType):
        check_unique_names(spec)  # a StructType can be built with a name twice; no output can hold it
        return spec
    if not isinstance(spec, str):
        raise SchemaError(f"a schema must be a string or StructType, not {type(spec).__name__}")
    if not spec.strip():
        raise SchemaParseError("schema is empty", spec, 0)
    if spec.lstrip().startswith("{"):
        struct = _parse_json(spec)
    elif _is_dsl(spec):
        struct = _parse_text(spec, "dsl")
    elif _MYSQL_START.match(spec):
        # A pasted statement may end in ';': blanked, so positions stay those of the text.
        trimmed = spec.rstrip()
        blanked = trimmed[:-1] + " " + spec[len(trimmed) :] if trimmed.endswith(";") else spec
        struct = _parse_text(blanked, "mysql", spec)
    else:
        struct = _parse_text(spec, "ddl")
    check_unique_names(struct)
    return struct


# MySQL's form starts so; a DDL schema cannot (its first column's type would be "table").
_MYSQL_START = re.compile(r"\s*create\s+(temporary\s+)?table\b", re.IGNORECASE)


def _is_dsl(text: str) -> bool:
    stripped = text.lstrip()
    return stripped[:2].lower() == "st" and stripped[2:].lstrip().startswith("(")


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


# --------------------------------------------------------------------------- DSL and DDL


def _parse_text(text: str, start: str, shown: str | None = None) -> StructType:
    """Parse ``text`` from rule ``start``; errors quote ``shown`` (the text as the user wrote it)."""
    try:
        struct = _lark().parse(text, start=start)
    except _Fault as fault:
        raise SchemaParseError(fault.description, shown or text, fault.position) from None
    except UnexpectedInput as error:
        raise _syntax_error(shown or text, error) from None
    assert isinstance(struct, StructType)
    return struct


class _QuotesEverywhere:
    """A pass-through post-lexer whose only job is to lex quotes in every parser state.

    lark drops terminals that no rule uses (UNCLOSED_*) and lexes only the
    terminals a parser state accepts. Keeping the quote terminals in every state
    makes a quote one token wherever it stands: a misplaced `name` is reported
    as such, and an unclosed quote where it opens.
    """

    always_accept = ("QUOTED", "STRING", "UNCLOSED_QUOTED", "UNCLOSED_STRING")

    def process(self, stream: Any) -> Any:
        return stream


@functools.lru_cache(maxsize=1)
def _lark() -> Lark:
    # The transformer runs as the LALR parser reduces (no tree is built), which
    # is faster, and reports a bad type or decimal before any later syntax error.
    return Lark.open(
        "schema.lark",
        rel_to=__file__,
        parser="lalr",
        lexer="contextual",
        start=["dsl", "ddl", "mysql"],
        transformer=_ToSparkTypes(),
        postlex=_QuotesEverywhere(),
    )


class _Fault(Exception):
    """A fault the transformer found in text that parses: what, and the offset where it starts."""

    def __init__(self, description: str, position: int) -> None:
        super().__init__(description)
        self.description = description
        self.position = position


def _position(token: Token) -> int:
    return token.start_pos or 0


# Type words each dialect knows besides its primitives, for did-you-mean hints.
_DSL_OTHER_TYPES = ("decimal", "array", "map", "st")
_DDL_OTHER_TYPES = ("decimal", "dec", "numeric", "varchar", "char", "array", "map", "struct")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0"}
_ESCAPE = re.compile(r"\\([\s\S])")


@v_args(inline=True)
class _ToSparkTypes(Transformer[Token, Any]):
    """schema.lark's rules -> Spark types. Stateless: one instance serves every parse."""

    def dsl(self, struct: StructType) -> StructType:
        return struct

    def ddl(self, *fields: StructField) -> StructType:
        return StructType(list(fields))

    def dsl_struct(self, *fields: StructField) -> StructType:
        return StructType(list(fields))

    ddl_struct = dsl_struct

    def dsl_field(self, name: str, data_type: DataType) -> StructField:
        return StructField(name, data_type, True)

    def ddl_field(self, name: str, data_type: DataType, *options: tuple[str, str]) -> StructField:
        extras = dict(options)
        metadata = {"comment": extras["comment"]} if "comment" in extras else {}
        return StructField(name, data_type, "not_null" not in extras, metadata)

    def not_null(self) -> tuple[str, str]:
        return ("not_null", "")

    def comment(self, text: Token) -> tuple[str, str]:
        return ("comment", _ESCAPE.sub(lambda m: _ESCAPES.get(m[1], m[1]), text[1:-1]))

    def name(self, token: Token) -> str:
        if token.type == "NAME":
            return str(token)
        if token == "``":
            raise _Fault("field name is empty", _position(token))
        return token[1:-1].replace("``", "`")

    def dsl_primitive(self, token: Token) -> DataType:
        return _primitive(token, DSL_TYPE_NAMES, _DSL_OTHER_TYPES)

    def ddl_primitive(self, token: Token) -> DataType:
        return _primitive(token, DDL_TYPE_NAMES, _DDL_OTHER_TYPES)

    def decimal(self, precision: Token | None = None, scale: Token | None = None) -> DecimalType:
        if precision is None:
            return DecimalType(10, 0)
        digits, places = int(precision), int(scale) if scale is not None else 0
        if not 1 <= digits <= MAX_DECIMAL_PRECISION:
            raise _Fault(f"decimal precision must be between 1 and {MAX_DECIMAL_PRECISION}", _position(precision))
        if scale is not None and places > digits:
            raise _Fault(f"decimal scale {places} is larger than precision {digits}", _position(scale))
        return DecimalType(digits, places)

    def varchar(self, length: Token) -> StringType:
        return StringType()

    def mysql(self, *entries: StructField | None) -> StructType:
        return StructType([entry for entry in entries if entry is not None])

    def mysql_column(self, name: str, data_type: DataType, *options: tuple[str, str] | None) -> StructField:
        return self.ddl_field(name, data_type, *(option for option in options if option is not None))

    def mysql_name(self, token: Token) -> str:
        return self.name(token)

    def mysql_not_null(self) -> tuple[str, str]:
        return self.not_null()

    def mysql_comment(self, text: Token) -> tuple[str, str]:
        return self.comment(text)

    def mysql_type(self, name: Token, *rest: Token) -> DataType:
        unsigned = any(token.type == "UNSIGNED" for token in rest)
        return _mysql_type(name, [token for token in rest if token.type != "UNSIGNED"], unsigned)

    def _nothing(self, *_parts: Any) -> None:
        return None

    mysql_index = mysql_ignored = mysql_table_option = _nothing

    def array(self, element: DataType) -> ArrayType:
        return ArrayType(element, True)

    def map(self, key: DataType, value: DataType) -> MapType:
        return MapType(key, value, True)


# MySQL type names -> (Spark type, Spark type when UNSIGNED): an unsigned integer needs
# the next wider type, as Spark's own JDBC reader maps them. DECIMAL, FLOAT and BIT look
# at their arguments (_mysql_type); ENUM and SET take quoted values and are strings.
MYSQL_TYPE_NAMES: dict[str, tuple[DataType, DataType]] = {
    "tinyint": (ByteType(), ShortType()), "smallint": (ShortType(), IntegerType()),
    "mediumint": (IntegerType(), IntegerType()), "int": (IntegerType(), LongType()),
    "integer": (IntegerType(), LongType()), "bigint": (LongType(), DecimalType(20, 0)),
    "bool": (BooleanType(), BooleanType()), "boolean": (BooleanType(), BooleanType()),
    "bit": (BooleanType(), BooleanType()),
    "float": (FloatType(), FloatType()), "double": (DoubleType(), DoubleType()), "real": (DoubleType(), DoubleType()),
    "decimal": (DecimalType(10, 0), DecimalType(10, 0)), "dec": (DecimalType(10, 0), DecimalType(10, 0)),
    "numeric": (DecimalType(10, 0), DecimalType(10, 0)), "fixed": (DecimalType(10, 0), DecimalType(10, 0)),
    "char": (StringType(), StringType()), "varchar": (StringType(), StringType()),
    "tinytext": (StringType(), StringType()), "text": (StringType(), StringType()),
    "mediumtext": (StringType(), StringType()), "longtext": (StringType(), StringType()),
    "enum": (StringType(), StringType()), "set": (StringType(), StringType()), "json": (StringType(), StringType()),
    "binary": (BinaryType(), BinaryType()), "varbinary": (BinaryType(), BinaryType()),
    "tinyblob": (BinaryType(), BinaryType()), "blob": (BinaryType(), BinaryType()),
    "mediumblob": (BinaryType(), BinaryType()), "longblob": (BinaryType(), BinaryType()),
    "date": (DateType(), DateType()), "datetime": (TimestampType(), TimestampType()),
    "timestamp": (TimestampType(), TimestampType()), "time": (StringType(), StringType()),
    "year": (IntegerType(), IntegerType()),
}  # fmt: skip
_MYSQL_DECIMALS = ("decimal", "dec", "numeric", "fixed")
_MYSQL_QUOTED_ARGUMENTS = ("enum", "set")


def _mysql_type(name: Token, arguments: list[Token], unsigned: bool) -> DataType:
    """A MySQL column type as a Spark type; its arguments matter only for DECIMAL, FLOAT and BIT."""
    key = name.lower()
    if key not in MYSQL_TYPE_NAMES:
        hint = did_you_mean(key, list(MYSQL_TYPE_NAMES)).replace(" Did", "; did", 1)
        raise _Fault(f"unknown MySQL type '{name}'{hint}", _position(name))
    quoted = [token for token in arguments if token.type == "STRING"]
    if quoted and key not in _MYSQL_QUOTED_ARGUMENTS:
        raise _Fault(f"only ENUM and SET take quoted values, not {name.upper()}", _position(quoted[0]))
    numbers = [token for token in arguments if token.type == "NUMBER"]
    if key in _MYSQL_QUOTED_ARGUMENTS and numbers:
        raise _Fault(f"{name.upper()} takes quoted values ('a', 'b'), not numbers", _position(numbers[0]))
    if key in _MYSQL_DECIMALS:
        if len(numbers) > 2:
            raise _Fault(f"{name.upper()} takes (precision) or (precision, scale)", _position(numbers[2]))
        return _ToSparkTypes().decimal(*numbers)
    if key == "float" and numbers and int(numbers[0]) > 24:  # MySQL: FLOAT(p) with p > 24 is a DOUBLE
        return DoubleType()
    if key == "bit" and numbers and int(numbers[0]) > 1:  # BIT(n) holds n bits: a number, not a flag
        return LongType()
    signed, wider = MYSQL_TYPE_NAMES[key]
    return wider if unsigned else signed


def _primitive(token: Token, names: dict[str, type[DataType]], other_types: tuple[str, ...]) -> DataType:
    make = names.get(token.lower())
    if make is not None:
        return make()
    # The wording predates did_you_mean's and is what users' scripts and our tests match.
    hint = did_you_mean(token.lower(), [*names, *other_types]).replace(" Did", "; did", 1)
    raise _Fault(f"unknown type '{token}'{hint}", _position(token))


# --------------------------------------------------------------------------- errors

# What an expected terminal asks for, in the order messages list them.
_WANTED = {
    "RPAR": "')'",
    "MORETHAN": "'>'",
    "COMMA": "','",
    "LPAR": "'('",
    "LESSTHAN": "'<'",
    "COLON": "':'",
    "$END": "end of schema",
}
# Optional parts: named only when nothing else could come next ("a varchar" wants '(').
_OPTIONAL = {"_NOT", "_COMMENT", "LPAR", "COLON"}
_UNCLOSED = {"UNCLOSED_QUOTED": "unterminated backquoted name", "UNCLOSED_STRING": "unterminated string"}


def _syntax_error(text: str, error: UnexpectedInput) -> SchemaParseError:
    """lark's error -> a SchemaParseError pointing where the text goes wrong.

    A fault in text the parser had read but not yet reduced (``id lon x``: the
    type ``lon`` is only checked once the parser knows what follows it) comes
    first, so faults are reported in the order they appear.
    """
    parser = getattr(error, "interactive_parser", None)
    fault = _pending_fault(parser) if parser is not None else None
    if fault is not None:
        return SchemaParseError(fault.description, text, fault.position)
    if isinstance(error, UnexpectedCharacters):
        position = error.pos_in_stream or 0
        return SchemaParseError(f"unexpected character {text[position]!r}", text, position)
    assert isinstance(error, UnexpectedToken)
    token = error.token
    if token.type == "$END":
        position, found = len(text.rstrip()), "end of schema"
    else:
        position, found = _position(token), repr(str(token))
    if token.type in _UNCLOSED:
        return SchemaParseError(_UNCLOSED[token.type], text, position)
    # accepts follows the parse to the real next state; `expected` may list terminals
    # that LALR merged in from other contexts (a '>' at the top level).
    return SchemaParseError(_expectation(set(error.accepts or error.expected), found), text, position)


def _pending_fault(parser: InteractiveParser) -> _Fault | None:
    """Run the reductions waiting for a next token, on copies of the parser; the first fault they raise."""
    for terminal in parser.choices():
        if terminal.isupper():  # choices() lists rules too
            try:
                parser.copy(deepcopy_values=False).feed_token(Token(terminal, ""))
            except _Fault as fault:
                return fault
            except UnexpectedInput:
                pass
    return None


def _expectation(expected: set[str], found: str) -> str:
    if expected == {"$END"}:
        return f"unexpected {found} after the end of the schema"
    if "_AUTO_INCREMENT" in expected:  # MySQL, after a column's type
        return f"expected ',' or ')' after the column (or NOT NULL, DEFAULT, COMMENT, ...) but found {found}"
    if "_CHARSET" in expected and "_DEFAULT" in expected:  # MySQL, after the column list
        return f"expected a table option (ENGINE=...) or end of schema but found {found}"
    if {"NAME", "NUMBER", "STRING"} <= expected:  # MySQL, a table option's value
        return f"expected a value but found {found}"
    if "_NULL" in expected:
        return f"expected NULL after NOT but found {found}"
    if "TYPE_NAME" in expected:
        wanted = "a type"
    elif "NAME" in expected:
        wanted = "a field name"
    elif "_FIELD" in expected:
        wanted = "'field('"
    elif "NUMBER" in expected:
        wanted = "a number"
    elif "STRING" in expected:
        wanted = "a quoted comment"
    else:
        required = expected - _OPTIONAL or expected
        wanted = " or ".join(words for terminal, words in _WANTED.items() if terminal in required)
        wanted = wanted or " or ".join(sorted(required))
    return f"expected {wanted} but found {found}"
