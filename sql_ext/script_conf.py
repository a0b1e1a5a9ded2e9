"""The keys a script hands its code: ``context.conf`` as Byzer fills it.

Byzer gives the Python side every ``!python conf`` key (and every key of a
``!ray ... where`` / ``run command as Ray where`` clause) exactly as the user
spelled it, which is why Byzer's docs write ``context.conf["rayAddress"]``;
users also pass settings of their own that way. So a script's keys are kept
as written and reach the code beside spark-ray's own names (``ray_address``):
``RayTransformConf.script_conf`` carries them, ``spark_ray.code_string.code_conf``
merges them into ``context.conf``.

A key that is no spark-ray option is such a setting of the user's own: it is
passed to the code, not refused, but it may as well be a typo of an option,
so it is reported with a warning that names the nearest option when one is
close. ``ray_transform(**options)`` from Python stays strict: only scripts
pass keys through.

Example:
    >>> is_option("rayAddress"), is_option("myThreshold")
    (True, False)
"""

from __future__ import annotations

import warnings

from spark_ray.conf import ALIASES, FIELD_NAMES, canonical_name
from spark_ray.errors import ConfigError, did_you_mean

__all__ = ["UnknownKeyWarning", "is_option", "warn_passed_through"]

# What spark-ray's own options are called, as suggestions for a key that is none of them.
_SUGGESTIONS = sorted((set(FIELD_NAMES) | set(ALIASES)) - {"script_conf"})


class UnknownKeyWarning(UserWarning):
    """A script set a key that is no spark-ray option: it is passed to the code as ``context.conf[key]``."""


def is_option(key: str) -> bool:
    """True when ``key`` names a ``ray_transform`` option (by its name or a Byzer alias)."""
    try:
        canonical_name(key)
    except ConfigError:
        return False
    return True


def warn_passed_through(key: str, where: str, extra: tuple[str, ...] = ()) -> None:
    """Say that ``key`` (set by ``where``) is no option and goes to the code as written.

    ``extra`` are other keys the statement knows (``cache``, ``inputTable``, ...),
    offered as suggestions too.
    """
    hint = did_you_mean(key, [*_SUGGESTIONS, *extra])
    warnings.warn(
        f"{where}: {key!r} is not a spark-ray option; it is passed to the code as context.conf[{key!r}].{hint}",
        UnknownKeyWarning,
        stacklevel=3,
    )
