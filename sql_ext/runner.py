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

Every failure becomes a :class:`~sql_ext.errors.ScriptError` that names the
line and column, quotes the statement and underlines the characters at fault;
the original error is its ``__cause__``.

For example, with a SparkSession ``spark`` (tests/test_sql_statements.py runs this)::

    tables = run_script(spark, "select 1 as id as t;")
    tables["t"].collect()  # [Row(id=1)]
"""

from __future__ import annotations

import functools
import re
import sys
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, TypeVar

from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession

from spark_ray import clear_session_conf, get_session_conf, ray_transform, set_session_conf
from spark_ray.conf import canonical_name, resolve_conf
from spark_ray.environment import exported_pair
from spark_ray.errors import ConfigError, SchemaParseError, SparkRayError, UserCodeError, did_you_mean
from spark_ray.schema import parse_schema

from . import sources
from .describe import describe_schema
from .errors import ScriptError, script_error
from .parser import choose, parse_script
from .statements import (
    Describe,
    Load,
    Option,
    Part,
    PythonSetting,
    RayOn,
    RunCommand,
    Save,
    Select,
    SetVariable,
    Span,
    Statement,
)
from .variables import UnknownVariable, substitute

__all__ = ["ScriptRun", "ScriptSession", "ShownTable", "check_script", "run_script"]

T = TypeVar("T")
# Called before each statement runs, with its 0-based index and the statement count.
StatementListener = Callable[[Statement, int, int], None]

SET_TYPES = ("text", "sql", "defaultParam", "conf")
# The keys of `run command as Ray` that are not ray_transform options.
RUN_KEYS = ("inputTable", "outputTable", "code")
DISPLAY_TABLE = "output"  # Byzer's convention: `select ... as output` is what the user sees
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
    """Parse ``text`` and check what needs no Spark: option and setting names.

    The command line calls this before it starts a JVM, so a misspelt option
    costs a second.

    Raises:
        ScriptError: at the first problem.
    """
    statements = parse_script(text)
    for statement in statements:
        try:
            _check(statement)
        except _Blame as blame:
            raise script_error(
                text, blame.start, blame.end, blame.description, statement.span.start, statement.span.end
            ) from None
    return statements


def _check(statement: Statement) -> None:
    if isinstance(statement, RayOn):
        for option in statement.options:
            _option_name(option)
    elif isinstance(statement, RunCommand):
        for option in statement.options:
            if option.key.text.lower() not in (key.lower() for key in RUN_KEYS):
                _option_name(option, also=RUN_KEYS)
    elif isinstance(statement, PythonSetting) and statement.scope.text == "conf":
        key, equals, _ = statement.setting.text.partition("=")
        if equals and "${" not in key:
            _setting_name(statement.setting, key)


def _setting_name(setting: Part, key: str) -> str:
    """The conf field for a ``!python conf`` key, or an error under the key."""
    try:
        return canonical_name(key.strip())
    except ConfigError as error:
        offset = setting.text.find(key.strip())
        start = setting.span.start + max(0, offset)
        raise _Blame(start, start + len(key.strip()), str(error)) from None


def run_script(spark: SparkSession, text: str, variables: Mapping[str, Any] | None = None) -> dict[str, DataFrame]:
    """Run a Byzer-style script in ``spark`` and return the tables it made, by name.

    Args:
        spark: the session; settings from ``!python conf`` stay in it for
            later scripts.
        text: the script.
        variables: values for ``${name}``, set before the script's own ``set``
            statements run (a ``set ... where type=defaultParam`` keeps them).

    Raises:
        ScriptError: naming the line, column and statement that failed.
    """
    return ScriptSession.of(spark).run(text, variables).tables


class ScriptSession:
    """The state scripts share within one SparkSession: variables and ``!python`` settings.

    ``!python conf`` settings live in spark_ray's session settings (so
    ``ray_transform`` called from Python sees them too); this object keeps the
    script variables and the ``!python env "K=V"`` exports, which are folded
    into the ``python_env`` option next to Byzer's ``PYTHON_ENV``.
    """

    _sessions: weakref.WeakKeyDictionary[SparkSession, ScriptSession] = weakref.WeakKeyDictionary()

    def __init__(self, spark: SparkSession, out: Writer | None = None) -> None:
        self.spark = spark
        self.out: Writer | None = out  # where !desc prints; None: sys.stdout at the time
        self.variables: dict[str, str] = {}
        self.env_exports: dict[str, str] = {}
        self._text = ""

    @classmethod
    def of(cls, spark: SparkSession) -> ScriptSession:
        """The ScriptSession of ``spark``, created on first use."""
        session = cls._sessions.get(spark)
        if session is None:
            session = cls._sessions[spark] = cls(spark)
        return session

    @classmethod
    def forget(cls, spark: SparkSession) -> None:
        """Drop the variables and settings scripts left in ``spark`` (a fresh start)."""
        cls._sessions.pop(spark, None)
        clear_session_conf(spark)

    # ------------------------------------------------------------------ running

    def run(
        self,
        text: str,
        variables: Mapping[str, Any] | None = None,
        *,
        on_statement: StatementListener | None = None,
    ) -> ScriptRun:
        """Parse, check and run ``text``; see :func:`run_script`."""
        statements = check_script(text)
        self._text = text
        self.variables.update({name: str(value) for name, value in (variables or {}).items()})
        result = ScriptRun()
        last: ShownTable | None = None
        for index, statement in enumerate(statements):
            if on_statement is not None:
                on_statement(statement, index, len(statements))
            made = self._guard(statement, functools.partial(self._execute, statement))
            if made is not None:
                name, df = made
                result.tables[name] = df
                last = ShownTable(name, df, statement)
                if name.lower() == DISPLAY_TABLE:
                    result.shown.append(last)
        if not result.shown and last is not None:
            result.shown.append(last)
        return result

    def attribute(self, statement: Statement, action: Callable[[], T]) -> T:
        """Run ``action`` (e.g. showing a lazy table) and blame its failure on ``statement``.

        Executor-mode results are lazy: user code runs when a table is shown or
        saved. The command line shows tables through this, so such a failure
        still names the statement that made the table.
        """
        return self._guard(statement, action)

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
            raise self._error(statement, start, end, f"UserCodeError: {error}") from error
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
        return script_error(self._text, start, end, description, statement.span.start, statement.span.end)

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
        }
        return handlers[type(statement)](statement)

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
        """The table or view named by ``part``, or an error listing the near names."""
        name = self._value(part)
        if not self.spark.catalog.tableExists(name):
            known = [table.name for table in self.spark.catalog.listTables()]
            hint = did_you_mean(name, known)
            raise _Blame.part(
                part, f"no table or view named {name!r}.{hint} Tables so far: {', '.join(known) or 'none'}"
            )
        return self.spark.table(name)

    def _made(self, part: Part, df: DataFrame) -> tuple[str, DataFrame]:
        name = self._value(part)
        df.createOrReplaceTempView(name)
        return name, df

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
        name = _setting_name(statement.setting, key)
        value_part = _subpart(statement.setting, text.find("=") + 1, len(text))
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

    def _overrides(self, options: tuple[Option, ...] | list[Option]) -> dict[str, str]:
        """Per-statement ray_transform options, by field name, each checked where written."""
        overrides: dict[str, str] = {}
        for option in options:
            name = _option_name(option)
            value = self._value(option.value)
            self._check_value(name, value, option.value, session=False)
            overrides[name] = value
        return overrides

    def _transform(self, df: DataFrame, code: str, overrides: dict[str, str]) -> DataFrame:
        return ray_transform(df, code, **overrides)  # type: ignore[arg-type]  # strings are coerced by the conf

    def _ray_on(self, statement: RayOn) -> tuple[str, DataFrame]:
        df = self._table(statement.table)
        out = self._transform(df, self._value(statement.code), self._overrides(statement.options))
        return self._made(statement.output, out)

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
        out = self._transform(df, self._value(found["code"].value), self._overrides(rest))
        return self._made(found["outputTable"].value, out)

    def _describe(self, statement: Describe) -> None:
        df = self._table(statement.table)
        style = statement.style.text if statement.style is not None else None
        out = self.out or sys.stdout
        out.write(describe_schema(df.schema, style) + "\n")
        return None

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
        for context in error.getQueryContext():
            if context.contextType().name == "SQL" and context.startIndex() >= 0:
                return sql.span.start + context.startIndex(), sql.span.start + context.stopIndex() + 1
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
    if isinstance(statement, RunCommand):
        return next((o.value for o in statement.options if o.key.text.lower() == "code"), None)
    return None


def _subpart(part: Part, start: int, end: int) -> Part:
    """The characters ``start:end`` of ``part``'s text, with their own offsets (errors need only those)."""
    span = Span(part.span.start + start, part.span.start + end, part.span.line, part.span.column)
    return Part(part.text[start:end], span, part.quoted)


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
    condition = error.getCondition()
    message = error.getMessage() if condition else str(error)
    return message.strip()
