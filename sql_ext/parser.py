"""Parsing Byzer-style scripts: grammar.lark in, statement dataclasses out.

``parse_script(text)`` reads the whole script before anything runs, so a typo
in the last statement fails in a second rather than after an hour of Spark.
The grammar lives in grammar.lark; this module turns lark's tree into the
dataclasses of statements.py and lark's exceptions into ScriptErrors that name
the line, the column and the statement.

Example:
    >>> [type(s).__name__ for s in parse_script("set a='1'; select ${a} as t;")]
    ['SetVariable', 'Select']
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from spark_ray.errors import did_you_mean

from . import commands
from .errors import ScriptError, line_and_column, script_error
from .statements import (
    Command,
    Describe,
    Include,
    Load,
    Option,
    Part,
    PythonSetting,
    RayOn,
    Register,
    RunCommand,
    Save,
    Select,
    SetVariable,
    Span,
    Statement,
)

__all__ = ["DESC_STYLES", "INCLUDE_KINDS", "SAVE_MODES", "choose", "parse_script"]

SAVE_MODES = ("overwrite", "append", "errorIfExists", "ignore")
SETTING_SCOPES = ("conf", "env")
# !desc T [style]: None is a readable table; the others print a schema= form.
DESC_STYLES = ("json", "st", "ddl", "string")
RAY_ETS = ("Ray",)
RAY_USAGE = "!ray on TABLE '''code''' named OUT [where k=\"v\" ...];  (the code may be py.NAME, unquoted)"
# include KIND.`path`: spark-ray includes files of the project. Byzer's lib. and local. need its library
# manager: they parse, so that a library branch of an !if that is not taken does no harm, and fail if run.
INCLUDE_KINDS = ("project", "lib", "local")
_QUOTED_TOKENS = ("TRIPLE_STRING", "DQ_STRING", "SQ_STRING", "BACKQUOTED")

# How parse errors name what was expected, by terminal.
_EXPECTED_NAMES = {
    "SEMICOLON": "';'",
    "AS": "as",
    "EQUAL": "'='",
    "DOT": "'.'",
    "WORD": "a name",
    "BACKQUOTED": "a `quoted` name or path",
    "TRIPLE_STRING": "a string",
    "DQ_STRING": "a string",
    "SQ_STRING": "a string",
    "NUMBER": "a number",
    "ON": "on",
    "NAMED": "named",
    "WHERE": "where",
    "AND": "and",
    "OPTIONS": "options",
}
_STATEMENT_STARTS = (
    "SET", "LOAD", "SELECT", "SAVE", "RUN", "INCLUDE", "REGISTER", "PYTHON_CMD", "RAY_CMD", "DESC_CMD",
)  # fmt: skip
_STATEMENT_WORDS = ("set", "load", "select", "save", "run", "include", "register", "!python", "!ray", "!desc")
# Keywords that start a statement; seen at the start of a line inside a select, a ';' is missing.
_SUSPICIOUS_IN_SELECT = ("SET", "LOAD", "SAVE", "RUN")
_UNCLOSED = {
    "UNCLOSED_TRIPLE": "this ''' string is never closed",
    "UNCLOSED_QUOTE": "this {quote} is never closed",
    "UNCLOSED_COMMENT": "this /* comment is never closed",
}


def choose(word: str, choices: Iterable[str], what: str, fail: Callable[[str], Exception]) -> str:
    """The canonical spelling of ``word`` among ``choices`` (case ignored), else ``raise fail(message)``.

    The parser and the runner both check closed-choice words (save modes,
    ``!desc`` styles, ``set`` types) with this; each passes ``fail`` to build
    its own kind of error at the word's place.

    Example:
        >>> choose("OVERWRITE", SAVE_MODES, "save mode", ValueError)
        'overwrite'
        >>> choose("overwrit", SAVE_MODES, "save mode", ValueError)
        Traceback (most recent call last):
        ...
        ValueError: unknown save mode 'overwrit'. Did you mean 'overwrite'? Known: overwrite, append, errorIfExists, ignore
    """
    choices = tuple(choices)
    for choice in choices:
        if word.lower() == choice.lower():
            return choice
    raise fail(f"unknown {what} {word!r}.{did_you_mean(word, choices)} Known: {', '.join(choices)}")


class _KeepUnclosed:
    """A pass-through post-lexer whose only job is to keep the UNCLOSED_* terminals.

    lark drops terminals that no rule uses; these exist precisely so that no
    rule accepts them and the error lands where the string or comment opened.
    """

    always_accept = tuple(_UNCLOSED)

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        return stream


@functools.lru_cache(maxsize=1)
def _lark() -> Lark:
    grammar = os.path.join(os.path.dirname(os.path.abspath(__file__)), "grammar.lark")
    return Lark.open(grammar, parser="earley", lexer="basic", propagate_positions=True, postlex=_KeepUnclosed())


def parse_script(text: str) -> list[Statement]:
    """Parse a whole script into statements, or raise a ScriptError naming the place.

    Args:
        text: the script.

    Returns:
        The statements in order; empty statements (``;;``) are dropped.

    Raises:
        ScriptError: the script is not well formed; ``line``, ``column`` and
            ``fragment`` say where.
    """
    try:
        tree = _lark().parse(text)
    except UnexpectedInput as error:
        raise _syntax_error(text, error) from None
    try:
        statements: list[Statement] = _ToStatements(text).transform(tree).children
    except VisitError as error:
        if isinstance(error.orig_exc, ScriptError):
            raise error.orig_exc from None
        raise
    return statements


class _ToStatements(Transformer[Token, Any]):
    """lark tree -> statement dataclasses, with the spans of every part."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    # ------------------------------------------------------------- small parts

    def _span(self, start: int, end: int) -> Span:
        line, column = line_and_column(self.text, start)
        return Span(start=start, end=end, line=line, column=column)

    def _part(self, token: Token) -> Part:
        """A token as a Part: strings and backquotes lose their quotes (and their escapes)."""
        raw = str(token)
        start, end = token.start_pos or 0, token.end_pos or 0
        if token.type == "TRIPLE_STRING":
            return Part(raw[3:-3], self._span(start + 3, end - 3), quoted=True)
        if token.type in ("DQ_STRING", "SQ_STRING"):
            quote = raw[0]
            inner = raw[1:-1].replace("\\\\", "\0").replace("\\" + quote, quote).replace("\0", "\\")
            return Part(inner, self._span(start + 1, end - 1), quoted=True)
        if token.type == "BACKQUOTED":
            return Part(raw[1:-1].replace("``", "`"), self._span(start + 1, end - 1), quoted=True)
        return Part(raw, self._span(start, end))

    def _error(self, part: Part, description: str, meta: Any) -> ScriptError:
        return script_error(self.text, part.span.start, part.span.end, description, meta.start_pos, meta.end_pos)

    def _choice(self, part: Part, choices: Iterable[str], what: str, meta: Any) -> str:
        """The canonical spelling of a closed-choice word, or a ScriptError with a suggestion."""
        return choose(part.text, choices, what, lambda message: self._error(part, message, meta))

    def _statement_fields(self, meta: Any) -> dict[str, Any]:
        start, end = meta.start_pos, meta.end_pos
        return {
            "line": meta.line,
            "column": meta.column,
            "source": self.text[start:end],
            "span": self._span(start, end),
        }

    def name(self, children: list[Token | Part]) -> Part:
        child = children[0]
        return child if isinstance(child, Part) else self._part(child)

    path = value = string = name

    def option_key(self, children: list[Token]) -> Part:
        first, last = children[0], children[-1]
        start, end = first.start_pos or 0, last.end_pos or 0
        return Part(self.text[start:end], self._span(start, end))

    def option(self, children: list[Any]) -> Option:
        return Option(key=children[0], value=children[2])

    def where_clause(self, children: list[Any]) -> tuple[Option, ...]:
        return tuple(child for child in children if isinstance(child, Option))

    # ------------------------------------------------------------- statements

    @v_args(meta=True)
    def set_stmt(self, meta: Any, children: list[Any]) -> SetVariable:
        options = children[4] if len(children) > 4 else ()
        return SetVariable(**self._statement_fields(meta), name=children[1], value=children[3], options=options)

    @v_args(meta=True)
    def load_stmt(self, meta: Any, children: list[Any]) -> Load:
        options = children[4] if isinstance(children[4], tuple) else ()
        return Load(
            **self._statement_fields(meta),
            format=self._part(children[1]),
            path=children[3],
            options=options,
            table=children[-1],
        )

    @v_args(meta=True)
    def select_stmt(self, meta: Any, children: list[Any]) -> Select:
        select, final_as, table = children[0], children[-2], children[-1]
        for token in children[1:-2]:
            if isinstance(token, Token) and token.type in _SUSPICIOUS_IN_SELECT and self._starts_line(token):
                previous_line = (token.line or 1) - 1
                raise script_error(
                    self.text,
                    token.start_pos or 0,
                    token.end_pos or 0,
                    f"{str(token)!r} starts a new statement inside this select: is a ';' missing at the end "
                    f"of line {previous_line}? (Quote a column of that name with backquotes.)",
                    meta.start_pos,
                    meta.end_pos,
                )
        start = select.start_pos
        sql = self.text[start : final_as.start_pos].rstrip()
        return Select(**self._statement_fields(meta), sql=Part(sql, self._span(start, start + len(sql))), table=table)

    def _starts_line(self, token: Token) -> bool:
        before = self.text[: token.start_pos].rsplit("\n", 1)[-1]
        return not before.strip()

    @v_args(meta=True)
    def save_stmt(self, meta: Any, children: list[Any]) -> Save:
        mode: Part | None = None
        rest = children[1:]
        if isinstance(rest[0], Token):  # save MODE table as ...
            mode_part = self._part(rest[0])
            mode = Part(self._choice(mode_part, SAVE_MODES, "save mode", meta), mode_part.span)
            rest = rest[1:]
        table, _as, fmt, _dot, path = rest[:5]
        options = rest[5] if len(rest) > 5 else ()
        return Save(
            **self._statement_fields(meta), mode=mode, table=table, format=self._part(fmt), path=path, options=options
        )

    @v_args(meta=True)
    def python_stmt(self, meta: Any, children: list[Any]) -> PythonSetting:
        args = list(self._command_args(children[1:]))
        usage = '!python conf "key=value";  !python env "KEY=VALUE";'
        if not args:
            raise self._error(self._bang(children[0]), f"!python needs a scope and a setting: {usage}", meta)
        scope = Part(self._choice(args[0], SETTING_SCOPES, "!python setting", meta), args[0].span)
        if len(args) != 2:
            at = args[2] if len(args) > 2 else args[0]
            raise self._error(at, f"!python takes one setting (quote it if it holds spaces): {usage}", meta)
        return PythonSetting(**self._statement_fields(meta), scope=scope, setting=args[1])

    @v_args(meta=True)
    def ray_stmt(self, meta: Any, children: list[Any]) -> RayOn:
        """``!ray on T CODE named OUT``, its arguments split as every ``!`` command's (CODE may be ``py.NAME``)."""
        options = children[-1] if isinstance(children[-1], tuple) else ()
        args = list(self._command_args([child for child in children[1:] if isinstance(child, Token)]))
        words = [None if arg.quoted else arg.text.lower() for arg in args]
        wrong: Part | None = None
        if args and words[0] != "on":
            wrong = args[0]
        elif len(args) > 3 and words[3] != "named":
            wrong = args[3]
        elif len(args) > 5:
            wrong = args[5]
        elif len(args) < 5:
            wrong = args[-1] if args else self._bang(children[0])
        if wrong is not None:
            raise self._error(wrong, f"!ray takes `on TABLE CODE named OUT`: {RAY_USAGE}", meta)
        return RayOn(**self._statement_fields(meta), table=args[1], code=args[2], output=args[4], options=options)

    @v_args(meta=True)
    def run_stmt(self, meta: Any, children: list[Any]) -> RunCommand:
        et = self._part(children[3])
        et = Part(self._choice(et, RAY_ETS, "ET (spark-ray runs `run command as Ray`)", meta), et.span)
        options = children[6] if len(children) > 6 else ()
        return RunCommand(**self._statement_fields(meta), target=children[1], et=et, path=children[5], options=options)

    @v_args(meta=True)
    def desc_stmt(self, meta: Any, children: list[Any]) -> Describe:
        args = list(self._command_args(children[1:]))
        if not 1 <= len(args) <= 2:
            at = args[2] if len(args) > 2 else self._bang(children[0])
            usage = f"!desc TABLE [{'|'.join(DESC_STYLES)}];"
            raise self._error(at, f"!desc takes a table and an optional style: {usage}", meta)
        style: Part | None = None
        if len(args) == 2:
            style = Part(self._choice(args[1], DESC_STYLES, "!desc style", meta), args[1].span)
        return Describe(**self._statement_fields(meta), table=args[0], style=style)

    def _bang(self, token: Token) -> Part:
        """The ``!name`` that starts a command, as a Part to point errors at."""
        return Part(str(token), self._span(token.start_pos or 0, token.end_pos or 0))

    @v_args(meta=True)
    def include_stmt(self, meta: Any, children: list[Any]) -> Include:
        written = self._part(children[1])
        kind = Part(self._choice(written, INCLUDE_KINDS, "include kind", meta), written.span)
        options = children[4] if len(children) > 4 else ()
        return Include(**self._statement_fields(meta), kind=kind, path=children[3], options=options)

    @v_args(meta=True)
    def register_stmt(self, meta: Any, children: list[Any]) -> Register:
        written = self._part(children[1])
        what = "ET (spark-ray registers `register Ray.`` as NAME where code='''...''' and schema=\"...\"`)"
        et = Part(self._choice(written, RAY_ETS, what, meta), written.span)
        options = children[6] if len(children) > 6 else ()
        return Register(**self._statement_fields(meta), et=et, path=children[3], name=children[5], options=options)

    @v_args(meta=True)
    def command_stmt(self, meta: Any, children: list[Token]) -> Statement:
        bang = children[0]
        # The name without its "!", underlined with it: errors about the command point at "!name".
        name = Part(str(bang)[1:], self._span(bang.start_pos or 0, bang.end_pos or 0))
        command = Command(**self._statement_fields(meta), name=name, args=tuple(self._command_args(children[1:])))
        return commands.build(command, lambda part, message: self._error(part, message, meta))

    def _command_args(self, tokens: list[Token]) -> Iterator[Part]:
        """Arguments as Byzer splits them: at white space; a quoted string is one argument."""
        group: list[Token] = []
        for token in tokens:
            if token.type in _QUOTED_TOKENS:
                if group:
                    yield self._joined(group)
                    group = []
                yield self._part(token)
                continue
            if group and token.start_pos != group[-1].end_pos:
                yield self._joined(group)
                group = []
            group.append(token)
        if group:
            yield self._joined(group)

    def _joined(self, tokens: list[Token]) -> Part:
        start, end = tokens[0].start_pos or 0, tokens[-1].end_pos or 0
        return Part(self.text[start:end], self._span(start, end))


