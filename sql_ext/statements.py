"""One small frozen dataclass per statement of a Byzer-style script.

The parser builds these from the source text; the runner executes them. Every
statement keeps where it starts (``line``, ``column``, 1-based as editors count)
and its own source text, and every part that an error may point at (a name, a
path, an option key, a code string) is a :class:`Part` with its own span, so a
failure hours later can still underline the exact characters that caused it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """Where some text sits in the script.

    Attributes:
        start, end: 0-based character offsets into the script (end exclusive).
        line, column: 1-based position of ``start``.
    """

    start: int
    end: int
    line: int
    column: int


@dataclass(frozen=True)
class Part:
    """A piece of a statement: its value as the runner uses it, and its span.

    Attributes:
        text: the value with quotes removed (``'''x'''`` gives ``x``);
            ``${name}`` references are still in it, substituted at run time.
        span: the characters of the value itself, inside any quotes.
        quoted: True when it was written as a string or backquoted.
    """

    text: str
    span: Span
    quoted: bool = False


@dataclass(frozen=True)
class Option:
    """``key="value"`` in a ``where`` clause."""

    key: Part
    value: Part


@dataclass(frozen=True, kw_only=True)
class Statement:
    """What every statement has: its position and its source text (without the ``;``)."""

    line: int
    column: int
    source: str
    span: Span


@dataclass(frozen=True, kw_only=True)
class SetVariable(Statement):
    """``set name='''value''' [where type="text"];``"""

    name: Part
    value: Part
    options: tuple[Option, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Load(Statement):
    """``load FORMAT.`PATH_OR_VAR` [where k="v" ...] as TABLE;``"""

    format: Part
    path: Part
    options: tuple[Option, ...]
    table: Part


@dataclass(frozen=True, kw_only=True)
class Select(Statement):
    """``select ... as TABLE;``: ``sql`` is the query as written, from ``select`` up to the final ``as``."""

    sql: Part
    table: Part


@dataclass(frozen=True, kw_only=True)
class Save(Statement):
    """``save [MODE] TABLE as FORMAT.`PATH` [where k="v" ...];`` (mode None: Spark's default)."""

    mode: Part | None
    table: Part
    format: Part
    path: Part
    options: tuple[Option, ...]


@dataclass(frozen=True, kw_only=True)
class PythonSetting(Statement):
    """``!python conf "k=v";`` or ``!python env "K=V";``: ``scope`` is "conf" or "env"."""

    scope: Part
    setting: Part


@dataclass(frozen=True, kw_only=True)
class RayOn(Statement):
    """``!ray on TABLE '''code''' named OUT [where k="v" ...];``"""

    table: Part
    code: Part
    output: Part
    options: tuple[Option, ...] = ()


@dataclass(frozen=True, kw_only=True)
class RunCommand(Statement):
    """``run command as Ray.`` where inputTable="T" and outputTable="OUT" and code='''...''';``

    ``target`` is the word after ``run`` (``command`` in Byzer's scripts) and
    ``et`` the name before the dot (``Ray``).
    """

    target: Part
    et: Part
    path: Part
    options: tuple[Option, ...]


@dataclass(frozen=True, kw_only=True)
class Describe(Statement):
    """``!desc TABLE [json];``: ``style`` None prints a readable table of columns."""

    table: Part
    style: Part | None
