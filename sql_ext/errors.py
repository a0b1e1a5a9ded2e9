"""ScriptError: every failure of a script, pointing at the script's own text.

A script can fail while it is parsed (a missing ``;``), while a statement runs
(an unknown option, a table that does not exist, the user's code raising), or
in Spark or Ray underneath. Whatever the cause, the user reads one kind of
error: what went wrong, the line and column, the statement it happened in, and
the offending characters underlined. Tests assert the structure (description,
line, column, fragment), not the wording.
"""

from __future__ import annotations

import unicodedata

from spark_ray.errors import SparkRayError


class ScriptError(SparkRayError):
    """A script failed at a known place.

    Attributes:
        description: what went wrong, without the position.
        line, column: 1-based position of the offending fragment.
        fragment: the offending text, as written in the script.
        source_line: the whole script line the fragment starts on.
        statement_line, statement_column: where the statement starts.
        statement_head: the statement's first line (shortened), quoted in messages.
        path: the file the text comes from, when it is not the script being run
            (an included file, a Python file): the message starts with it.
    """

    def __init__(
        self,
        description: str,
        *,
        line: int,
        column: int,
        fragment: str,
        source_line: str,
        statement_line: int,
        statement_column: int,
        statement_head: str,
        path: str | None = None,
    ) -> None:
        self.description = description
        self.line = line
        self.column = column
        self.fragment = fragment
        self.source_line = source_line
        self.statement_line = statement_line
        self.statement_column = statement_column
        self.statement_head = statement_head
        self.path = path
        super().__init__(self._render())

    def _render(self) -> str:
        first_line = self.fragment.split("\n", 1)[0]
        room = max(1, len(self.source_line) - (self.column - 1))
        underline = "^" * max(1, min(_width(first_line), _width(self.source_line[self.column - 1 :][:room])))
        indent = "".join("\t" if ch == "\t" else " " * _width(ch) for ch in self.source_line[: self.column - 1])
        number = str(self.line)
        headline, _, details = self.description.partition("\n")
        where = f"{self.path}: " if self.path else ""
        message = (
            f"{where}line {self.line}, column {self.column}: {headline}\n"
            f"  in the statement at line {self.statement_line}, column {self.statement_column}: "
            f"{self.statement_head}\n"
            f"  {number} | {self.source_line}\n"
            f"  {' ' * len(number)} | {indent}{underline}"
        )
        return f"{message}\n{details.rstrip()}" if details.strip() else message

    def __reduce__(self):  # type: ignore[override]
        # Keep the structure when the error crosses processes (pickle keeps args only).
        return (_rebuild, (self.description, self.__dict__.copy()))


def _rebuild(description: str, fields: dict[str, object]) -> ScriptError:
    fields = {key: value for key, value in fields.items() if key != "description"}
    return ScriptError(description, **fields)  # type: ignore[arg-type]


def _width(text: str) -> int:
    """Columns ``text`` takes in a terminal: CJK characters take two, so carets stay aligned."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def line_and_column(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of ``offset`` in ``text``."""
    offset = max(0, min(offset, len(text)))
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column


def source_line_at(text: str, offset: int) -> str:
    """The whole line of ``text`` that holds ``offset``, without its newline."""
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    return text[start : len(text) if end == -1 else end]


def statement_head(text: str) -> str:
    """A statement's first non-blank line, shortened to fit in one message line."""
    stripped = text.strip()
    first = stripped.splitlines()[0] if stripped else ""
    return first if len(first) <= 60 else first[:57] + "..."


def script_error(
    script: str,
    start: int,
    end: int,
    description: str,
    statement_start: int,
    statement_end: int | None = None,
    path: str | None = None,
) -> ScriptError:
    """A ScriptError for the characters ``script[start:end]`` of the statement starting at ``statement_start``."""
    line, column = line_and_column(script, start)
    statement_line, statement_column = line_and_column(script, statement_start)
    if statement_end is None:
        statement_end = script.find(";", statement_start)
    return ScriptError(
        description,
        line=line,
        column=column,
        fragment=script[start:end] if end > start else script[start : start + 1],
        source_line=source_line_at(script, start),
        statement_line=statement_line,
        statement_column=statement_column,
        statement_head=statement_head(script[statement_start : len(script) if statement_end == -1 else statement_end]),
        path=path,
    )
