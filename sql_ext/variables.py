"""``${name}`` substitution, with the position of every reference kept for errors.

Substitution happens when a statement runs, not when the script is parsed:
a ``set`` in the middle of a script changes what the statements after it see,
exactly as in Byzer. It applies to every value of a statement (SQL, paths,
option values, settings and code strings). A reference to a variable that was
never set is an error, because silently leaving ``${name}`` in a path or a
query only moves the failure somewhere harder to read.

Example:
    >>> substitute("select * from ${table}", {"table": "t1"})
    'select * from t1'
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from spark_ray.errors import did_you_mean

# ${name}: a template reference, found inside already-parsed values.
_REFERENCE = re.compile(r"\$\{([^{}]*)\}")


class UnknownVariable(LookupError):
    """``${name}`` names no variable; ``start`` and ``end`` are offsets into the substituted text."""

    def __init__(self, name: str, start: int, end: int, known: list[str]) -> None:
        self.name = name
        self.start = start
        self.end = end
        hint = did_you_mean(name, known)
        listed = ", ".join(sorted(known)) if known else "none yet"
        super().__init__(
            f"no variable {name!r} has been set.{hint} Variables set so far: {listed}. "
            "Set it earlier with `set name='''value''';` (or pass it in: --var name=value)."
        )


def substitute(text: str, variables: Mapping[str, str]) -> str:
    """Replace every ``${name}`` in ``text`` with the variable's value.

    Raises:
        UnknownVariable: a reference names no variable.
    """

    def replace(match: re.Match[str]) -> str:
        name = match.group(1).strip()
        if name not in variables:
            raise UnknownVariable(name, match.start(), match.end(), list(variables))
        return str(variables[name])

    return _REFERENCE.sub(replace, text)
