"""Tests for spark_ray.schema: the four schema forms, Arrow conversion, DSL output, errors.

No SparkSession is needed or created: the module must work without a JVM.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pytest
from processes import run_python
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    BooleanType,
    ByteType,
    CharType,
    DataType,
    DateType,
    DayTimeIntervalType,
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

from spark_ray.errors import SchemaError, SchemaParseError
from spark_ray.schema import (
    from_arrow_schema,
    from_arrow_type,
    parse_schema,
    simple_type_string,
    to_arrow_schema,
    to_arrow_type,
    to_byzer_dsl,
    type_string,
)


def one(data_type: DataType, name: str = "x", nullable: bool = True) -> StructType:
    return StructType([StructField(name, data_type, nullable)])


def assert_parse_error(text: str, position: int, fragment: str) -> SchemaParseError:
    """Parse ``text``, expecting a SchemaParseError at ``position`` whose message has ``fragment``."""
    with pytest.raises(SchemaParseError) as info:
        parse_schema(text)
    error = info.value
    assert error.position == position
    assert error.text == text
    assert fragment in error.description
    message_lines = str(error).split("\n")
    line_start = text.rfind("\n", 0, position) + 1
    line_end = text.find("\n", position)
    schema_line = text[line_start : len(text) if line_end == -1 else line_end]
    assert message_lines[-2] == "  " + schema_line
    assert message_lines[-1] == "  " + " " * (position - line_start) + "^"
    return error


# --------------------------------------------------------------------------- primitives

DSL_PRIMITIVES = [
    ("boolean", BooleanType()),
    ("byte", ByteType()),
    ("short", ShortType()),
    ("integer", IntegerType()),
    ("int", IntegerType()),
    ("long", LongType()),
    ("float", FloatType()),
    ("double", DoubleType()),
    ("decimal", DecimalType(10, 0)),
    ("decimal(10,2)", DecimalType(10, 2)),
    ("decimal(38, 38)", DecimalType(38, 38)),
    ("date", DateType()),
    ("timestamp", TimestampType()),
    ("binary", BinaryType()),
    ("string", StringType()),
    ("STRING", StringType()),
    ("Long", LongType()),
]

DDL_PRIMITIVES = [
    ("boolean", BooleanType()),
    ("bool", BooleanType()),
    ("tinyint", ByteType()),
    ("byte", ByteType()),
    ("smallint", ShortType()),
    ("short", ShortType()),
    ("int", IntegerType()),
    ("integer", IntegerType()),
    ("bigint", LongType()),
    ("long", LongType()),
    ("BIGINT", LongType()),
    ("float", FloatType()),
    ("real", FloatType()),
    ("double", DoubleType()),
    ("decimal", DecimalType(10, 0)),
    ("decimal(5)", DecimalType(5, 0)),
    ("decimal(12,3)", DecimalType(12, 3)),
    ("DEC(7, 2)", DecimalType(7, 2)),
    ("numeric(4,4)", DecimalType(4, 4)),
    ("date", DateType()),
    ("timestamp", TimestampType()),
    ("timestamp_ltz", TimestampType()),
    ("timestamp_ntz", TimestampNTZType()),
    ("binary", BinaryType()),
    ("string", StringType()),
    ("varchar(20)", StringType()),
    ("char(3)", StringType()),
]

ALL_TYPES = [
    BooleanType(),
    ByteType(),
    ShortType(),
    IntegerType(),
    LongType(),
    FloatType(),
    DoubleType(),
    DecimalType(10, 0),
    DecimalType(38, 18),
    DateType(),
    TimestampType(),
    TimestampNTZType(),
    BinaryType(),
    StringType(),
    NullType(),
    ArrayType(LongType(), True),
    ArrayType(StringType(), False),
    MapType(StringType(), DoubleType(), True),
    MapType(IntegerType(), ArrayType(StringType(), True), False),
    StructType([StructField("a", LongType(), False), StructField("b", StringType(), True)]),
]


@pytest.mark.parametrize(("text", "expected"), DSL_PRIMITIVES)
def test_dsl_primitive(text: str, expected: DataType) -> None:
    assert parse_schema(f"st(field(x,{text}))") == one(expected)


@pytest.mark.parametrize(("text", "expected"), DDL_PRIMITIVES)
def test_ddl_primitive(text: str, expected: DataType) -> None:
    assert parse_schema(f"x {text}") == one(expected)
    assert parse_schema(f"x: {text}") == one(expected)
    assert parse_schema(f"struct<x:{text}>") == one(expected)


@pytest.mark.parametrize("data_type", ALL_TYPES, ids=simple_type_string)
def test_json_every_type(data_type: DataType) -> None:
    schema = StructType([StructField("x", data_type, True), StructField("y", data_type, False)])
    assert parse_schema(schema.json()) == schema
    assert parse_schema("  \n" + schema.json()) == schema


def test_json_handwritten_primitives() -> None:
    names = ["boolean", "byte", "short", "integer", "long", "float", "double", "decimal(10,2)",
             "date", "timestamp", "timestamp_ntz", "binary", "string"]  # fmt: skip
    fields = [{"name": f"f{i}", "type": name, "nullable": True, "metadata": {}} for i, name in enumerate(names)]
    expected = StructType(
        [StructField(f"f{i}", t, True) for i, t in enumerate(
            [BooleanType(), ByteType(), ShortType(), IntegerType(), LongType(), FloatType(), DoubleType(),
             DecimalType(10, 2), DateType(), TimestampType(), TimestampNTZType(), BinaryType(), StringType()]
        )]
    )  # fmt: skip
    assert parse_schema(json.dumps({"type": "struct", "fields": fields})) == expected


def test_struct_type_returned_as_is() -> None:
    schema = one(LongType())
    assert parse_schema(schema) is schema


# --------------------------------------------------------------------------- nested types

NESTED = StructType(
    [
        StructField(
            "people",
            ArrayType(StructType([StructField("name", StringType()), StructField("age", IntegerType())])),
        ),
        StructField("scores", MapType(StringType(), ArrayType(DoubleType()))),
        StructField("outer", StructType([StructField("inner", StructType([StructField("v", LongType())]))])),
        StructField("grid", ArrayType(ArrayType(DecimalType(5, 2)))),
    ]
)


def test_nested_dsl() -> None:
    text = (
        "st(field(people,array(st(field(name,string),field(age,integer)))),"
        "field(scores,map(string,array(double))),"
        "field(outer,st(field(inner,st(field(v,long))))),"
        "field(grid,array(array(decimal(5,2)))))"
    )
    assert parse_schema(text) == NESTED


def test_nested_ddl() -> None:
    text = (
        "people array<struct<name:string, age int>>, scores map<string, array<double>>, "
        "outer struct<inner: struct<v bigint>>, grid array<array<decimal(5,2)>>"
    )
    assert parse_schema(text) == NESTED
    assert parse_schema(f"STRUCT<{text}>") == NESTED


def test_nested_json() -> None:
    text = json.dumps(
        {
            "type": "struct",
            "fields": [
                {"name": "people", "nullable": True, "metadata": {}, "type": {
                    "type": "array", "containsNull": True, "elementType": {"type": "struct", "fields": [
                        {"name": "name", "type": "string", "nullable": True, "metadata": {}},
                        {"name": "age", "type": "integer", "nullable": True, "metadata": {}}]}}},
                {"name": "scores", "nullable": True, "metadata": {}, "type": {
                    "type": "map", "keyType": "string", "valueContainsNull": True,
                    "valueType": {"type": "array", "elementType": "double", "containsNull": True}}},
                {"name": "outer", "nullable": True, "metadata": {}, "type": {"type": "struct", "fields": [
                    {"name": "inner", "nullable": True, "metadata": {}, "type": {"type": "struct", "fields": [
                        {"name": "v", "type": "long", "nullable": True, "metadata": {}}]}}]}},
                {"name": "grid", "nullable": True, "metadata": {}, "type": {
                    "type": "array", "containsNull": True, "elementType": {
                        "type": "array", "elementType": "decimal(5,2)", "containsNull": True}}},
            ],
        }
    )  # fmt: skip
    assert parse_schema(text) == NESTED


def test_empty_nested_structs() -> None:
    assert parse_schema("s struct<>") == one(StructType([]), "s")
    assert parse_schema("st(field(s,st()))") == one(StructType([]), "s")


# --------------------------------------------------------------------------- DDL details


def test_ddl_not_null_and_comment() -> None:
    text = "id bigint NOT NULL COMMENT 'the id', name string comment \"it's a name\", s struct<a: int not null>"
    assert parse_schema(text) == StructType(
        [
            StructField("id", LongType(), False, {"comment": "the id"}),
            StructField("name", StringType(), True, {"comment": "it's a name"}),
            StructField("s", StructType([StructField("a", IntegerType(), False)]), True),
        ]
    )


def test_ddl_comment_escapes_and_order() -> None:
    schema = parse_schema(r"a int COMMENT 'it\'s \\ here' NOT NULL")
    assert schema == StructType([StructField("a", IntegerType(), False, {"comment": "it's \\ here"})])


def test_backquoted_names() -> None:
    expected = StructType(
        [
            StructField("first name", StringType()),
            StructField("a`b", LongType()),
            StructField("select", IntegerType()),
            StructField("1", DoubleType()),
        ]
    )
    assert parse_schema("`first name` string, `a``b` long, `select` int, `1` double") == expected
    assert (
        parse_schema("st(field(`first name`,string),field(`a``b`,long),field(select,int),field(`1`,double))")
        == expected
    )
    assert parse_schema("struct<`first name`:string,`a``b`:long,`select`:int,`1`:double>") == expected


def test_keywords_are_names_where_a_name_is_expected() -> None:
    ddl = "array array<int>, struct int, not string NOT NULL, comment map<string,int>, Struct struct<null:long>"
    assert parse_schema(ddl) == StructType(
        [
            StructField("array", ArrayType(IntegerType())),
            StructField("struct", IntegerType()),
            StructField("not", StringType(), False),
            StructField("comment", MapType(StringType(), IntegerType())),
            StructField("Struct", StructType([StructField("null", LongType())])),
        ]
    )
    dsl = "st(field(field,int),field(st,array(long)),field(decimal,decimal(5,2)))"
    assert parse_schema(dsl) == StructType(
        [
            StructField("field", IntegerType()),
            StructField("st", ArrayType(LongType())),
            StructField("decimal", DecimalType(5, 2)),
        ]
    )


def test_whitespace_and_newlines() -> None:
    expected = StructType([StructField("id", LongType()), StructField("tags", ArrayType(StringType()))])
    dsl = "\n  ST (\n\tfield ( id , long ) ,\n\tfield(\n tags,\n array ( string ) )\n)\n  "
    ddl = "\n\tid\n  long ,\n tags   array <\n string\n>  \n"
    assert parse_schema(dsl) == expected
    assert parse_schema(ddl) == expected


def test_seed_schemas() -> None:
    expected = StructType(
        [
            StructField("id", LongType()),
            StructField("content", StringType()),
            StructField("label", DoubleType()),
        ]
    )
    assert parse_schema("st(field(id,long),field(content,string),field(label,double))") == expected
    assert parse_schema("st(field(ProductName,string),field(SubProduct,string))") == StructType(
        [StructField("ProductName", StringType()), StructField("SubProduct", StringType())]
    )
    seed_json = (
        '{"type":"struct","fields":[{"name":"id","type":"long","nullable":true,"metadata":{}},'
        '{"name":"content","type":"string","nullable":true,"metadata":{}},'
        '{"name":"label","type":"double","nullable":true,"metadata":{}}]}'
    )
    assert parse_schema(seed_json) == expected


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("data_type", ALL_TYPES, ids=simple_type_string)
def test_arrow_round_trip_every_type(data_type: DataType) -> None:
    nullable_y = isinstance(data_type, NullType)  # Arrow has no non-nullable null field
    schema = StructType([StructField("x", data_type, True), StructField("y", data_type, nullable_y)])
    arrow = to_arrow_schema(schema)
    assert [f.nullable for f in arrow] == [True, nullable_y]
    assert from_arrow_schema(arrow) == schema


def test_arrow_non_nullable_null_field_becomes_nullable() -> None:
    arrow = to_arrow_schema(one(NullType(), nullable=False))
    assert arrow == pa.schema([pa.field("x", pa.null(), nullable=True)])


def test_arrow_round_trip_nested() -> None:
    assert from_arrow_schema(to_arrow_schema(NESTED)) == NESTED


def test_to_arrow_exact_types() -> None:
    expected = {
        BooleanType(): pa.bool_(), ByteType(): pa.int8(), ShortType(): pa.int16(), IntegerType(): pa.int32(),
        LongType(): pa.int64(), FloatType(): pa.float32(), DoubleType(): pa.float64(),
        DecimalType(12, 3): pa.decimal128(12, 3), DateType(): pa.date32(),
        TimestampType(): pa.timestamp("us", tz="UTC"), TimestampNTZType(): pa.timestamp("us"),
        BinaryType(): pa.binary(), StringType(): pa.string(), NullType(): pa.null(),
    }  # fmt: skip
    for spark_type, arrow_type in expected.items():
        assert to_arrow_type(spark_type) == arrow_type


def test_to_arrow_complex_types() -> None:
    array = to_arrow_type(ArrayType(LongType(), False))
    assert pa.types.is_list(array) and array.value_type == pa.int64() and not array.value_field.nullable
    mapping = to_arrow_type(MapType(StringType(), DoubleType(), False))
    assert pa.types.is_map(mapping)
    assert (mapping.key_type, mapping.item_type, mapping.item_field.nullable) == (
        pa.string(),
        pa.float64(),
        False,
    )
    struct = to_arrow_type(StructType([StructField("a", IntegerType(), False), StructField("b", StringType())]))
    assert struct == pa.struct([pa.field("a", pa.int32(), nullable=False), pa.field("b", pa.string())])


def test_from_arrow_wider_and_lossy_types() -> None:
    cases = [
        (pa.large_string(), StringType()), (pa.string_view(), StringType()),
        (pa.large_binary(), BinaryType()), (pa.large_list(pa.int32()), ArrayType(IntegerType(), True)),
        (pa.list_(pa.field("item", pa.int8(), nullable=False)), ArrayType(ByteType(), False)),
        (pa.timestamp("s"), TimestampNTZType()), (pa.timestamp("ns", tz="Asia/Shanghai"), TimestampType()),
        (pa.timestamp("ms", tz="UTC"), TimestampType()), (pa.date64(), DateType()),
        (pa.uint8(), ShortType()), (pa.uint16(), IntegerType()),
        (pa.uint32(), LongType()), (pa.uint64(), LongType()),
        (pa.dictionary(pa.int32(), pa.string()), StringType()), (pa.decimal256(20, 4), DecimalType(20, 4)),
        (pa.map_(pa.string(), pa.int64()), MapType(StringType(), LongType(), True)),
    ]  # fmt: skip
    for arrow_type, spark_type in cases:
        assert from_arrow_type(arrow_type) == spark_type, arrow_type


def test_unsupported_arrow_types() -> None:
    with pytest.raises(SchemaError, match=r"Arrow type 'duration\[s\]'"):
        from_arrow_type(pa.duration("s"))
    with pytest.raises(SchemaError, match="decimal256"):
        from_arrow_type(pa.decimal256(50, 2))
    with pytest.raises(SchemaError, match=r"duration\[ms\]"):
        from_arrow_schema(pa.schema([pa.field("ok", pa.int64()), pa.field("d", pa.duration("ms"))]))


def test_unsupported_spark_type() -> None:
    with pytest.raises(SchemaError, match="interval"):
        to_arrow_type(DayTimeIntervalType())


def test_to_arrow_edge_types() -> None:
    assert to_arrow_type(CharType(3)) == pa.string()
    assert to_arrow_type(VarcharType(3)) == pa.string()
    assert to_arrow_type(ArrayType(NullType(), False)).value_field.nullable
    with pytest.raises(SchemaError, match="map keys cannot be void"):
        to_arrow_type(MapType(NullType(), LongType()))
    with pytest.raises(SchemaError, match=r"decimal\(50,2\)"):
        to_arrow_schema(one(DecimalType(50, 2)))


@pytest.mark.needs_spark4(reason="pyspark.sql.types.VariantType is new in 4.0")
def test_variant_has_no_arrow_type() -> None:
    from pyspark.sql.types import VariantType

    with pytest.raises(SchemaError, match="variant"):
        to_arrow_type(VariantType())


def test_byzer_dsl_output() -> None:
    schema = StructType(
        [
            StructField("id", LongType()),
            StructField("tags", ArrayType(StringType())),
            StructField("my col", MapType(StringType(), DecimalType(10, 2))),
            StructField("s", StructType([StructField("a", BooleanType())])),
        ]
    )
    dsl = to_byzer_dsl(schema)
    assert dsl == (
        "st(field(id,long),field(tags,array(string)),field(`my col`,map(string,decimal(10,2))),"
        "field(s,st(field(a,boolean))))"
    )
    assert parse_schema(dsl) == schema


def test_byzer_dsl_round_trip_every_type() -> None:
    dsl_types = [t for t in ALL_TYPES if not isinstance(t, (TimestampNTZType, NullType))]
    for data_type in dsl_types + [NESTED]:
        schema = _all_nullable(one(data_type))
        assert isinstance(schema, StructType)
        assert parse_schema(to_byzer_dsl(schema)) == schema, data_type


def _all_nullable(data_type: DataType) -> DataType:
    if isinstance(data_type, StructType):
        return StructType([StructField(f.name, _all_nullable(f.dataType), True) for f in data_type.fields])
    if isinstance(data_type, ArrayType):
        return ArrayType(_all_nullable(data_type.elementType), True)
    if isinstance(data_type, MapType):
        return MapType(data_type.keyType, _all_nullable(data_type.valueType), True)
    return data_type


def test_byzer_dsl_rejects_types_it_cannot_write() -> None:
    with pytest.raises(SchemaError, match="timestamp_ntz"):
        to_byzer_dsl(one(TimestampNTZType()))


def test_json_round_trip_from_struct_type_json() -> None:
    schema = StructType([StructField("id", LongType(), False, {"comment": "key"}), *NESTED.fields])
    assert parse_schema(schema.json()) == schema


def test_simple_type_string() -> None:
    assert simple_type_string(LongType()) == "long"
    assert simple_type_string(ArrayType(StringType())) == "array<string>"
    assert simple_type_string(DecimalType(10, 2)) == "decimal(10,2)"
    assert simple_type_string(MapType(StringType(), IntegerType())) == "map<string,integer>"
    assert simple_type_string(TimestampNTZType()) == "timestamp_ntz"
    assert simple_type_string(NESTED.fields[0].dataType) == "array<struct<name:string,age:integer>>"


def test_type_string_styles_read_back() -> None:
    schema = StructType(
        [
            StructField("id", LongType()),
            StructField("my col", ArrayType(DecimalType(5, 2))),
            StructField("1a", MapType(StringType(), IntegerType())),
            StructField("é", StructType([StructField("a`b", BooleanType())])),
        ]
    )
    readable = "struct<id:long,`my col`:array<decimal(5,2)>,1a:map<string,integer>,é:struct<`a``b`:boolean>>"
    dsl = "st(field(id,long),field(`my col`,array(decimal(5,2))),field(1a,map(string,integer)),field(é,st(field(`a``b`,boolean))))"
    # Top-level DDL names are quoted unless Spark's own DDL parser reads them bare (ASCII identifiers).
    ddl = "id long, `my col` array<decimal(5,2)>, `1a` map<string,integer>, `é` struct<`a``b`:boolean>"
    assert type_string(schema) == readable
    assert type_string(schema, "dsl") == dsl
    assert type_string(schema, "ddl") == ddl
    for text in (readable, dsl, ddl):
        assert parse_schema(text) == schema, text
    assert type_string(one(LongType(), "a\n"), "ddl") == "`a\n` long"
    assert type_string(LongType(), "ddl") == "long"


# --------------------------------------------------------------------------- errors


def test_unknown_type_suggests_closest() -> None:
    assert_parse_error("st(field(id,lon))", 12, "unknown type 'lon'; did you mean 'long'?")
    assert_parse_error("id strng", 3, "unknown type 'strng'; did you mean 'string'?")
    assert_parse_error("a array<bigitn>", 8, "did you mean 'bigint'?")
    error = assert_parse_error("a qqqqqq", 2, "unknown type 'qqqqqq'")
    assert "did you mean" not in error.description


def test_unknown_type_in_second_line() -> None:
    text = "st(\n  field(a,int),\n  field(b,dubble))"
    error = assert_parse_error(text, text.index("dubble"), "did you mean 'double'?")
    assert "  field(b,dubble))\n" in str(error)


def test_unbalanced_parentheses() -> None:
    assert_parse_error("st(field(id,long)", 17, "expected ')'")
    assert_parse_error("st(field(id,long),field(x,array(int))", 37, "expected ')'")
    assert_parse_error("st(field(id,long)))", 18, "unexpected ')'")


def test_trailing_garbage() -> None:
    assert_parse_error("st(field(id,long)) extra", 19, "unexpected 'extra'")
    assert_parse_error("struct<a:int> extra", 14, "unexpected 'extra'")
    assert_parse_error("a int;", 5, "unexpected character ';'")


def test_ddl_missing_comma() -> None:
    assert_parse_error("id long name string", 8, "expected ',' or end of schema but found 'name'")
    assert_parse_error("s struct<a int b int>", 15, "expected '>' or ','")


def test_faults_are_reported_in_text_order() -> None:
    # The parser checks a type name or a decimal only once it has read the next token;
    # a fault there still comes before a syntax error in that next token.
    assert_parse_error("id strng name string", 3, "unknown type 'strng'")
    assert_parse_error("a lon;", 2, "unknown type 'lon'")
    assert_parse_error("a decimal(39,2) b int", 10, "precision")
    assert_parse_error("`` int;", 0, "field name is empty")
    assert_parse_error("st(field(a,strin)", 11, "unknown type 'strin'")


def test_errors_name_what_this_place_expects() -> None:
    assert_parse_error("a int, b string>", 15, "expected ',' or end of schema but found '>'")
    assert_parse_error("a int notnull", 6, "expected ',' or end of schema but found 'notnull'")
    assert_parse_error("a array<int, b int>", 11, "expected '>' but found ','")
    assert_parse_error("m map<int>", 9, "expected ',' but found '>'")
    assert_parse_error("a decimal(12a)", 10, "expected a number but found '12a'")
    assert_parse_error("a int `b` long", 6, "expected ',' or end of schema but found '`b`'")
    assert_parse_error("`a``b int", 0, "unterminated backquoted name")
    assert_parse_error("st(field(a,struct<x:int>))", 11, "unknown type 'struct'")


def test_unterminated_angle_bracket() -> None:
    assert_parse_error("tags array<string", 17, "expected '>' but found end of schema")
    assert_parse_error("m map<string, int", 17, "expected '>'")
    assert_parse_error("tags array<string\n  ", 17, "expected '>'")


def test_empty_schema() -> None:
    assert_parse_error("", 0, "empty")
    assert_parse_error("   \n  ", 0, "empty")


def test_other_parse_errors() -> None:
    assert_parse_error("a decimal(39,2)", 10, "precision")
    assert_parse_error("a decimal(5,6)", 12, "scale")
    assert_parse_error("a int comment 'oops", 14, "unterminated string")
    assert_parse_error("`a int", 0, "unterminated backquoted name")
    assert_parse_error("a int not nul", 10, "expected NULL after NOT")
    assert_parse_error("a int comment oops", 14, "expected a quoted comment")
    assert_parse_error("st(fild(a,int))", 3, "expected 'field('")
    assert_parse_error("st(field(a int))", 11, "expected ','")
    assert_parse_error("a varchar", 9, "expected '('")
    assert_parse_error("`` int", 0, "field name is empty")
    assert_parse_error("a, b int", 1, "expected a type")


def test_invalid_json() -> None:
    text = '{"type": "struct", "fields": [}'
    assert_parse_error(text, text.index("}"), "invalid JSON")


def test_json_that_is_not_a_struct() -> None:
    with pytest.raises(SchemaError) as info:
        parse_schema('{"type": "array", "elementType": "long", "containsNull": true}')
    assert not isinstance(info.value, SchemaParseError)
    with pytest.raises(SchemaError, match="missing key 'fields'"):
        parse_schema('{"type": "struct"}')


def test_duplicate_field_names() -> None:
    duplicated_json = one(LongType(), "a").jsonValue()
    duplicated_json["fields"] *= 2
    for text in ["a int, b long, a string", "st(field(a,int),field(a,long))", "s struct<x:int, x:int>",
                 json.dumps(duplicated_json)]:  # fmt: skip
        with pytest.raises(SchemaError, match="duplicate field name '(a|x)'") as info:
            parse_schema(text)
        assert not isinstance(info.value, SchemaParseError)
    with pytest.raises(SchemaError, match="duplicate field name 'a'"):
        from_arrow_schema(pa.schema([pa.field("a", pa.int64()), pa.field("a", pa.string())]))


def test_not_a_schema() -> None:
    with pytest.raises(SchemaError, match="int"):
        parse_schema(42)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- no JVM


def test_parsing_does_not_start_a_jvm_in_a_fresh_interpreter() -> None:
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    result = run_python("no_jvm_child.py", [], env, timeout_s=300)
    assert result.returncode == 0, result.stderr
