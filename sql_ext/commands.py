"""Byzer's ``!`` commands: which ones spark-ray runs, which it refuses, and their arguments.

Byzer-lang calls them macros: ``!tableRepartition _ -i t -num 3 -o out;`` is
a word after ``!`` and arguments split at white space (a quoted string is one
argument). ``!python``, ``!ray`` and ``!desc`` have rules of their own in the
grammar; every other command is read here, from its arguments, into one of
the statements of statements.py, so that a wrong flag fails when the script is
parsed, not when the statement runs.

A command Byzer has but spark-ray does not run (``!hdfs``, ``!kill``, ...) is
refused with what to do instead; a name Byzer does not have either gets a
did-you-mean. Both errors list the commands spark-ray runs.

Example:
    >>> sorted(SUPPORTED)[:4]
    ['cache', 'desc', 'elif', 'else']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from spark_ray.errors import did_you_mean

from .statements import (
    Branch,
    CacheTable,
    Command,
    EmptyTable,
    LastTableName,
    Part,
    Println,
    PyInclude,
    Repartition,
    RunScriptText,
    Show,
    Span,
    Statement,
    UncacheTable,
)

__all__ = [
    "CACHE_LIFETIMES",
    "DOTTED_SCOPE",
    "REFUSED",
    "SHOW_TOPICS",
    "SUPPORTED",
    "build",
    "dotted_candidates",
    "supported_list",
]

# Raised (by the caller's factory) at a part of the command: (part, message) -> exception.
Fail = Callable[[Part, str], Exception]

# Every command spark-ray runs, with its form, as `!show commands` lists them.
SUPPORTED: dict[str, str] = {
    "python": '!python conf "k=v";  !python env "K=V";',
    "ray": "!ray on TABLE '''code''' named OUT [where k=\"v\" ...];",
    "desc": "!desc TABLE [json|st|ddl];",
    "if": "!if '''CONDITION''';  (Spark SQL; :name is variable name)",
    "elif": "!elif '''CONDITION''';",
    "then": "!then;  (optional, after !if / !elif)",
    "else": "!else;",
    "fi": "!fi;",
    "println": '!println "text with ${variables}";',
    "pyInclude": "!pyInclude project 'path/to/file.py' named T;  (then code='''py.T''')",
    "runScript": "!runScript '''script''' [named T];",
    "tableRepartition": "!tableRepartition _ -i TABLE -num N -o OUT [-cols a,b] [-type hash|range] [-shuffle false];",
    "emptyTable": "!emptyTable;  !emptyTable _ -i TABLE -o OUT;  !emptyTable TABLE named OUT;",
    "cache": "!cache TABLE [script|session|application];",
    "unCache": "!unCache TABLE;  (also !uncache)",
    "show": '!show tables [from DB];  !show functions;  !show "function/NAME";  !show commands;  !show version;',
    "lastTableName": "!lastTableName;  (sets ${__last_table_name__})",
}
_SPELLINGS = {name.lower(): name for name in SUPPORTED}

# Byzer commands spark-ray refuses, each with what to do instead.
_NO_FILES = "file system commands need Byzer's engine; use your shell, or Python in a !ray statement"
REFUSED: dict[str, str] = {
    "hdfs": _NO_FILES,
    "fs": _NO_FILES,
    "saveFile": "write the binary column from Python in a !ray statement, or `save` the table",
    "kill": "cancel Spark jobs from the Spark UI or spark.sparkContext.cancelJobGroup",
    "delta": "Delta Lake maintenance needs Byzer's engine; use Delta's own SQL (select ... as t) or API",
    "deltaTable": "Delta Lake maintenance needs Byzer's engine; use Delta's own SQL or API",
    "assert": "check the condition with !if ... !fi, or in SQL",
    "lastCommand": "commands here print their results; make a table with select instead",
    "profiler": "run the SQL with select, or spark.sql(...).explain() from Python",
    "plugin": "Byzer plugins need Byzer's engine",
    "resource": "size Spark with --conf spark.executor.* and Ray with local_ray_cpus / ray_address",
    "createPythonEnv": "create the conda env yourself; spark-ray runs the Python it is installed in",
    "removePythonEnv": "remove the conda env yourself",
    "model": "Byzer's model registry needs Byzer's engine",
    "kafkaTool": "Kafka tooling needs Byzer's engine",
    "callback": "Byzer's event callbacks need Byzer's engine",
    "scheduler": "Byzer's scheduler needs Byzer's engine; run scripts from cron or Airflow with spark-ray run",
    "sh": "shell commands are not run from scripts",
    "byzerllm": "Byzer-LLM needs Byzer's engine",
    "loadExcel": "read Excel from Python in a !ray statement (pandas.read_excel)",
}
_REFUSED_SPELLINGS = {name.lower(): name for name in REFUSED}

CACHE_LIFETIMES = ("script", "session", "application")
# `local` (a module of a Byzer library) parses, so an untaken !if branch may hold it, and fails if run.
PY_INCLUDE_SCOPES = ("project", "local")
# The scope of MLSQL's `!pyInclude folder.file.py named T;`, which names none (see dotted_candidates).
DOTTED_SCOPE = "dotted"
SHOW_TOPICS = ("tables", "functions", "function", "commands", "version")
REPARTITION_FLAGS = ("i", "num", "o", "cols", "type", "shuffle")
REPARTITION_TYPES = ("hash", "range")


def supported_list() -> str:
    """The supported commands, for error messages: ``!python, !ray, ...``."""
    return ", ".join(f"!{name}" for name in SUPPORTED)


def build(command: Command, fail: Fail) -> Statement:
    """The statement a ``!`` command stands for, or ``raise fail(part, message)`` at the part at fault."""
    written = command.name.text
    name = _SPELLINGS.get(written.lower())
    if name is None:
        refused = _REFUSED_SPELLINGS.get(written.lower())
        if refused is not None:
            raise fail(
                command.name,
                f"!{refused} is a Byzer command spark-ray does not run: {REFUSED[refused]}. "
                f"spark-ray runs: {supported_list()}",
            )
        hint = did_you_mean("!" + written, [f"!{known}" for known in SUPPORTED])
        raise fail(command.name, f"unknown command '!{written}'.{hint} spark-ray runs: {supported_list()}")
    fields = _fields(command)
    args = list(command.args)
    if name in ("if", "elif"):
        (condition,) = _exactly(command, args, 1, f"one condition: !{name} ''' :x == \"v\" ''';", fail)
        return Branch(**fields, word=name, condition=condition)
    if name in ("then", "else", "fi"):
        _exactly(command, args, 0, f"nothing: !{name};", fail)
        return Branch(**fields, word=name)
    if name == "println":
        if not args:
            raise fail(command.name, '!println needs the text to print: !println "text";')
        return Println(**fields, text=_joined(args))
    if name == "pyInclude":
        return _py_include(command, args, fields, fail)
    if name == "runScript":
        script, table = _named(command, args, fail, "!runScript '''script''' [named T];", optional_name=True)
        return RunScriptText(**fields, script=script, table=table)
    if name == "tableRepartition":
        return _repartition(command, args, fields, fail)
    if name == "emptyTable":
        return _empty_table(command, args, fields, fail)
    if name == "cache":
        if not 1 <= len(args) <= 2:
            raise fail(command.name, f"!cache takes a table and an optional lifetime: {SUPPORTED['cache']}")
        lifetime = _choice(args[1], CACHE_LIFETIMES, "cache lifetime", fail) if len(args) == 2 else None
        return CacheTable(**fields, table=args[0], lifetime=lifetime)
    if name == "unCache":
        (table,) = _exactly(command, args, 1, "a table: !unCache TABLE;", fail)
        return UncacheTable(**fields, table=table)
    if name == "show":
        return _show(command, args, fields, fail)
    if name == "lastTableName":
        _exactly(command, args, 0, "nothing: !lastTableName;", fail)
        return LastTableName(**fields)
    raise AssertionError(f"!{name} is listed as supported but has no builder")  # pragma: no cover


# ---------------------------------------------------------------------- the commands


def _py_include(command: Command, args: list[Part], fields: dict[str, Any], fail: Fail) -> Statement:
    usage = "!pyInclude project 'path/to/file.py' named T;  (MLSQL's form: !pyInclude folder.file.py named T;)"
    if not args:
        raise fail(command.name, f"!pyInclude needs a file and a table name: {usage}")
    first = args[0]
    if first.text.lower() not in PY_INCLUDE_SCOPES and "." in first.text:
        # MLSQL's form: a dotted path, no scope (`!pyInclude python-example.test.py named t;`).
        path, table = _named(command, args, fail, usage, optional_name=False)
        assert table is not None
        return PyInclude(**fields, scope=Part(DOTTED_SCOPE, first.span, first.quoted), path=path, table=table)
    scope = _choice(first, PY_INCLUDE_SCOPES, "!pyInclude scope (project: a file of your project)", fail)
    path, table = _named(command, args[1:], fail, usage, optional_name=False, after=scope)
    assert table is not None
    return PyInclude(**fields, scope=scope, path=path, table=table)


def dotted_candidates(dotted: str) -> list[str]:
    """The files MLSQL's ``!pyInclude a.b.file.py`` may mean, in the order they are tried.

    MLSQL's console keeps scripts in folders and names them with dots: every
    dot but the last separates folders (``python-example.test.py`` is
    ``python-example/test.py``). A file whose own name holds dots is tried
    next, one folder level fewer at a time, and last the name as written.

    Example:
        >>> dotted_candidates("python-example.test.py")
        ['python-example/test.py', 'python-example.test.py']
        >>> dotted_candidates("algs.linear.fit.py")
        ['algs/linear/fit.py', 'algs/linear.fit.py', 'algs.linear.fit.py']
    """
    pieces = dotted.split(".")
    if len(pieces) < 2:
        return [dotted]
    *names, extension = pieces
    found: list[str] = []
    for folders in range(len(names) - 1, -1, -1):
        candidate = "/".join([*names[:folders], ".".join(names[folders:]) + "." + extension])
        if candidate not in found:
            found.append(candidate)
    return found


def _repartition(command: Command, args: list[Part], fields: dict[str, Any], fail: Fail) -> Statement:
    usage = SUPPORTED["tableRepartition"]
    if args and args[0].text == "_" and not args[0].quoted:
        args = args[1:]  # Byzer's placeholder for the command's unused positional argument
    flags = _flags(command, args, REPARTITION_FLAGS, "!tableRepartition", usage, fail)
    missing = [f"-{flag}" for flag in ("i", "num", "o") if flag not in flags]
    if missing:
        raise fail(command.name, f"!tableRepartition needs {', '.join(missing)}: {usage}")
    number = flags["num"]
    if "${" not in number.text and not (number.text.isdigit() and int(number.text) > 0):
        raise fail(number, f"-num must be a whole number of partitions, at least 1; got {number.text!r}")
    kind = _choice(flags["type"], REPARTITION_TYPES, "partition type", fail) if "type" in flags else None
    if kind is not None and kind.text == "range" and "cols" not in flags:
        raise fail(kind, "-type range partitions by columns: add -cols a,b")
    shuffle = flags.get("shuffle")
    if shuffle is not None:
        shuffle = _choice(shuffle, ("true", "false"), "-shuffle value", fail)
        if shuffle.text == "false" and ("cols" in flags or kind is not None):
            raise fail(shuffle, "-shuffle false only merges partitions (coalesce); it cannot use -cols or -type")
    return Repartition(
        **fields,
        table=flags["i"],
        partitions=number,
        output=flags["o"],
        columns=flags.get("cols"),
        kind=kind,
        shuffle=shuffle,
    )


def _empty_table(command: Command, args: list[Part], fields: dict[str, Any], fail: Fail) -> Statement:
    if not args:
        return EmptyTable(**fields)
    usage = SUPPORTED["emptyTable"]
    if args[0].text == "_" and not args[0].quoted:
        flags = _flags(command, args[1:], ("i", "o"), "!emptyTable", usage, fail)
        if set(flags) != {"i", "o"}:
            raise fail(command.name, f"!emptyTable _ needs -i TABLE and -o OUT: {usage}")
        return EmptyTable(**fields, table=flags["i"], output=flags["o"])
    table, output = _named(command, args, fail, usage, optional_name=False)
    return EmptyTable(**fields, table=table, output=output)


def _show(command: Command, args: list[Part], fields: dict[str, Any], fail: Fail) -> Statement:
    usage = SUPPORTED["show"]
    if not args:
        raise fail(command.name, f"!show needs what to show: {usage}")
    topic_part = args[0]
    topic, _, rest = topic_part.text.partition("/")
    known = _choice(_sub(topic_part, 0, len(topic)), SHOW_TOPICS, "!show topic", fail).text
    if known == "function":
        if len(args) != 1 or not rest:
            raise fail(topic_part, f'!show "function/NAME" names one function: {usage}')
        return Show(**fields, topic=known, argument=_sub(topic_part, len(topic) + 1, len(topic_part.text)))
    if rest:
        raise fail(topic_part, f"!show {known} takes no /PART: {usage}")
    if known == "tables":
        if len(args) == 1:
            return Show(**fields, topic=known)
        if len(args) == 3 and args[1].text.lower() in ("from", "in"):
            return Show(**fields, topic=known, argument=args[2])
        raise fail(args[1], f"!show tables takes an optional `from DATABASE`: {usage}")
    if len(args) != 1:
        raise fail(args[1], f"!show {known} takes nothing more: {usage}")
    return Show(**fields, topic=known)


# ---------------------------------------------------------------------- argument helpers


def _fields(command: Command) -> dict[str, Any]:
    return {"line": command.line, "column": command.column, "source": command.source, "span": command.span}


def _exactly(command: Command, args: Sequence[Part], count: int, wanted: str, fail: Fail) -> Sequence[Part]:
    if len(args) != count:
        at = args[count] if len(args) > count else command.name
        raise fail(at, f"!{command.name.text} takes {wanted}")
    return args


def _named(
    command: Command,
    args: list[Part],
    fail: Fail,
    usage: str,
    *,
    optional_name: bool,
    after: Part | None = None,
) -> tuple[Part, Part | None]:
    """``VALUE named NAME`` (Byzer also accepts ``VALUE NAME``); the name may be optional."""
    if not args:
        raise fail(after or command.name, f"!{command.name.text} needs more: {usage}")
    value, rest = args[0], args[1:]
    if rest and rest[0].text.lower() == "named" and not rest[0].quoted:
        rest = rest[1:]
        if not rest:
            raise fail(args[1], f"a name must follow `named`: {usage}")
    if len(rest) > 1:
        raise fail(rest[1], f"unexpected {rest[1].text!r}: {usage}")
    if not rest and not optional_name:
        raise fail(value, f"!{command.name.text} needs `named NAME`: {usage}")
    return value, (rest[0] if rest else None)


def _flags(
    command: Command, args: list[Part], known: tuple[str, ...], what: str, usage: str, fail: Fail
) -> dict[str, Part]:
    """``-flag value`` pairs, each flag known and given once."""
    found: dict[str, Part] = {}
    index = 0
    while index < len(args):
        flag = args[index]
        if flag.quoted or not flag.text.startswith("-") or len(flag.text) < 2:
            raise fail(flag, f"expected a -flag here, got {flag.text!r}: {usage}")
        name = flag.text[1:]
        if name not in known:
            hint = did_you_mean(flag.text, [f"-{k}" for k in known])
            raise fail(flag, f"{what} has no flag {flag.text!r}.{hint} Its flags: {', '.join('-' + k for k in known)}")
        if name in found:
            raise fail(flag, f"{flag.text} is given twice")
        if index + 1 >= len(args):
            raise fail(flag, f"{flag.text} needs a value: {usage}")
        found[name] = args[index + 1]
        index += 2
    return found


def _choice(part: Part, choices: tuple[str, ...], what: str, fail: Fail) -> Part:
    for choice in choices:
        if part.text.lower() == choice.lower():
            return Part(choice, part.span, part.quoted)
    hint = did_you_mean(part.text, choices)
    raise fail(part, f"unknown {what} {part.text!r}.{hint} Known: {', '.join(choices)}")


def _sub(part: Part, start: int, end: int) -> Part:
    """Characters ``start:end`` of an unquoted argument, with their own place in the script."""
    span = Span(part.span.start + start, part.span.start + end, part.span.line, part.span.column + start)
    return Part(part.text[start:end], span, part.quoted)


def _joined(args: list[Part]) -> Part:
    """Several arguments as one text (``!println a b`` prints ``a b``), spanning all of them."""
    if len(args) == 1:
        return args[0]
    first, last = args[0], args[-1]
    span = Span(first.span.start, last.span.end, first.span.line, first.span.column)
    return Part(" ".join(arg.text for arg in args), span, any(arg.quoted for arg in args))
