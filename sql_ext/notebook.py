"""Byzer Notebook's Python cells: a Python file whose ``#%`` lines say how to run it.

Byzer Notebook (and Byzer Desktop) let a cell hold plain Python::

    #%python
    #%input=sample_data
    #%output=python_output_table
    #%schema=st(field(x,double))
    #%runIn=driver
    #%dataMode=model
    #%cache=true
    from pyjava.api.mlsql import RayContext
    ...

and rewrite it into ``!python conf`` settings and one ``run command as Ray``
statement. Here such a text is one :class:`~sql_ext.statements.PythonCell`
statement: ``input`` is the input table (``command``, the empty table, when
absent), ``output`` the table made (``output`` when absent, which the command
line shows), ``cache`` the script-level cache switch, ``env`` Byzer's
``PYTHON_ENV``, and every other key a ``ray_transform`` option by its name or
Byzer alias (``schema``, ``runIn``, ``dataMode``/``mode``, ``pythonExec``, ...),
for this cell only. The code is the whole text: the ``#%`` lines are Python
comments, so line numbers in tracebacks are the file's.

Example:
    >>> cell = parse_python_cell("#%python\\n#%input=t\\n#%output=out\\nprint(1)\\n")
    >>> [(o.key.text, o.value.text) for o in cell.settings]
    [('input', 't'), ('output', 'out')]
"""

from __future__ import annotations

from spark_ray.conf import canonical_name
from spark_ray.errors import ConfigError, did_you_mean

from .errors import line_and_column, script_error
from .statements import Option, Part, PythonCell, Span

__all__ = ["CELL_KEYS", "is_python_cell", "parse_python_cell"]

# Keys of a cell that are not ray_transform options.
CELL_KEYS = ("input", "output", "cache", "env")
# Keys Byzer Notebook passes on that spark-ray has no use for.
_REFUSED_KEYS = {
    "confTable": "spark-ray takes options from the #% lines and !python conf, not from a table",
    "model": "Byzer's model servers need Byzer's engine; read the model table in the code",
}
_MARK = "#%"


def is_python_cell(text: str) -> bool:
    """The text is a notebook cell, not a Byzer script: it starts with a comment and has ``#%`` lines.

    Byzer reads ``#%`` lines wherever they stand, so other comments may come
    first (``# fmt: off``, which keeps code formatters off the ``#%`` lines). A
    Byzer script cannot start with ``#``, so the content decides, whatever the
    file is called.

    Example:
        >>> is_python_cell("#%python\\nprint(1)"), is_python_cell("select 1 as a as t;")
        (True, False)
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return bool(lines) and lines[0].startswith("#") and any(line.startswith(_MARK) for line in lines)


def parse_python_cell(text: str) -> PythonCell:
    """The cell as one statement; the ``#%`` lines are checked here, before anything runs.

    Raises:
        ScriptError: the cell is not a ``#%python`` cell, or a ``#%`` line is
            malformed, repeated or names no known setting.
    """
    kind: Part | None = None
    settings: list[Option] = []
    seen: dict[str, Part] = {}
    offset = 0
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith(_MARK):
            start = offset + line.index(_MARK) + len(_MARK)
            body = stripped[len(_MARK) :]
            if "=" not in body:
                word = _part(text, start, body.strip())
                if kind is not None:
                    raise _error(text, word, f"a cell has one kind; it is already #%{kind.text}")
                kind = word
            else:
                key_text, _, value_text = body.partition("=")
                key = _part(text, start, key_text.strip())
                value = _part(text, start + len(key_text) + 1, value_text.strip(), quoted=True)
                name = _check_key(text, key)
                if name in seen:
                    raise _error(text, key, f"#%{key.text} is given twice (also at line {seen[name].span.line})")
                seen[name] = key
                settings.append(Option(key=key, value=value))
        offset += len(line)
    if kind is None or kind.text != "python":
        where = kind or _part(text, 0, text.split("\n", 1)[0])
        found = f"#%{kind.text}" if kind else "none"
        raise _error(
            text,
            where,
            f"a notebook cell run by spark-ray must be a Python cell, marked #%python (found {found}); "
            "its other #% lines: #%input=TABLE, #%output=TABLE, #%schema=..., #%runIn=..., #%dataMode=..., "
            "#%cache=true|false, #%env=...",
        )
    code = Part(text, Span(0, len(text), 1, 1), quoted=True)
    return PythonCell(
        line=1,
        column=1,
        source=text,
        span=Span(0, len(text), 1, 1),
        kind=kind,
        settings=tuple(settings),
        code=code,
    )


def _check_key(text: str, key: Part) -> str:
    """The canonical name of a cell key (its own keys, or a ray_transform option), else a ScriptError."""
    for own in CELL_KEYS:
        if key.text.lower() == own.lower():
            return own
    for refused, reason in _REFUSED_KEYS.items():
        if key.text.lower() == refused.lower():
            raise _error(text, key, f"#%{key.text} is not supported: {reason}")
    try:
        return canonical_name(key.text)
    except ConfigError as error:
        hint = did_you_mean(key.text, CELL_KEYS)
        message = f"unknown #% setting {key.text!r}.{hint}" if hint else f"#%{key.text}: {error}"
        raise _error(text, key, message) from None


def _part(text: str, start: int, value: str, quoted: bool = False) -> Part:
    start = text.index(value, start) if value else start
    line, column = line_and_column(text, start)
    return Part(value, Span(start, start + len(value), line, column), quoted)


def _error(text: str, part: Part, description: str) -> Exception:
    line_start = text.rfind("\n", 0, part.span.start) + 1
    return script_error(text, part.span.start, part.span.end, description, line_start, text.find("\n", line_start))
