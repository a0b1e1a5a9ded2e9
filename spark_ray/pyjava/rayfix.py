"""pyjava.rayfix: ``@rayfix.last`` patched old Ray's pickling; here it changes nothing."""

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def last(fn: F) -> F:
    """Kept so that old scripts run: functions from code strings pickle fine without it."""
    return fn
