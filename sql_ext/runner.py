"""Running Byzer-style scripts on a SparkSession.

``run_script(spark, text)`` parses the whole script, checks what can be checked
without running anything (option names, closed choices), then runs the
statements in order. Tables are Spark temp views, so ``select`` sees what
``load`` and ``!ray`` made, and so does any later ``spark.sql``.

A :class:`ScriptSession` belongs to one SparkSession and outlives a script, the
way a Byzer session does: ``!python conf`` settings go to
``spark_ray.set_session_conf`` and stay in force for later statements and
later scripts, and variables stay set. Per-statement ``where`` keys of ``!ray``
and ``run command as Ray`` override the session for that statement only.

Beyond the data statements, scripts written from Byzer's docs use its control
and project statements: ``!if``/``!elif``/``!else``/``!fi`` (conditions run
as Spark SQL, see conditions.py), ``include project.`file```, ``!pyInclude``
with ``code='''py.T'''``, ``!tableRepartition``, ``!cache``, ``!show``,
``register Ray.``...`` and Byzer Notebook's Python cells (notebook.py).
Project paths are relative to ``base_dir``, the script's folder.

Every failure becomes a :class:`~sql_ext.errors.ScriptError` that names the
line and column, quotes the statement and underlines the characters at fault;
the original error is its ``__cause__``.

For example, with a SparkSession ``spark`` (tests/test_sql_statements.py runs this)::

    tables = run_script(spark, "select 1 as id as t;")
    tables["t"].collect()  # [Row(id=1)]
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, TypeVar

from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType

import spark_ray
from spark_ray import clear_session_conf, get_session_conf, ray_transform, set_session_conf
from spark_ray.conf import canonical_name, resolve_conf
from spark_ray.environment import exported_pair
from spark_ray.errors import ConfigError, SchemaParseError, SparkRayError, UserCodeError, did_you_mean
from spark_ray.schema import parse_schema
from spark_ray.schema_text import type_string
from spark_ray.spark_compat import spark_error_message, sql_error_spans

from . import conditions, notebook, script_conf, sources
from .commands import DOTTED_SCOPE, SUPPORTED, dotted_candidates
from .describe import describe_schema, text_table
from .errors import ScriptError, script_error
from .parser import choose, parse_script
from .statements import (
    Branch,
    CacheTable,
    Describe,
    EmptyTable,
    Include,
    LastTableName,
    Load,
    Option,
    Part,
    Println,
    PyInclude,
    PythonCell,
    PythonSetting,
    RayOn,
    Register,
    Repartition,
    RunCommand,
    RunScriptText,
    Save,
    Select,
    SetVariable,
    Show,
    Span,
    Statement,
    UncacheTable,
)
from .variables import UnknownVariable, substitute

__all__ = ["FILE_SCHEMA", "ScriptRun", "ScriptSession", "ShownTable", "check_script", "run_script"]

T = TypeVar("T")
# Called before each statement runs, with its 0-based index and the statement count.
StatementListener = Callable[[Statement, int, int], None]

SET_TYPES = ("text", "sql", "defaultParam", "conf")
# The keys of `run command as Ray` that are not ray_transform options.
RUN_KEYS = ("inputTable", "outputTable", "code")
# Script-level settings: `!python conf "cache=true"`, `where cache="true"`, `#%cache=true`.
# Not ray_transform options: the runner caches the output DataFrame, or not (Byzer's default: not).
SCRIPT_KEYS = ("cache",)
# The keys of `register Ray.`` as f where ...` that are not ray_transform options.
REGISTER_KEYS = ("code", "schema")
DISPLAY_TABLE = "output"  # Byzer's convention: `select ... as output` is what the user sees
# Byzer's built-in empty table: `run command as Ray.`` where inputTable="command"` reads nothing.
COMMAND_TABLE = "command"
# What Byzer's `schema=file` stands for: a directory as rows of a tar stream (pyjava.storage.streaming_tar).
FILE_SCHEMA = "st(field(start,long),field(offset,long),field(value,binary))"
# Set by `!lastTableName;`.
LAST_TABLE_VARIABLE = "__last_table_name__"
# code='''py.T''': the Python file `!pyInclude ... named T` read.
_PY_TABLE = re.compile(r"py\.([^\W\d]\w*)")
_BOOLEANS = {"true": True, "false": False}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# A frame of a code string in a traceback (see spark_ray.code_string.code_filename).
_CODE_FRAME = re.compile(r'File "<ray_transform code [0-9a-f]{8}>", line (\d+)')
_SPARK_PARSE_POSITION = re.compile(r"\(line (\d+), pos (\d+)\)")


class ShownTable(NamedTuple):
    """A table the script marks for display, and the statement that made it (errors point there)."""

    name: str
    df: DataFrame
    statement: Statement


@dataclass
class ScriptRun:
    """What one script made.

    Attributes:
        tables: every table the script made, by name, in the order made.
        shown: the tables the script marks for display: each ``... as output``
            when made, else the last table made.
    """

    tables: dict[str, DataFrame] = field(default_factory=dict)
    shown: list[ShownTable] = field(default_factory=list)


class Writer(Protocol):
    """Where ``!desc`` prints: anything with ``write(str)``."""

    def write(self, text: str, /) -> Any: ...


class _Blame(Exception):
    """Raised by a statement handler: the failure belongs to ``script[start:end]``."""

    def __init__(self, start: int, end: int, description: str) -> None:
        super().__init__(description)
        self.start = start
        self.end = end
        self.description = description

    @classmethod
    def part(cls, part: Part, description: str) -> _Blame:
        return cls(part.span.start, part.span.end, description)


def check_script(text: str) -> list[Statement]:
    """Parse ``text`` and check what needs no Spark: option and setting names, ``!if`` blocks.

    The command line calls this before it starts a JVM, so a misspelt option
    costs a second. A text whose first line is a ``#%`` line is a Byzer
    Notebook Python cell (notebook.py), anything else a script.

    Raises:
        ScriptError: at the first problem.
    """
    if notebook.is_python_cell(text):
        return [notebook.parse_python_cell(text)]
    statements = parse_script(text)
    for statement in statements:
        try:
            _check(statement)
        except _Blame as blame:
            raise script_error(
                text, blame.start, blame.end, blame.description, statement.span.start, statement.span.end
            ) from None
    _check_branches(text, statements)
    return statements


def _check(statement: Statement) -> None:
    # `!python conf`, `!ray ... where` and `run command as Ray where` take any key, as in Byzer: a key
    # that is no option goes to the code's context.conf, with a warning when it runs (script_conf.py).
    if isinstance(statement, Register):
        _check_register(statement)


def _check_register(statement: Register) -> None:
    if statement.path.text.strip():
        raise _Blame.part(
            statement.path,
            "register Ray.`...` here registers a table function from code=, with no model table: "
            "write register Ray.`` as NAME where code='''...''' and schema=\"...\"",
        )
    for option in statement.options:
        key = option.key.text.lower()
        if key in ("registercode", "predictcode"):
            raise _Blame.part(
                option.key,
                f"{option.key.text} deploys a Byzer model UDF; spark-ray registers a table function "
                "(SELECT * FROM NAME(TABLE(t))) from code='''...''' and schema=\"...\"",
            )
        if key not in REGISTER_KEYS:
            _option_name(option, also=REGISTER_KEYS)
    if "code" not in [option.key.text.lower() for option in statement.options]:
        start, end = _first_line(statement)
        raise _Blame(start, end, "register Ray.`` needs code='''...''' (and schema=\"...\" or a session schema)")


def _library_refusal(statement: Statement) -> tuple[Part, str] | None:
    """Byzer's library includes (``include lib.``, ``include local.``, ``!pyInclude local``): the part and why not."""
    if isinstance(statement, Include) and statement.kind.text != "project":
        return statement.kind, (
            f"include {statement.kind.text}.`...` reads a Byzer library module, which needs Byzer's library "
            "manager; spark-ray includes files of your project: include project.`path/to/script.byzer`;"
        )
    if isinstance(statement, PyInclude) and statement.scope.text == "local":
        return statement.scope, (
            "!pyInclude local reads a module of a Byzer library (lib-core), which needs Byzer's library manager; "
            "copy the file into your project and write !pyInclude project 'path/to/file.py' named T;"
        )
    return None


