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


@dataclass(frozen=True, kw_only=True)
class Include(Statement):
    """``include project.`PATH`;``: run another script file here, as if its text stood in its place.

    ``kind`` is ``project``, or Byzer's ``lib``/``local`` (its library manager), refused when they run.
    """

    kind: Part
    path: Part
    options: tuple[Option, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Register(Statement):
    """``register Ray.`` as NAME where code='''...''' [and schema="..."] [and k="v" ...];``"""

    et: Part
    path: Part
    name: Part
    options: tuple[Option, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Command(Statement):
    """A ``!`` command other than ``!python``, ``!ray`` and ``!desc``: its name (without ``!``) and arguments.

    Arguments are split as Byzer splits them: at white space, a quoted string
    being one argument whatever it holds (its quotes removed, ``quoted`` set).
    ``name``'s span covers the ``!`` too, so errors underline ``!name``. The
    parser turns a known command into one of the statements below.
    """

    name: Part
    args: tuple[Part, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Repartition(Statement):
    """``!tableRepartition _ -i TABLE -num N -o OUT [-cols a,b] [-type hash|range] [-shuffle false];``"""

    table: Part
    partitions: Part
    output: Part
    columns: Part | None = None
    kind: Part | None = None
    shuffle: Part | None = None


@dataclass(frozen=True, kw_only=True)
class EmptyTable(Statement):
    """``!emptyTable;`` (show nothing at the end), or ``!emptyTable _ -i T -o OUT;`` / ``!emptyTable T named OUT;``."""

    table: Part | None = None
    output: Part | None = None


@dataclass(frozen=True, kw_only=True)
class CacheTable(Statement):
    """``!cache TABLE [script|session|application];`` (lifetime None: script)."""

    table: Part
    lifetime: Part | None = None


@dataclass(frozen=True, kw_only=True)
class UncacheTable(Statement):
    """``!unCache TABLE;`` (also ``!uncache``)."""

    table: Part


@dataclass(frozen=True, kw_only=True)
class Show(Statement):
    """``!show tables [from DB];``, ``!show functions;``, ``!show "function/NAME";``, ``!show commands;``, ``!show version;``."""

    topic: str
    argument: Part | None = None


@dataclass(frozen=True, kw_only=True)
class Branch(Statement):
    """``!if '''COND''';``, ``!elif '''COND''';``, ``!then;``, ``!else;``, ``!fi;``: ``word`` says which.

    ``condition`` is set for ``if`` and ``elif``.
    """

    word: str
    condition: Part | None = None


@dataclass(frozen=True, kw_only=True)
class Println(Statement):
    """``!println "text";``: prints the text, with ``${name}`` substituted."""

    text: Part


@dataclass(frozen=True, kw_only=True)
class PyInclude(Statement):
    """``!pyInclude project 'PATH.py' named T;``: table T holds the file's text, for ``code='''py.T'''``.

    ``scope`` is ``project`` or Byzer's ``local`` (a library module), which is refused when it runs.
    """

    scope: Part
    path: Part
    table: Part


@dataclass(frozen=True, kw_only=True)
class RunScriptText(Statement):
    """``!runScript '''SCRIPT''' [named T];``: run the text as a script here; T names the last table it made."""

    script: Part
    table: Part | None = None


@dataclass(frozen=True, kw_only=True)
class LastTableName(Statement):
    """``!lastTableName;``: sets ``${__last_table_name__}`` to the name of the table made last."""


@dataclass(frozen=True, kw_only=True)
class PythonCell(Statement):
    """A Byzer Notebook Python cell: ``#%key=value`` header lines, then Python code.

    ``settings`` are the header lines (``input``, ``output``, ``schema``, ``runIn``,
    ``dataMode``/``mode``, ``cache``, ``env``, ...) and ``code`` the whole text,
    header lines included (they are Python comments), so that a line number of
    the code is the line number in the file.
    """

    kind: Part
    settings: tuple[Option, ...]
    code: Part
