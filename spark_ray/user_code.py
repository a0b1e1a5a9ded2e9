"""The user's function, and how errors and tracebacks name it.

Errors from user code travel from Ray workers and Spark workers back to the
caller; they must point at the user's own lines, not ours. A ``UserFunction``
carries the label errors use ("function echo (<file>, line 7)") and, for code
strings, the source, so that a remote process can show its lines.
"""

from __future__ import annotations

import linecache
import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


@dataclass
class UserFunction:
    """A user function with what we need to report on it.

    Attributes:
        fn: the callable itself.
        kind: "row", "rows", "arrow" or "pandas".
        label: how errors name it, e.g. "function echo (<ray_transform code>, line 7)".
        source, filename: the code string it came from, if any, so that
            tracebacks in remote processes can show its lines.
    """

    fn: Callable[..., Any]
    kind: str
    label: str
    source: str | None = None
    filename: str | None = None

    @classmethod
    def from_callable(cls, fn: Callable[..., Any], kind: str) -> UserFunction:
        if not callable(fn):
            raise TypeError(f"code must be a callable or a string of Python source, got {type(fn).__name__}")
        return cls(fn=fn, kind=kind, label=describe_callable(fn))

    @property
    def short_name(self) -> str:
        """The function's name alone, for the query plan and the Spark UI."""
        return self.label.split(" (")[0].removeprefix("function ").removeprefix("class ")

    @property
    def is_class(self) -> bool:
        """A callable class: ``__init__`` once per actor (or worker), ``__call__`` per row or batch."""
        return isinstance(self.fn, type)

    def register_source(self) -> None:
        if self.source is not None and self.filename is not None:
            register_source(self.filename, self.source)


def register_source(filename: str, source: str) -> None:
    """Let traceback and linecache show the lines of a code string in this process."""
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)


def describe_callable(fn: Callable[..., Any]) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    if isinstance(fn, type):
        # A class has no code of its own: point at its __call__ (or __init__), where the work is.
        method = vars(fn).get("__call__") or vars(fn).get("__init__")
        method_code = getattr(method, "__code__", None)
        if method_code is None:
            return f"class {name}"
        return f"class {name} ({method_code.co_filename}, line {method_code.co_firstlineno})"
    code = getattr(fn, "__code__", None)
    if code is None:
        return f"function {name}"
    return f"function {name} ({code.co_filename}, line {code.co_firstlineno})"


def user_traceback(error: BaseException) -> str:
    """The traceback of ``error`` without our own frames, ending with the error line."""
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if not os.path.abspath(frame.filename).startswith(_PACKAGE_DIR + os.sep)
    ]
    text = "Traceback (most recent call last):\n" + "".join(traceback.format_list(frames))
    return text + "".join(traceback.format_exception_only(type(error), error))
