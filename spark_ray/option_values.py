"""Option values as users write them: text from Spark conf and scripts, or Python values from a call.

Every door hands options over as text or as Python values; these functions
turn either into the one typed value ``RayTransformConf`` holds, and say
which option could not be read, and how it is written.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import ConfigError


def coerce(name: str, annotation: str, value: Any) -> Any:
    """Turn a value that may be a string (Spark conf, scripts) into the type ``annotation`` names."""
    if value is None or not isinstance(value, str):
        if "float" in annotation and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value
    text = value.strip()
    if "None" in annotation and text.lower() in ("", "none", "null"):
        return None
    try:
        if annotation.startswith("bool"):
            if text.lower() in ("true", "1", "yes", "on"):
                return True
            if text.lower() in ("false", "0", "no", "off"):
                return False
            raise ValueError(text)
        if annotation.startswith("int"):
            return int(text.replace("_", ""))
        if annotation.startswith("float"):
            return float(text)
        if annotation.startswith("dict"):
            parsed = json.loads(text)
            if not isinstance(parsed, dict):
                raise ValueError(text)
            return parsed
    except ValueError:
        raise ConfigError(f"option {name} expects {annotation}; cannot read {value!r}") from None
    return text


def read_concurrency(value: Any) -> int | tuple[int, int] | None:
    """``4``, ``(1, 4)``, ``[1, 4]``, or the text forms ``"4"``, ``"1,4"``, ``"(1, 4)"``."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().strip("()[]")
        if text.lower() in ("", "none", "null"):
            return None
        parts = [part.strip() for part in text.split(",") if part.strip()]
        try:
            value = int(parts[0]) if len(parts) == 1 else tuple(int(part) for part in parts)
        except ValueError:
            raise ConfigError(
                f"option concurrency expects an int or a (min, max) pair; cannot read {value!r}"
            ) from None
    if isinstance(value, bool):
        raise ConfigError(f"option concurrency expects an int or a (min, max) pair, got {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise ConfigError(f"option concurrency must be at least 1, got {value}")
        return value
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        low, high = int(value[0]), int(value[1])
        if not 1 <= low <= high:
            raise ConfigError(f"option concurrency=(min, max) needs 1 <= min <= max, got ({low}, {high})")
        return (low, high)
    raise ConfigError(f"option concurrency expects an int or a (min, max) pair, got {value!r}")


def read_retry_exceptions(value: Any) -> Any:
    """True/False (also as text), or a list of exception classes (from the call only)."""
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("", "none", "null"):
            return None
        if lowered in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return lowered in ("true", "1", "yes", "on")
        raise ConfigError(f"option retry_exceptions expects true, false or a list of exception classes; got {value!r}")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, type) and issubclass(v, Exception) for v in value):
        return list(value)
    raise ConfigError(f"option retry_exceptions expects true, false or a list of exception classes; got {value!r}")


def read_constructor_args(value: Any) -> tuple[Any, ...] | None:
    """A tuple or list (or JSON list text) of positional ``__init__`` arguments."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ConfigError(f"option fn_constructor_args expects a JSON list in text form; got {value!r}") from None
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"option fn_constructor_args expects a tuple or list, got {type(value).__name__}")
    return tuple(value)


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    """Raise ``ConfigError`` unless ``value`` is one of ``choices``, naming the option and every choice."""
    if value not in choices:
        raise ConfigError(f"option {name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