def _is_script_key(key: str) -> bool:
    return key.strip().lower() in (k.lower() for k in SCRIPT_KEYS)


def _check_branches(text: str, statements: list[Statement]) -> None:
    """Every ``!if`` has its ``!fi``; ``!elif``, ``!then``, ``!else`` and ``!fi`` stand inside one."""
    open_ifs: list[tuple[Branch, bool]] = []  # (the !if, whether its !else was seen)

    def fail(statement: Statement, description: str) -> ScriptError:
        start, end = _first_line(statement)
        return script_error(text, start, end, description, statement.span.start, statement.span.end)

    for statement in statements:
        refusal = _library_refusal(statement)
        if refusal is not None and not open_ifs:  # inside an !if it may be a branch not taken: refused if run
            part, description = refusal
            raise script_error(text, part.span.start, part.span.end, description, statement.span.start)
        if not isinstance(statement, Branch):
            continue
        if statement.word == "if":
            open_ifs.append((statement, False))
            continue
        if not open_ifs:
            raise fail(statement, f"!{statement.word} without an !if before it")
        opened, seen_else = open_ifs[-1]
        if statement.word in ("elif", "else") and seen_else:
            raise fail(statement, f"!{statement.word} after the !else of the !if at line {opened.line}")
        if statement.word == "else":
            open_ifs[-1] = (opened, True)
        elif statement.word == "fi":
            open_ifs.pop()
    if open_ifs:
        raise fail(open_ifs[-1][0], "this !if has no !fi; end the block with !fi;")


def _setting_name(setting: Part, key: str) -> str:
    """The conf field for a ``!python conf`` key, or an error under the key."""
    try:
        return canonical_name(key.strip())
    except ConfigError as error:
        offset = setting.text.find(key.strip())
        start = setting.span.start + max(0, offset)
        raise _Blame(start, start + len(key.strip()), str(error)) from None


