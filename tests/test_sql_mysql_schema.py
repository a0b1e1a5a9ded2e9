"""Byzer's third schema form, MySQL's CREATE TABLE, as `!python conf "schema=..."` takes it.

Pure parsing (no Spark session): the types each MySQL name maps to, what is read
and ignored, and errors that point at the character at fault.
"""

from __future__ import annotations

import pytest
from pyspark.sql.types import (
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
    ShortType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from spark_ray.errors import SchemaParseError
from spark_ray.schema import parse_schema


def column_type(mysql_type: str) -> DataType:
    (field,) = parse_schema(f"CREATE TABLE t (c {mysql_type})").fields
    return field.dataType


def test_byzers_example():
    assert parse_schema("CREATE TABLE t1 (c1 INT, c2 INT) ENGINE NDB") == StructType(
        [StructField("c1", IntegerType()), StructField("c2", IntegerType())]
    )


@pytest.mark.parametrize(
    "mysql_type, spark_type",
    [
        ("INT", IntegerType()),
        ("int(11)", IntegerType()),
        ("INTEGER UNSIGNED", LongType()),
        ("BIGINT", LongType()),
        ("BIGINT(20) UNSIGNED ZEROFILL", DecimalType(20, 0)),
        ("TINYINT", ByteType()),
        ("TINYINT(1)", ByteType()),
        ("SMALLINT", ShortType()),
        ("MEDIUMINT", IntegerType()),
        ("BOOLEAN", BooleanType()),
        ("BOOL", BooleanType()),
        ("BIT(1)", BooleanType()),
        ("BIT(8)", LongType()),
        ("FLOAT", FloatType()),
        ("FLOAT(30)", DoubleType()),
        ("DOUBLE", DoubleType()),
        ("DOUBLE PRECISION", DoubleType()),
        ("REAL", DoubleType()),
        ("DECIMAL", DecimalType(10, 0)),
        ("DECIMAL(12,4)", DecimalType(12, 4)),
        ("NUMERIC(5)", DecimalType(5, 0)),
        ("VARCHAR(255)", StringType()),
        ("CHAR(3)", StringType()),
        ("TEXT", StringType()),
        ("LONGTEXT", StringType()),
        ("ENUM('a','b')", StringType()),
        ("SET('x')", StringType()),
        ("JSON", StringType()),
        ("DATETIME", TimestampType()),
        ("DATETIME(3)", TimestampType()),
        ("TIMESTAMP", TimestampType()),
        ("DATE", DateType()),
        ("TIME", StringType()),
        ("YEAR", IntegerType()),
        ("BLOB", BinaryType()),
        ("VARBINARY(16)", BinaryType()),
    ],
)
def test_mysql_types_map_to_spark_types(mysql_type, spark_type):
    assert column_type(mysql_type) == spark_type


def test_names_indexes_attributes_and_table_options_are_read_and_ignored():
    text = """create temporary table if not exists shop.`order items` (
      `id` BIGINT NOT NULL AUTO_INCREMENT COMMENT 'the key',
      name VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin DEFAULT NULL,
      price DECIMAL(10,2) NOT NULL DEFAULT '0.00',
      stock INT DEFAULT -1,
      ratio DOUBLE DEFAULT 1.5e0,
      updated DATETIME DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP(3),
      PRIMARY KEY (`id`),
      UNIQUE KEY uniq_name (name(10)),
      KEY idx_updated (updated),
      CONSTRAINT positive UNIQUE INDEX (stock)
    ) ENGINE=InnoDB AUTO_INCREMENT=17 DEFAULT CHARSET=utf8mb4 COMMENT='orders';"""
    assert parse_schema(text) == StructType(
        [
            StructField("id", LongType(), False, {"comment": "the key"}),
            StructField("name", StringType()),
            StructField("price", DecimalType(10, 2), False),
            StructField("stock", IntegerType()),
            StructField("ratio", DoubleType()),
            StructField("updated", TimestampType()),
        ]
    )


def test_other_forms_are_unchanged():
    assert parse_schema("create long, table string").names == ["create", "table"]  # DDL: columns so named
    assert parse_schema("st(field(create,long))").names == ["create"]


@pytest.mark.parametrize(
    "text, position, words",
    [
        ("CREATE TABLE t (a INT, b VARCHR(3))", 25, "unknown MySQL type 'VARCHR'; did you mean 'varchar'?"),
        ("CREATE TABLE t (a DECIMAL(50,2))", 26, "decimal precision must be between 1 and 38"),
        ("CREATE TABLE t (a INT b INT)", 22, "expected ',' or ')' after the column"),
        ("CREATE TABLE t (a INT) ENGINE=", 30, "expected a value"),
        ("CREATE TABLE t (a INT) ENGINE=x (", 32, "expected a table option (ENGINE=...) or end of schema"),
        ("CREATE TABLE t (a ENUM(1))", 23, "ENUM takes quoted values"),
        ("CREATE TABLE t (a INT('x'))", 22, "only ENUM and SET take quoted values"),
        ("CREATE TABLE t (a INT NOT x)", 26, "expected NULL after NOT"),
        ("CREATE TABLE t (a INT, a TEXT)", None, "duplicate field name 'a'"),
    ],
)
def test_errors_point_at_the_fault(text, position, words):
    with pytest.raises(Exception) as caught:
        parse_schema(text)
    assert words in str(caught.value)
    if position is not None:
        assert isinstance(caught.value, SchemaParseError)
        assert caught.value.position == position
        assert caught.value.text == text
