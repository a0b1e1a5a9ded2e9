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
from typing import Any

from spark_ray.conf import ALIASES, FIELD_NAMES, canonical_name, resolve_conf
from spark_ray.doors import DOOR_NAMES, data_door, doors_for
from spark_ray.errors import ConfigError, did_you_mean

__all__ = ["NotForThisDoorWarning", "UnknownKeyWarning", "for_the_door", "is_option", "warn_passed_through"]

# What spark-ray's own options are called, as suggestions for a key that is none of them.
_SUGGESTIONS = sorted((set(FIELD_NAMES) | set(ALIASES)) - {"script_conf"})


class UnknownKeyWarning(UserWarning):
    """A script set a key that is no spark-ray option: it is passed to the code as ``context.conf[key]``."""


class NotForThisDoorWarning(UserWarning):
    """A statement set an option its door does not honour (``numCpus`` for model mode): it reaches the code as
    ``context.conf[key]`` only, as in Byzer, where model-mode code may read it to size its own Ray work."""


def for_the_door(spark: Any, overrides: dict[str, Any]) -> dict[str, Any]:
    """A statement's options without those its door (mode, run_in) does not honour, each said in a warning.

    ``ray_transform`` from Python refuses such an option; a Byzer script sets it for the code to read
    (it stays in ``script_conf``, as spelt), so here it leaves the options with a warning instead.
    """
    asked: dict[str, Any] = {name: overrides[name] for name in ("mode", "run_in") if name in overrides}
    conf = resolve_conf(spark, asked)
    door = data_door(conf.mode, conf.run_in)
    kept = {}
    for name, value in overrides.items():
        if name == "script_conf" or door in doors_for(name):
            kept[name] = value
            continue
        warnings.warn(
            f"where: option {name} does not apply to {DOOR_NAMES[door]}; it reaches the code only, as "
            "context.conf (as spelt in the statement)",
            NotForThisDoorWarning,
            stacklevel=3,
        )
    return kept


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
