r"""``!if`` conditions: Byzer's branch expressions, evaluated by Spark SQL, never by Python.

Byzer writes a condition as a Spark SQL expression in which ``:name`` is the
script variable ``name``::

    !if ''' :mode == "train" and :rows > 100 ''';

and may put ``select ... as :name`` statements before it, separated by ``;``,
whose columns become variables for the condition (and for the rest of the
script, here)::

    !if ''' select split(:a, ",")[0] as :first; :first == "jack" ''';

Each ``:name`` is replaced by the variable's value as a SQL string literal
(quotes and backslashes escaped), so a value is data and never becomes SQL;
Spark's own comparison rules then turn ``'3'`` into a number where the other
side is one. The condition itself runs as ``SELECT (condition)`` and must give
a boolean (NULL counts as false). Text inside quotes, and ``::`` casts, are
left alone.

Example:
    >>> sql, targets = prepare(' :a == "x" and :n > 2 ', {"a": "it's", "n": "3"})
    >>> print(sql.strip())
    'it\'s' == "x" and '3' > 2
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from spark_ray.errors import did_you_mean

__all__ = ["ConditionError", "Step", "prepare", "split_steps"]

# A variable reference: ":" then a name, not part of "::" (a cast) or of a word before it.
_REFERENCE = re.compile(r"(?<![:\w]):([^\W\d]\w*)")
# "as :name": a select column that sets a variable.
_TARGET = re.compile(r"(?i)\bas\s+:([^\W\d]\w*)")
_QUOTED = re.compile(r"'(\\[\s\S]|[^'\\])*'|\"(\\[\s\S]|[^\"\\])*\"|`[^`]*`")


class ConditionError(ValueError):
    """A condition cannot be used; ``start`` and ``end`` are offsets into the condition text."""

    def __init__(self, message: str, start: int, end: int) -> None:
        super().__init__(message)
        self.start = start
        self.end = end


class Step:
    """One ``;``-separated part of a condition: its text and its offset in the whole."""

    def __init__(self, text: str, offset: int) -> None:
        self.text = text
        self.offset = offset

    @property
    def is_select(self) -> bool:
        return self.text.lstrip().lower().startswith("select")

    def __repr__(self) -> str:
        return f"Step({self.text!r}, {self.offset})"


def split_steps(text: str) -> list[Step]:
    """The ``;``-separated parts of ``text`` (a ``;`` inside quotes does not split), blank parts dropped.

    Example:
        >>> split_steps("select ';' as :x; :x == ';'")
        [Step("select ';' as :x", 0), Step(" :x == ';'", 17)]
    """
    steps: list[Step] = []
    start = 0
    position = 0
    while position < len(text):
        quoted = _QUOTED.match(text, position)
        if quoted:
            position = quoted.end()
            continue
        if text[position] == ";":
            steps.append(Step(text[start:position], start))
            start = position + 1
        position += 1
    steps.append(Step(text[start:], start))
    return [step for step in steps if step.text.strip()]


def prepare(text: str, variables: Mapping[str, str]) -> tuple[str, list[str]]:
    """``text`` with each ``:name`` replaced by a literal, and the names ``as :name`` sets.

    ``as :name`` becomes ``as `name``` (the column that sets the variable).

    Raises:
        ConditionError: a ``:name`` names no variable (offsets of the reference).
    """
    targets: list[str] = []
    pieces: list[str] = []
    position = 0
    while position < len(text):
        quoted = _QUOTED.match(text, position)
        if quoted:
            pieces.append(quoted.group())
            position = quoted.end()
            continue
        target = _TARGET.match(text, position) if text[position] in "aA" and _word_start(text, position) else None
        if target:
            name = target.group(1)
            targets.append(name)
            pieces.append(f"{target.group()[: target.start(1) - target.start() - 1]}`{name}`")
            position = target.end()
            continue
        reference = _REFERENCE.match(text, position) if text[position] == ":" else None
        if reference:
            name = reference.group(1)
            if name not in variables:
                hint = did_you_mean(name, list(variables))
                known = ", ".join(sorted(variables)) or "none yet"
                raise ConditionError(
                    f"the condition refers to :{name}, but no variable {name!r} is set.{hint} "
                    f"Variables set so far: {known}",
                    reference.start(),
                    reference.end(),
                )
            pieces.append(_literal(str(variables[name])))
            position = reference.end()
            continue
        pieces.append(text[position])
        position += 1
    return "".join(pieces), targets


def _word_start(text: str, position: int) -> bool:
    return position == 0 or not (text[position - 1].isalnum() or text[position - 1] == "_")


def _literal(value: str) -> str:
    """A Spark SQL string literal of ``value`` (backslash escapes, Spark's default)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
