"""The process environment user code runs in: Byzer's PYTHON_ENV and pythonExec.

Byzer scripts carry ``PYTHON_ENV=export A=1 && source activate env`` and a
``pythonExec`` of their old cluster. Here the ``export`` parts become
environment variables set around the user's code (and put back after it,
because Ray and Spark reuse worker processes across jobs: variables left
behind would reach the next job, Byzer's stale-settings bug); the interpreter
and the conda environment cannot be switched, so a mismatch is reported once.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator


def exports_of(python_env: str | None) -> dict[str, str]:
    """The ``export K=V`` parts of a PYTHON_ENV text, in order (quotes around V removed).

    Example:
        >>> exports_of("export A=1 && source activate py3 && export B='x y'")
        {'A': '1', 'B': 'x y'}
    """
    found: dict[str, str] = {}
    for part in (python_env or "").split("&&"):
        exported = exported_pair(part)
        if exported is not None:
            found[exported[0]] = exported[1]
    return found


def exported_pair(part: str) -> tuple[str, str] | None:
    """``(K, V)`` when ``part`` is one ``export K=V``, else None."""
    words = part.strip().split(None, 1)
    if len(words) != 2 or words[0] != "export" or "=" not in words[1]:
        return None
    key, _, value = words[1].partition("=")
    return key.strip(), value.strip().strip("'\"")


def activations_of(python_env: str | None) -> list[str]:
    """The environments a PYTHON_ENV text activates (``source activate X``, ``conda activate X``)."""
    names = []
    for part in (python_env or "").split("&&"):
        words = part.split()
        if len(words) >= 2 and words[-2] == "activate":
            names.append(words[-1])
    return names


_WARNED: set[str] = set()


def warn_about_python_env(python_exec: str | None, python_env: str | None) -> None:
    """Say once per process that another interpreter or a missing conda env is not used."""
    notes = []
    if python_exec and os.path.realpath(python_exec) != os.path.realpath(sys.executable):
        notes.append(f"pythonExec={python_exec!r} is not this interpreter ({sys.executable}); using this one")
    for name in activations_of(python_env):
        if not os.path.isdir(name) and not os.path.isdir(os.path.join(sys.prefix, "envs", name)):
            notes.append(f"PYTHON_ENV activates {name!r}, which does not exist here; using the current environment")
    for note in notes:
        if note not in _WARNED:
            _WARNED.add(note)
            warnings.warn(note, stacklevel=4)


@contextlib.contextmanager
def job_environment(env: dict[str, str]) -> Iterator[None]:
    """Set a job's environment variables around its code, then put the old ones back."""
    if not env:
        yield
        return
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