def run_script(
    spark: SparkSession,
    text: str,
    variables: Mapping[str, Any] | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> dict[str, DataFrame]:
    """Run a Byzer-style script in ``spark`` and return the tables it made, by name.

    Args:
        spark: the session; settings from ``!python conf`` stay in it for
            later scripts.
        text: the script, or a Byzer Notebook Python cell (``#%python`` first).
        variables: values for ``${name}``, set before the script's own ``set``
            statements run (a ``set ... where type=defaultParam`` keeps them).
        base_dir: the folder ``include project.`path``` and ``!pyInclude
            project 'path'`` are relative to (the script's folder; the current
            directory when None).

    Raises:
        ScriptError: naming the line, column and statement that failed.
    """
    return ScriptSession.of(spark).run(text, variables, base_dir=base_dir).tables


@dataclass
class _Source:
    """A text whose statements are running: the script, an included file, a ``!runScript`` text.

    ``path`` is None for the script itself (the caller knows its name) and names
    the others in their errors.
    """

    text: str
    path: str | None = None


@dataclass
class _Branch:
    """One open ``!if`` block: whether its enclosing code runs, a branch was taken, this branch runs."""

    outer_running: bool
    matched: bool
    running: bool


@dataclass
class _RunState:
    """What one ``run`` keeps while statements (its own and included ones) run."""

    result: ScriptRun
    on_statement: StatementListener | None
    base_dir: str
    last: ShownTable | None = None
    includes: list[str] = field(default_factory=list)


class ScriptSession:
    """The state scripts share within one SparkSession: variables and ``!python`` settings.

    ``!python conf`` settings live in spark_ray's session settings (so
    ``ray_transform`` called from Python sees them too); this object keeps the
    script variables, the ``!python env "K=V"`` exports (folded into the
    ``python_env`` option next to Byzer's ``PYTHON_ENV``), the script-level
    ``cache`` setting and the tables cached on the script's behalf.
    """

    _sessions: weakref.WeakKeyDictionary[SparkSession, ScriptSession] = weakref.WeakKeyDictionary()

    def __init__(self, spark: SparkSession, out: Writer | None = None) -> None:
        self.spark = spark
        self.out: Writer | None = out  # where !desc, !show and !println print; None: sys.stdout at the time
        self.variables: dict[str, str] = {}
        self.env_exports: dict[str, str] = {}
        self.script_conf: dict[str, str] = {}  # `!python conf` keys as spelt, for the code's context.conf
        self.cache_output = False  # `!python conf "cache=true"`: cache every Ray result (Byzer's default: no)
        self._cached_outputs: dict[str, DataFrame] = {}  # Ray results cached by cache=true, by table name
        self._script_cached: list[str] = []  # `!cache t` (lifetime script): released when the next script starts
        self._source = self._top = _Source("")
        self._origins: dict[Statement, _Source] = {}  # statements shown later that come from other texts
        self._state: _RunState | None = None
        self._py_files: dict[str, str] = {}  # table made by !pyInclude -> the file's path as written

    @classmethod
    def of(cls, spark: SparkSession) -> ScriptSession:
        """The ScriptSession of ``spark``, created on first use."""
        session = cls._sessions.get(spark)
        if session is None:
            session = cls._sessions[spark] = cls(spark)
        return session

    @classmethod
    def forget(cls, spark: SparkSession) -> None:
        """Drop the variables, settings and caches scripts left in ``spark`` (a fresh start)."""
        session = cls._sessions.pop(spark, None)
        if session is not None:
            session._release_caches(everything=True)
        clear_session_conf(spark)

    # ------------------------------------------------------------------ running

    def run(
        self,
        text: str,
        variables: Mapping[str, Any] | None = None,
        *,
        on_statement: StatementListener | None = None,
        base_dir: str | os.PathLike[str] | None = None,
    ) -> ScriptRun:
        """Parse, check and run ``text``; see :func:`run_script`."""
        statements = check_script(text)
        self._release_caches(everything=False)
        self._source = self._top = _Source(text)
        self._origins.clear()
        self.variables.update({name: str(value) for name, value in (variables or {}).items()})
        state = _RunState(ScriptRun(), on_statement, os.path.abspath(os.fspath(base_dir or os.getcwd())))
        self._state = state
        try:
            self._run_statements(statements, state)
        finally:
            self._state = None
        if not state.result.shown and state.last is not None:
            state.result.shown.append(state.last)
        return state.result

    def _run_statements(self, statements: list[Statement], state: _RunState) -> None:
        """Run ``statements`` of the current source in order, skipping the branches ``!if`` leaves out."""
        branches: list[_Branch] = []
        for index, statement in enumerate(statements):
            running = not branches or branches[-1].running
            if isinstance(statement, Branch):
                if running or statement.word != "if":
                    if state.on_statement is not None:
                        state.on_statement(statement, index, len(statements))
                self._guard(statement, functools.partial(self._branch, statement, branches))
                continue
            if not running:
                continue
            if state.on_statement is not None:
                state.on_statement(statement, index, len(statements))
            made = self._guard(statement, functools.partial(self._execute, statement))
            if isinstance(statement, EmptyTable) and statement.table is None:
                state.last = None  # `!emptyTable;`: nothing to show unless a later statement makes a table
            if made is not None:
                name, df = made
                state.result.tables[name] = df
                state.last = ShownTable(name, df, statement)
                if self._source is not self._top:
                    self._origins[statement] = self._source
                if name.lower() == DISPLAY_TABLE:
                    state.result.shown.append(state.last)

    def _run_text(self, text: str, path: str) -> None:
        """Run another text (an included file, a ``!runScript`` string) here, its errors naming ``path``."""
        try:
            statements = check_script(text)
        except ScriptError as error:
            raise _in_file(error, path) from None
        state = self._state
        assert state is not None
        outer = self._source
        self._source = _Source(text, path)
        try:
            self._run_statements(statements, state)
        finally:
            self._source = outer

    def attribute(self, statement: Statement, action: Callable[[], T]) -> T:
        """Run ``action`` (e.g. showing a lazy table) and blame its failure on ``statement``.

        Executor-mode results are lazy: user code runs when a table is shown or
        saved. The command line shows tables through this, so such a failure
        still names the statement that made the table.
        """
        outer = self._source
        self._source = self._origins.get(statement, self._top)
        try:
            return self._guard(statement, action)
        finally:
            self._source = outer

    def _guard(self, statement: Statement, action: Callable[[], T]) -> T:
        """Run ``action``; turn whatever it raises into a ScriptError at the right place."""
        try:
            return action()
        except ScriptError:
            raise
        except _Blame as blame:
            raise self._error(statement, blame.start, blame.end, blame.description) from blame.__cause__
        except UserCodeError as error:
            start, end = self._code_line(statement, str(error))
            raise self._error(statement, start, end, f"UserCodeError{self._file_note(statement)}: {error}") from error
        except SparkRayError as error:
            start, end = _first_line(statement)
            raise self._error(statement, start, end, f"{type(error).__name__}: {error}") from error
        except PySparkException as error:
            message = _spark_message(error)
            if _code_part(statement) is not None and _CODE_FRAME.search(message):
                start, end = self._code_line(statement, message)  # user code failed in a Spark worker
            else:
                start, end = self._spark_position(statement, error)
            raise self._error(statement, start, end, message) from error
        except Py4JJavaError as error:
            start, end = _first_line(statement)
            message = str(error.java_exception).strip()
            raise self._error(statement, start, end, message) from error

    def _error(self, statement: Statement, start: int, end: int, description: str) -> ScriptError:
        source = self._source
        return script_error(
            source.text, start, end, description, statement.span.start, statement.span.end, path=source.path
        )

    def _execute(self, statement: Statement) -> tuple[str, DataFrame] | None:
        handlers: dict[type, Callable[[Any], tuple[str, DataFrame] | None]] = {
            SetVariable: self._set,
            Load: self._load,
            Select: self._select,
            Save: self._save,
            PythonSetting: self._python_setting,
            RayOn: self._ray_on,
            RunCommand: self._run_command,
            Describe: self._describe,
            Include: self._include,
            Register: self._register,
            Repartition: self._repartition,
            EmptyTable: self._empty_table,
            CacheTable: self._cache_table,
            UncacheTable: self._uncache_table,
            Show: self._show,
            Println: self._println,
            PyInclude: self._py_include,
            RunScriptText: self._run_script_text,
            LastTableName: self._last_table_name,
            PythonCell: self._python_cell,
        }
        return handlers[type(statement)](statement)

    def _release_caches(self, *, everything: bool) -> None:
        """Uncache the tables ``!cache`` cached for the last script; with ``everything``, cache=true results too."""
        for name in self._script_cached:
            if self.spark.catalog.tableExists(name):
                self.spark.catalog.uncacheTable(name)
        self._script_cached.clear()
        if everything:
            for df in self._cached_outputs.values():
                df.unpersist()
            self._cached_outputs.clear()

    # ------------------------------------------------------------------ helpers

    def _value(self, part: Part) -> str:
        """``part`` with ``${name}`` replaced by the variables set so far."""
        try:
            return substitute(part.text, self.variables)
        except UnknownVariable as error:
            start = part.span.start + error.start
            raise _Blame(start, start + (error.end - error.start), str(error)) from None

    def _options(self, options: tuple[Option, ...]) -> dict[str, str]:
        return {option.key.text: self._value(option.value) for option in options}

    def _table(self, part: Part) -> DataFrame:
        """The table or view named by ``part``, or an error listing the near names.

        ``command`` is Byzer's built-in empty table (no columns, no rows) unless
        the script made a table of that name.
        """
        name = self._value(part)
        if name.lower() == COMMAND_TABLE and not self.spark.catalog.tableExists(name):
            return self.spark.createDataFrame([], StructType([]))
        if not self.spark.catalog.tableExists(name):
            known = [table.name for table in self.spark.catalog.listTables()]
            hint = did_you_mean(name, known)
            raise _Blame.part(
                part, f"no table or view named {name!r}.{hint} Tables so far: {', '.join(known) or 'none'}"
            )
        return self.spark.table(name)

    def _made(self, part: Part, df: DataFrame) -> tuple[str, DataFrame]:
        name = self._value(part)
        replaced = self._cached_outputs.pop(name, None)
        if replaced is not None and replaced is not df:
            replaced.unpersist()  # a cache=true result no table shows any more
        df.createOrReplaceTempView(name)
        return name, df

    def _cached(self, name: str, df: DataFrame, cache: bool) -> DataFrame:
        """``df``, cached when the script's cache setting (or the statement's) says so."""
        if not cache:
            return df
        df = df.cache()
        self._cached_outputs[name] = df
        return df

    def _cache_choice(self, options: tuple[Option, ...] | list[Option]) -> bool:
        """A statement's ``cache="true"``, else the script's setting."""
        for option in options:
            if _is_script_key(option.key.text):
                return self._boolean(option.value)
        return self.cache_output

    def _boolean(self, part: Part) -> bool:
        value = self._value(part).strip().lower()
        if value not in _BOOLEANS:
            raise _Blame.part(part, f"expected true or false, got {value!r}")
        return _BOOLEANS[value]

    def _code(self, part: Part) -> str:
        """A code value: as written, or, for ``py.T``, the Python file ``!pyInclude ... named T`` read."""
        value = self._value(part)
        match = _PY_TABLE.fullmatch(value.strip())
        if match is None:
            return value
        name = match.group(1)
        if not self.spark.catalog.tableExists(name):
            raise _Blame.part(
                part,
                f"code '{value.strip()}' refers to the Python file that `!pyInclude project 'file.py' named {name};` "
                f"reads into table {name!r}, and there is no such table",
            )
        row = self.spark.table(name).first()
        text = "" if row is None or row[0] is None else str(row[0])
        try:
            held = json.loads(text)
        except ValueError:
            return text  # a table holding the code itself
        return str(held["content"]) if isinstance(held, dict) and "content" in held else text

    def _project_file(self, part: Part, what: str) -> tuple[str, str]:
        """(path as written, absolute path) of a project file, relative to the script's folder."""
        state = self._state
        assert state is not None
        written = self._value(part)
        path = os.path.normpath(os.path.join(state.base_dir, os.path.expanduser(written)))
        if not os.path.isfile(path):
            raise _Blame.part(
                part, f"{what} reads {written!r} relative to the script's folder {state.base_dir}: no file {path}"
            )
        return written, path

    def _dotted_file(self, part: Part) -> tuple[str, str]:
        """MLSQL's ``!pyInclude folder.file.py``: the first of ``dotted_candidates`` beside the script."""
        state = self._state
        assert state is not None
        written = self._value(part)
        tried = [os.path.normpath(os.path.join(state.base_dir, candidate)) for candidate in dotted_candidates(written)]
        found = next((path for path in tried if os.path.isfile(path)), None)
        if found is None:
            raise _Blame.part(part, f"!pyInclude {written} names no file beside the script; tried {', '.join(tried)}")
        return os.path.relpath(found, state.base_dir), found

    def _write(self, text: str) -> None:
        (self.out or sys.stdout).write(text if text.endswith("\n") else text + "\n")

    # ------------------------------------------------------------------ statements

    def _set(self, statement: SetVariable) -> None:
        kind = "text"
        for option in statement.options:
            if option.key.text.lower() != "type":
                raise _Blame.part(option.key, f"set takes only `where type=...`, not {option.key.text!r}")
            kind = choose(option.value.text, SET_TYPES, "set type", functools.partial(_Blame.part, option.value))
        name = statement.name.text
        value = self._value(statement.value)
        if kind == "defaultParam" and name in self.variables:
            return None
        if kind == "sql":
            row = self.spark.sql(value).first()
            value = "" if row is None or row[0] is None else str(row[0])
        elif kind == "conf":
            self.spark.conf.set(name, value)
        self.variables[name] = value
        return None

    def _load(self, statement: Load) -> tuple[str, DataFrame]:
        fmt = statement.format.text
        options = self._options(statement.options)
        if fmt.lower() == "jsonstr":
            variable = self._value(statement.path)
            if variable not in self.variables:
                error = UnknownVariable(variable, 0, len(statement.path.text), list(self.variables))
                raise _Blame.part(statement.path, f"jsonStr loads a variable: {error}")
            df = sources.load_json_string(self.spark, self.variables[variable], options)
        else:
            path = self._value(statement.path)
            try:
                df = sources.load(self.spark, fmt, path, options)
            except PySparkException as error:
                raise _Blame.part(statement.path, _spark_message(error)) from error
        return self._made(statement.table, df)

    def _select(self, statement: Select) -> tuple[str, DataFrame]:
        return self._made(statement.table, self.spark.sql(self._value(statement.sql)))

    def _save(self, statement: Save) -> None:
        df = self._table(statement.table)
        path = self._value(statement.path)
        options = self._options(statement.options)
        mode = statement.mode.text if statement.mode is not None else None
        try:
            sources.save(df, statement.format.text, path, mode, options)
        except sources.BadOption as error:
            option = next(option for option in statement.options if option.key.text == error.key)
            raise _Blame.part(option.value, str(error)) from None
        except PySparkException as error:
            raise _Blame.part(statement.path, _spark_message(error)) from error

    def _python_setting(self, statement: PythonSetting) -> None:
        text = self._value(statement.setting)
        key, equals, value = text.partition("=")
        if not equals or not key.strip():
            raise _Blame.part(statement.setting, f'expected "key=value", got {text!r}')
        key, value = key.strip(), value.strip()
        if statement.scope.text == "env" and not _is_option(key):
            if not _ENV_NAME.match(key):
                raise _Blame.part(
                    statement.setting, f"{key!r} is neither a spark-ray option nor an environment variable name"
                )
            self.env_exports[key] = value
            self._apply_python_env(get_session_conf(self.spark).get("python_env"))
            return None
        value_part = _subpart(statement.setting, text.find("=") + 1, len(text))
        if statement.scope.text == "conf":
            self.script_conf[key] = value
        if statement.scope.text == "conf" and _is_script_key(key):
            self.cache_output = self._boolean(Part(value, value_part.span))
            return None
        if statement.scope.text == "conf" and not script_conf.is_option(key):
            script_conf.warn_passed_through(key, "!python conf", SCRIPT_KEYS)
            return None
        name = _setting_name(statement.setting, key)
        value = _setting_value(name, value)
        self._check_value(name, value, value_part, session=True)
        if name == "python_env":
            self._apply_python_env(value)
        else:
            set_session_conf(self.spark, **{name: value})
        return None

    def _apply_python_env(self, base: str | None) -> None:
        """python_env = PYTHON_ENV's text, then one ``export K=V`` per ``!python env "K=V"``."""
        parts = [part.strip() for part in (base or "").split("&&") if part.strip()]
        parts = [part for part in parts if not self._overridden_export(part)]
        parts += [f"export {key}={value}" for key, value in self.env_exports.items()]
        set_session_conf(self.spark, python_env=" && ".join(parts) or None)

    def _overridden_export(self, part: str) -> bool:
        """``part`` is an ``export K=V`` whose K a ``!python env "K=V"`` set since."""
        exported = exported_pair(part)
        return exported is not None and exported[0] in self.env_exports

    def _check_value(self, name: str, value: str, part: Part, *, session: bool) -> None:
        """Fail at the value's own characters, not later inside ray_transform."""
        if name == "schema":
            try:
                parse_schema(value)
            except SchemaParseError as error:
                start = part.span.start + (len(part.text) - len(part.text.lstrip())) + error.position
                raise _Blame(start, start + 1, f"SchemaParseError: {error.description}") from None
            except SparkRayError as error:
                raise _Blame.part(part, f"{type(error).__name__}: {error}") from None
        try:
            resolve_conf(self.spark if session else None, {name: value})
        except ConfigError as error:
            raise _Blame.part(part, str(error)) from None

    def _overrides(self, options: tuple[Option, ...] | list[Option], *, passing: bool = False) -> dict[str, Any]:
        """Per-statement ray_transform options, by field name, each checked where written.

        ``passing``: a ``!ray``/``run command`` clause, whose keys also go to
        the code as spelt (with the session's ``!python conf`` keys), any key
        that is no option included (see script_conf.py).
        """
        overrides: dict[str, Any] = {}
        spelt = dict(self.script_conf)
        for option in options:
            if passing:
                spelt[option.key.text] = self._value(option.value)
            if _is_script_key(option.key.text):
                continue
            if passing and not script_conf.is_option(option.key.text):
                script_conf.warn_passed_through(option.key.text, "where", RUN_KEYS + SCRIPT_KEYS)
                continue
            name = _option_name(option)
            value = _setting_value(name, self._value(option.value))
            self._check_value(name, value, option.value, session=False)
            overrides[name] = value
        if passing and spelt:
            overrides["script_conf"] = spelt
        return overrides

    def _transform(self, df: DataFrame, code: str, overrides: dict[str, Any]) -> DataFrame:
        overrides = script_conf.for_the_door(self.spark, overrides)
        return ray_transform(df, code, **overrides)  # type: ignore[arg-type]  # strings are coerced by the conf

    def _ray_on(self, statement: RayOn) -> tuple[str, DataFrame]:
        df = self._table(statement.table)
        cache = self._cache_choice(statement.options)
        out = self._transform(df, self._code(statement.code), self._overrides(statement.options, passing=True))
        name, made = self._made(statement.output, out)
        return name, self._cached(name, made, cache)

    def _run_command(self, statement: RunCommand) -> tuple[str, DataFrame]:
        found: dict[str, Option] = {}
        rest: list[Option] = []
        for option in statement.options:
            key = next((key for key in RUN_KEYS if key.lower() == option.key.text.lower()), None)
            if key is None:
                rest.append(option)
            else:
                found[key] = option
        input_part = found["inputTable"].value if "inputTable" in found else None
        if input_part is None and statement.target.text.lower() != "command":
            input_part = statement.target  # `run t as Ray.`` where ...`: t is the input
        missing = [key for key in RUN_KEYS if key not in found and not (key == "inputTable" and input_part)]
        if missing:
            start, end = _first_line(statement)
            raise _Blame(start, end, f"run command as Ray needs {', '.join(f'{key}=...' for key in missing)}")
        assert input_part is not None
        df = self._table(input_part)
        cache = self._cache_choice(rest)
        out = self._transform(df, self._code(found["code"].value), self._overrides(rest, passing=True))
        name, made = self._made(found["outputTable"].value, out)
        return name, self._cached(name, made, cache)

    def _describe(self, statement: Describe) -> None:
        df = self._table(statement.table)
        style = statement.style.text if statement.style is not None else None
        out = self.out or sys.stdout
        out.write(describe_schema(df.schema, style) + "\n")
        return None

    # ------------------------------------------------------------------ Byzer's other statements

    def _branch(self, statement: Branch, branches: list[_Branch]) -> None:
        """``!if``/``!elif``/``!then``/``!else``/``!fi``: which statements run (the blocks are checked already)."""
        if statement.word == "if":
            outer = not branches or branches[-1].running
            taken = outer and self._condition(statement)
            branches.append(_Branch(outer_running=outer, matched=taken or not outer, running=taken))
        elif statement.word == "elif":
            branch = branches[-1]
            taken = branch.outer_running and not branch.matched and self._condition(statement)
            branch.running = taken
            branch.matched = branch.matched or taken
        elif statement.word == "else":
            branch = branches[-1]
            branch.running = branch.outer_running and not branch.matched
            branch.matched = True
        elif statement.word == "fi":
            branches.pop()

    def _condition(self, statement: Branch) -> bool:
        """Evaluate an ``!if``/``!elif`` condition with Spark SQL (see conditions.py)."""
        part = statement.condition
        assert part is not None
        text = self._value(part)

        def blame(start: int, end: int, description: str) -> _Blame:
            if text != part.text:  # ${} changed the text: its offsets are not the script's
                return _Blame.part(part, description)
            return _Blame(part.span.start + start, part.span.start + end, description)

        steps = conditions.split_steps(text)
        if not steps:
            raise _Blame.part(part, "the condition is empty")
        *selects, last = steps

        def blame_step(step: conditions.Step, description: str) -> _Blame:
            lead = len(step.text) - len(step.text.lstrip())
            return blame(step.offset + lead, step.offset + len(step.text.rstrip()), description)

        def prepared(step: conditions.Step) -> tuple[str, list[str]]:
            try:
                return conditions.prepare(step.text, self.variables)
            except conditions.ConditionError as error:
                raise blame(step.offset + error.start, step.offset + error.end, str(error)) from None

        if last.is_select:
            raise blame_step(last, "the condition must come last, after the selects that set its :names")
        try:
            for step in selects:
                if not step.is_select:
                    raise blame_step(
                        step, "only `select ... as :name` may come before the condition (each ended by ';')"
                    )
                sql, targets = prepared(step)
                if not targets:
                    raise blame_step(step, "this select sets no :name (write `as :name`)")
                row = self.spark.sql(sql).first()
                for name in targets:
                    self.variables[name] = "" if row is None else _text_of(row[name])
            sql, targets = prepared(last)
            if targets:
                raise blame_step(last, "`as :name` belongs in a select before the condition")
            value = self.spark.sql(f"SELECT ({sql}) AS condition").first()
        except PySparkException as error:
            raise _Blame.part(part, f"the condition is not valid Spark SQL: {_spark_message(error)}") from error
        result = None if value is None else value[0]
        if result is None:
            return False
        if not isinstance(result, bool):
            raise _Blame.part(part, f"the condition must be true or false; it gives {result!r}")
        return result

    def _include(self, statement: Include) -> None:
        """``include project.`path```: the file's statements run here, in this session."""
        state = self._state
        assert state is not None
        _refuse_library(statement)
        written, path = self._project_file(statement.path, "include project.`...`")
        key = os.path.realpath(path)
        if key in state.includes:
            chain = " -> ".join(os.path.relpath(item, state.base_dir) for item in [*state.includes, key])
            raise _Blame.part(statement.path, f"include cycle: {chain}")
        with open(path, encoding="utf-8") as file:
            text = file.read()
        state.includes.append(key)
        try:
            self._run_text(text, written)
        finally:
            state.includes.pop()
        return None

    def _py_include(self, statement: PyInclude) -> tuple[str, DataFrame]:
        """``!pyInclude project 'file.py' named t``: table t holds the file's text as Byzer holds it."""
        _refuse_library(statement)
        if statement.scope.text == DOTTED_SCOPE:
            written, path = self._dotted_file(statement.path)
        else:
            written, path = self._project_file(statement.path, "!pyInclude project")
        with open(path, encoding="utf-8") as file:
            held = json.dumps({"content": file.read()})
        df = self.spark.createDataFrame([(held,)], "value string")
        name, made = self._made(statement.table, df)
        self._py_files[name] = written
        return name, made

    def _run_script_text(self, statement: RunScriptText) -> tuple[str, DataFrame] | None:
        """``!runScript '''...''' [named t]``: the text runs here; t names the last table it made."""
        state = self._state
        assert state is not None
        before = state.last
        self._run_text(self._value(statement.script), f"!runScript at line {statement.line}")
        if statement.table is None:
            return None
        if state.last is None or state.last is before:
            raise _Blame.part(statement.table, "the script made no table to name")
        return self._made(statement.table, state.last.df)

    def _register(self, statement: Register) -> None:
        """``register Ray.`` as f where code=... and schema=...``: a SQL table function ``f(TABLE(t))``."""
        register_function = _function_api("register_function")
        options = {option.key.text.lower(): option for option in statement.options}
        code = self._code(options["code"].value)
        schema = None
        if "schema" in options:
            schema = _setting_value("schema", self._value(options["schema"].value))
            self._check_value("schema", schema, options["schema"].value, session=False)
        rest = [option for option in statement.options if option.key.text.lower() not in REGISTER_KEYS]
        register_function(self.spark, self._value(statement.name), code, schema=schema, **self._overrides(rest))
        return None

    def _repartition(self, statement: Repartition) -> tuple[str, DataFrame]:
        """``!tableRepartition``: Byzer's TableRepartition (hash, by columns, by range, or a coalesce)."""
        df = self._table(statement.table)
        written = self._value(statement.partitions)
        if not (written.isdigit() and int(written) > 0):
            raise _Blame.part(statement.partitions, f"-num must be a whole number, at least 1; got {written!r}")
        count = int(written)
        columns: list[str] = []
        if statement.columns is not None:
            columns = [column.strip() for column in self._value(statement.columns).split(",") if column.strip()]
            for column in columns:
                if column not in df.columns:
                    hint = did_you_mean(column, df.columns)
                    raise _Blame.part(
                        statement.columns,
                        f"no column {column!r} in the table.{hint} Its columns: {', '.join(df.columns)}",
                    )
        if statement.shuffle is not None and statement.shuffle.text == "false":
            out = df.coalesce(count)
        elif statement.kind is not None and statement.kind.text == "range":
            out = df.repartitionByRange(count, *columns)
        else:
            out = df.repartition(count, *columns)
        return self._made(statement.output, out)

    def _empty_table(self, statement: EmptyTable) -> tuple[str, DataFrame] | None:
        """``!emptyTable;`` shows nothing at the end; with a table, an empty table of its columns."""
        if statement.table is None or statement.output is None:
            return None
        return self._made(statement.output, self._table(statement.table).limit(0))

    def _cache_table(self, statement: CacheTable) -> None:
        """``!cache t [lifetime]``: lifetime script (Byzer's default) lasts until the next script starts."""
        self._table(statement.table)
        name = self._value(statement.table)
        self.spark.catalog.cacheTable(name)
        lifetime = statement.lifetime.text if statement.lifetime is not None else "script"
        if lifetime == "script" and name not in self._script_cached:
            self._script_cached.append(name)
        return None

    def _uncache_table(self, statement: UncacheTable) -> None:
        df = self._table(statement.table)
        name = self._value(statement.table)
        self.spark.catalog.uncacheTable(name)
        cached = self._cached_outputs.pop(name, None)
        (cached if cached is not None else df).unpersist()
        if name in self._script_cached:
            self._script_cached.remove(name)
        return None

    def _show(self, statement: Show) -> None:
        """``!show tables|functions|function/NAME|commands|version``: printed as a table."""
        if statement.topic == "tables":
            database = self._value(statement.argument) if statement.argument is not None else None
            tables = self.spark.catalog.listTables(database) if database else self.spark.catalog.listTables()
            listed = [(t.name, t.database or "", str(bool(t.isTemporary)).lower()) for t in tables]
            self._write(text_table(("name", "database", "temporary"), listed))
        elif statement.topic in ("functions", "function"):
            records = _function_api("registered_functions")(self.spark)
            if statement.topic == "function":
                assert statement.argument is not None
                wanted = self._value(statement.argument)
                chosen = [record for record in records if record.name == wanted]
                if not chosen:
                    hint = did_you_mean(wanted, [record.name for record in records])
                    raise _Blame.part(statement.argument, f"no registered function {wanted!r}.{hint}")
                records = chosen
            rows = [
                (
                    record.name,
                    type_string(record.schema, "ddl"),
                    record.protocol,
                    record.code_label,
                    ";".join(f"{key}={value}" for key, value in sorted(record.options.items())),
                )
                for record in records
            ]
            self._write(text_table(("name", "schema", "protocol", "code", "options"), rows))
        elif statement.topic == "commands":
            self._write(text_table(("command", "form"), [(f"!{name}", form) for name, form in SUPPORTED.items()]))
        else:  # version
            import pyspark
            import ray

            versions = [("spark-ray", _version("spark-ray")), ("spark", pyspark.__version__), ("ray", ray.__version__)]
            versions.append(("python", sys.version.split()[0]))
            self._write(text_table(("component", "version"), versions))
        return None

    def _println(self, statement: Println) -> None:
        self._write(self._value(statement.text))
        return None

    def _last_table_name(self, statement: LastTableName) -> None:
        state = self._state
        assert state is not None
        if state.last is None:
            start, end = _first_line(statement)
            raise _Blame(start, end, "no table has been made yet")
        self.variables[LAST_TABLE_VARIABLE] = state.last.name
        return None

    def _python_cell(self, cell: PythonCell) -> tuple[str, DataFrame]:
        """A notebook cell: ``run command as Ray`` with its ``#%`` settings, for this cell only."""
        settings = {option.key.text.lower(): option for option in cell.settings}
        own = {key: settings.pop(key) for key in notebook.CELL_KEYS if key in settings}
        input_part = own["input"].value if "input" in own else Part(COMMAND_TABLE, cell.kind.span)
        output_part = own["output"].value if "output" in own else Part(DISPLAY_TABLE, cell.kind.span)
        cache = self._boolean(own["cache"].value) if "cache" in own else self.cache_output
        overrides = self._overrides(list(settings.values()))
        if "env" in own:
            value = self._value(own["env"].value)
            self._check_value("python_env", value, own["env"].value, session=False)
            overrides["python_env"] = value
        df = self._table(input_part)
        out = self._transform(df, cell.code.text, overrides)
        name, made = self._made(output_part, out)
        return name, self._cached(name, made, cache)

    def _file_note(self, statement: Statement) -> str:
        """`` (in src/x.py)`` when the failing code came from a file ``!pyInclude`` read."""
        code = _code_part(statement)
        match = _PY_TABLE.fullmatch(code.text.strip()) if code is not None else None
        if match is None or match.group(1) not in self._py_files:
            return ""
        return f" (in {self._py_files[match.group(1)]})"

    # ------------------------------------------------------------------ error positions

    def _code_line(self, statement: Statement, message: str) -> tuple[int, int]:
        """The script characters of the code line a UserCodeError's traceback ends in."""
        code = _code_part(statement)
        lines = [int(match) for match in _CODE_FRAME.findall(message)]
        if code is None or not lines:
            return _first_line(statement)
        code_lines = code.text.split("\n")
        number = lines[-1]
        if not 1 <= number <= len(code_lines):
            return code.span.start, code.span.end
        offset = sum(len(line) + 1 for line in code_lines[: number - 1])
        line = code_lines[number - 1]
        indent = len(line) - len(line.lstrip())
        start = code.span.start + offset + indent
        return start, start + max(1, len(line.strip()))

    def _spark_position(self, statement: Statement, error: PySparkException) -> tuple[int, int]:
        """Where Spark says a select went wrong, mapped back into the script when it can be."""
        if not isinstance(statement, Select) or self._value(statement.sql) != statement.sql.text:
            return _first_line(statement)
        sql = statement.sql
        for start, stop in sql_error_spans(error):  # getQueryContext: pyspark 4.0
            return sql.span.start + start, sql.span.start + stop + 1
        match = _SPARK_PARSE_POSITION.search(str(error))
        if match:
            line, pos = int(match.group(1)), int(match.group(2))
            offset = sum(len(text) + 1 for text in sql.text.split("\n")[: line - 1]) + pos
            return sql.span.start + offset, sql.span.start + offset + 1
        return _first_line(statement)


# ---------------------------------------------------------------------- module helpers


def _first_line(statement: Statement) -> tuple[int, int]:
    first = statement.source.split("\n", 1)[0]
    return statement.span.start, statement.span.start + len(first)


def _code_part(statement: Statement) -> Part | None:
    if isinstance(statement, RayOn):
        return statement.code
    if isinstance(statement, PythonCell):
        return statement.code
    if isinstance(statement, (RunCommand, Register)):
        return next((o.value for o in statement.options if o.key.text.lower() == "code"), None)
    return None


def _subpart(part: Part, start: int, end: int) -> Part:
    """The characters ``start:end`` of ``part``'s text, with their own offsets (errors need only those)."""
    span = Span(part.span.start + start, part.span.start + end, part.span.line, part.span.column)
    return Part(part.text[start:end], span, part.quoted)


def _refuse_library(statement: Statement) -> None:
    refusal = _library_refusal(statement)
    if refusal is not None:
        raise _Blame.part(*refusal)


def _function_api(name: str) -> Any:
    """``spark_ray.register_function`` or ``registered_functions``, or a clear error when this spark_ray lacks them."""
    try:
        return getattr(spark_ray, name)
    except (AttributeError, ImportError):
        raise SparkRayError(
            f"this version of spark_ray has no {name}(); `register Ray.``` and `!show functions` need it"
        ) from None


def _text_of(value: Any) -> str:
    """A SQL value as a script variable: booleans as SQL writes them, NULL as empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"


def _setting_value(name: str, value: str) -> str:
    """An option's value as ray_transform takes it: Byzer's ``schema=file`` is spelt out."""
    if name == "schema" and value.strip().lower() == "file":
        return FILE_SCHEMA
    return value


def _in_file(error: ScriptError, path: str) -> ScriptError:
    """``error`` (from parsing another file's text) naming that file."""
    return ScriptError(
        error.description,
        line=error.line,
        column=error.column,
        fragment=error.fragment,
        source_line=error.source_line,
        statement_line=error.statement_line,
        statement_column=error.statement_column,
        statement_head=error.statement_head,
        path=path,
    )


def _is_option(key: str) -> bool:
    try:
        canonical_name(key)
    except ConfigError:
        return False
    return True


def _option_name(option: Option, also: tuple[str, ...] = ()) -> str:
    """The conf field a ``where`` key names; unknown keys get canonical_name's did-you-mean."""
    key = option.key.text
    try:
        return canonical_name(key)
    except ConfigError as error:
        hint = did_you_mean(key, also)
        if hint:
            raise _Blame.part(option.key, f"unknown key {key!r}.{hint}") from None
        raise _Blame.part(option.key, str(error)) from None


def _spark_message(error: PySparkException) -> str:
    """Spark's message without the query plan it appends."""
    return spark_error_message(error)  # the same text on pyspark 3.5, which has no getCondition
