"""The child of test_schema.py: parsing and converting schemas in a fresh interpreter starts no JVM.

Exits non-zero (with the reason) when a schema does not parse as expected or a SparkContext appeared.
"""

from __future__ import annotations

from pyspark import SparkContext

from spark_ray.errors import SchemaParseError
from spark_ray.schema import parse_schema, to_arrow_schema


def main() -> None:
    schema = parse_schema("st(field(id,long),field(tags,array(string)))")
    parse_schema("id long NOT NULL, m map<string, array<int>>")
    parse_schema(schema.json())
    to_arrow_schema(schema)
    try:
        parse_schema("st(field(id,lon))")
    except SchemaParseError:
        pass
    else:
        raise SystemExit("st(field(id,lon)) parsed")
    if SparkContext._active_spark_context is not None or SparkContext._gateway is not None:
        raise SystemExit("parsing started a JVM")


if __name__ == "__main__":
    main()