# ----------------------------------------------------------------- syntax errors


def _statement_start(text: str, position: int) -> int:
    """Where the statement holding ``position`` starts: the first token after the last ';' before it."""
    start = None
    try:
        for token in _lark().lex(text):
            if (token.start_pos or 0) >= position:
                break
            if token.type == "SEMICOLON":
                start = None
            elif start is None:
                start = token.start_pos
    except UnexpectedInput:
        pass
    return position if start is None else start


def _syntax_error(text: str, error: UnexpectedInput) -> ScriptError:
    if isinstance(error, UnexpectedToken) and error.token.type != "$END":
        token = error.token
        start, end = token.start_pos or 0, token.end_pos or 0
        statement_start = _statement_start(text, start)
        description = _describe_unexpected(token, set(error.expected), at_statement_start=statement_start == start)
        if token.type in _UNCLOSED:
            end = start + (3 if token.type == "UNCLOSED_TRIPLE" else 2 if token.type == "UNCLOSED_COMMENT" else 1)
        return script_error(text, start, end, description, statement_start)
    if isinstance(error, UnexpectedCharacters):
        start = error.pos_in_stream or 0
        return script_error(
            text, start, start + 1, f"unexpected character {text[start]!r}", _statement_start(text, start)
        )
    # The script ended inside a statement.
    end = len(text.rstrip())
    statement_start = _statement_start(text, end)
    expected = set(getattr(error, "expected", ()) or ())
    if isinstance(error, (UnexpectedToken, UnexpectedEOF)) and expected <= {"SEMICOLON"} | set(_EXPECTED_NAMES):
        wanted = _expected_text(expected)
    else:
        wanted = "more"
    last_word_start = max(text.rfind(" ", 0, end), text.rfind("\n", 0, end)) + 1
    return script_error(
        text,
        last_word_start,
        end,
        f"the script ends inside this statement (expected {wanted}): is a ';' missing?",
        statement_start,
    )


