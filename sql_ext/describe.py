"""``!desc T``: a table's schema, readable or in a form ``schema=`` accepts; and ``!show``'s tables.

``!desc T json`` prints ``StructType.json()``, which ``!python conf '''schema=...'''``
and ``ray_transform(schema=...)`` take back unchanged; ``st`` prints Byzer's
``st(field(...))`` and ``ddl`` (or Byzer's ``string``) a DDL string. Without a
style the columns are listed one per line, like Spark's ``DESCRIBE``.

Example:
    >>> from pyspark.sql.types import StructType
    >>> print(describe_schema(StructType.fromJson({"type": "struct", "fields": [
    ...     {"name": "id", "type": "long", "nullable": True, "metadata": {}}]}), "st"))
    st(field(id,long))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pyspark.sql.types import StructType

from spark_ray.schema_text import type_string


def readable(schema: StructType) -> str:
    """One line per column: name, type, nullable, aligned."""
    rows = [("col_name", "data_type", "nullable")]
    rows += [(field.name, type_string(field.dataType), str(field.nullable).lower()) for field in schema.fields]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    return "\n".join(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]}".rstrip() for row in rows)


def describe_schema(schema: StructType, style: str | None) -> str:
    """The text ``!desc`` prints for ``style`` (None, "json", "st", "ddl" or "string")."""
    if style == "json":
        return schema.json()
    if style == "st":
        return type_string(schema, "dsl")
    if style in ("ddl", "string"):
        return type_string(schema, "ddl")
    return readable(schema)


def text_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Rows as aligned text columns under a header, as ``!show`` prints them.

    Example:
        >>> print(text_table(("name", "kind"), [("t", "view"), ("orders", "table")]))
        name    kind
        t       view
        orders  table
    """
    table = [list(header), *map(list, rows)]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    lines = ["  ".join(f"{str(cell):<{width}}" for cell, width in zip(row, widths)).rstrip() for row in table]
    return "\n".join(lines)
