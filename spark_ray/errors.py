"""One exception hierarchy for the whole project.

Callers catch ``SparkRayError`` to catch everything we raise on purpose; the
subclasses say whose fault it is: the caller's options (``ConfigError``), a
schema (``SchemaError`` and its parse variant), the user's own code
(``UserCodeError``), or ours (``InternalError``, which asks for a report).
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
from collections.abc import Iterable, Iterator


class SparkRayError(Exception):
    """Base of every error spark-ray raises deliberately."""


class ConfigError(SparkRayError, ValueError):
    """An option has an unknown name or a value it cannot take."""


class SchemaError(SparkRayError, ValueError):
    """A schema cannot be used, or data does not fit the schema."""


class SchemaParseError(SchemaError):
    """A schema string is malformed.

    Keeps the text and the 0-based offset so callers (and tests) can point at
    the fault without parsing the message.
    """

    def __init__(self, description: str, text: str, position: int) -> None:
        self.description = description
        self.text = text
        self.position = position
        line_start = text.rfind("\n", 0, position) + 1
        line_end = text.find("\n", position)
        line = text[line_start : len(text) if line_end == -1 else line_end]
        column = position - line_start
        message = f"{description} at position {position} of schema:\n  {line}\n  {' ' * column}^"
        super().__init__(message)


class ResultSchemaError(SchemaError):
    """A value produced by user code does not fit the declared output schema."""


class UserCodeError(SparkRayError):
    """The user's function raised; the message carries the user's traceback."""

    def __init__(self, message: str, user_traceback: str = "") -> None:
        self.message = message
        self.user_traceback = user_traceback
        super().__init__(f"{message}\n{user_traceback}" if user_traceback else message)

    def __reduce__(self):  # type: ignore[override]
        # Exceptions pickle their args only; keep both fields across Ray and Spark workers.
        return (UserCodeError, (self.message, self.user_traceback))


class MemoryLimitError(SparkRayError, MemoryError):
    """User code grew past its memory cap (``py_executor_memory``, or ``memory`` with ``enforce_memory``).

    Raised in the Ray task or actor that ran the code, in place of the user's
    own frame, so that the process fails with a message naming the limit and
    the function instead of the node's OOM killer taking something at random.
    """

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)

    def __reduce__(self):  # type: ignore[override]
        return (MemoryLimitError, (self.message,))


class PoolError(SparkRayError, RuntimeError):
    """An actor pool cannot serve a call: it was closed, or its actors are gone."""


class RayConnectionError(SparkRayError, ConnectionError):
    """Ray could not be reached at the address we were given."""


class RayWorkLostError(SparkRayError, RuntimeError):
    """A shard's Ray work was lost with the process or the node that ran it, and Ray will not (or cannot)
    run it again: says which shard, what Ray reported and where to look. Not the user's code raising:
    that is a ``UserCodeError`` with their traceback."""


class DataServerError(SparkRayError, ConnectionError):
    """A shard could not be read from its data server."""


class SparkVersionError(SparkRayError, RuntimeError):
    """This pyspark lacks a feature the call needs (``spark_compat`` names the feature and the version)."""


class InternalError(SparkRayError, RuntimeError):
    """A bug in spark-ray itself."""

    def __init__(self, message: str) -> None:
        super().__init__(f"{message} (this is a bug in spark-ray; please report it with this message)")


class ContextError(SparkRayError, RuntimeError):
    """A pyjava context method was called where it cannot work (e.g. ``set_output`` in data mode)."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` for the choice nearest ``word``, or "" when none is near.

    Every unknown-name error in the project (options, types, statements,
    tables, variables) uses this one rule, so the same typo gets the same hint
    everywhere. The spelling as written is compared first; failing that, case
    is ignored (``LONG`` still finds ``long``).
    """
    known = list(choices)
    close = difflib.get_close_matches(word, known, n=1, cutoff=SUGGESTION_CUTOFF)
    if not close:
        by_lower = {choice.lower(): choice for choice in reversed(known)}
        lowered = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=SUGGESTION_CUTOFF)
        close = [by_lower[lowered[0]]] if lowered else []
    return f" Did you mean {close[0]!r}?" if close else ""


# How alike (difflib's ratio) a name must be to a known one to be suggested.
SUGGESTION_CUTOFF = 0.6


# --------------------------------------------------------------------------- errors raised in Spark's workers
#
# An error raised in a Spark Python worker reaches the caller as Spark's PythonException, whose text is a
# fixed banner line ("An exception was thrown from the Python worker...") followed by what the worker
# reported: by default a traceback of our own frames, with our one-line summary at its very end. The
# banner is pyspark's (written on the driver when it converts the JVM's error) and cannot be changed
# without patching pyspark; the worker's report is ours to shape.

# pyspark's worker reports only ``type: message`` (no traceback) when this is set (pyspark >= 4.0).
_HIDE_TRACEBACK = "SPARK_HIDE_TRACEBACK"

_OUR_LINE = re.compile(r"^spark_ray\.errors\.(\w+): ", re.MULTILINE)
_JVM_STACKTRACE = "\n\nJVM stacktrace:\n"


def lead_worker_report(error: BaseException) -> None:
    """Make Spark's report of ``error`` start with our summary line instead of our internal traceback.

    Call it in a Spark Python worker just before ``error`` leaves the
    function Spark runs (a mapInArrow function). pyspark's worker reports an
    exception and then exits, so setting its "hide traceback" variable here
    shapes this one report only; the report becomes
    ``spark_ray.errors.ResultSchemaError: column 'x' expects long, ...``
    (a ``UserCodeError`` keeps the user's own traceback: it is part of its
    message). Only our deliberate errors are shortened: anything else, and an
    ``InternalError`` (a bug report needs our frames), keeps its traceback.
    Outside a Spark task (no TaskContext) nothing is changed.
    """
    if not isinstance(error, SparkRayError) or isinstance(error, InternalError):
        return
    from pyspark import TaskContext

    if TaskContext.get() is not None:
        os.environ[_HIDE_TRACEBACK] = "1"


@contextlib.contextmanager
def reported_first() -> Iterator[None]:
    """Around the work of a function Spark runs in its Python workers: our error leaving it leads Spark's
    report (``lead_worker_report``)."""
    try:
        yield
    except Exception as error:
        lead_worker_report(error)
        raise


def spark_ray_error_in(error: BaseException) -> SparkRayError | None:
    """Our error inside Spark's ``PythonException`` (or any exception whose text reports one), rebuilt as
    its own class with its own message; None when the text holds none.

    Executor-mode results are lazy: an action such as ``collect()`` is
    Spark's, and it raises Spark's ``PythonException``. Catch that and call
    this to get the ``ResultSchemaError`` / ``UserCodeError`` the worker
    raised (``except PythonException as e: raise spark_ray_error_in(e) or e``).
    """
    if isinstance(error, SparkRayError):
        return error
    text = str(error).split(_JVM_STACKTRACE, 1)[0]
    match = _OUR_LINE.search(text)
    if match is None:
        return None
    cls = globals().get(match.group(1))
    if not (isinstance(cls, type) and issubclass(cls, SparkRayError)):
        return None
    message = text[match.end() :].rstrip()
    rebuilt = cls.__new__(cls)
    Exception.__init__(rebuilt, message)  # the message as the worker wrote it, whatever the class's __init__ adds
    if isinstance(rebuilt, UserCodeError):
        rebuilt.message, _, rebuilt.user_traceback = message.partition("\nTraceback (most recent call last):\n")
        if rebuilt.user_traceback:
            rebuilt.user_traceback = "Traceback (most recent call last):\n" + rebuilt.user_traceback
    elif isinstance(rebuilt, MemoryLimitError):
        rebuilt.message = message
    elif isinstance(rebuilt, SchemaParseError):
        rebuilt.description, rebuilt.text, rebuilt.position = message, "", 0
    return rebuilt