def _describe_unexpected(token: Token, expected: set[str], at_statement_start: bool) -> str:
    found = str(token)
    if token.type in _UNCLOSED:
        return _UNCLOSED[token.type].format(quote=found[:1])
    if at_statement_start:
        candidates = _STATEMENT_WORDS if token.type in ("WORD", "BANG_WORD") else ()
        hint = did_you_mean(found, candidates)
        kind = "command" if found.startswith("!") else "statement"
        return f"unknown {kind} {found!r}.{hint} A statement starts with one of: {', '.join(_STATEMENT_WORDS)}"
    if found.lower() == "partitionby" and expected & {"WHERE", "AND"}:
        # Byzer's `save ... partitionBy col`: here partitioning is a save option.
        return (
            f"unexpected {found!r}: partitioning is a save option here; write "
            '`where partitionBy="col1,col2"` (or `and partitionBy=...` after other options)'
        )
    if token.type == "SEMICOLON" and "AS" in expected and "PUNCT" in expected:
        return "a select must end with `as NAME`, the name of its result table"
    if token.type in _STATEMENT_STARTS or token.type == "BANG_WORD":
        return f"unexpected {found!r}: is a ';' missing before it?"
    shown = found if len(found) <= 40 else found[:37] + "..."
    return f"unexpected {shown!r}: expected {_expected_text(expected)}"


def _expected_text(expected: set[str]) -> str:
    names = sorted({_EXPECTED_NAMES[name] for name in expected if name in _EXPECTED_NAMES})
    if not names:
        return "something else"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
