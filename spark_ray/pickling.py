"""Pickling user code so that it runs where the user's files are not.

Ray and Spark workers import modules by name; a function from the user's own
script or from a module next to it would fail to unpickle there. cloudpickle
can take such modules by value: we ask for that for the module of the user's
function when it is not an installed package.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from typing import Any


def _is_users_own_module(module_name: str) -> bool:
    """A module imported from the user's files rather than an installed package.

    Ray and Spark workers may not have those files on their path, so
    functions from them must travel by value, like functions from __main__.
    """
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    if module is None or path is None or module_name.split(".")[0] in ("spark_ray", "sql_ext"):
        return False
    installed = {sysconfig.get_paths()[key] for key in ("purelib", "platlib", "stdlib", "platstdlib")}
    return not any(os.path.abspath(path).startswith(os.path.abspath(root) + os.sep) for root in installed)


def pickle_with_user_module(obj: Any, fn: Any) -> bytes:
    """cloudpickle ``obj``, taking the module that defines ``fn`` by value if it is the user's own."""
    import cloudpickle

    module_name = getattr(fn, "__module__", None) or ""
    by_value = _is_users_own_module(module_name)
    if by_value:
        cloudpickle.register_pickle_by_value(sys.modules[module_name])
    try:
        return cloudpickle.dumps(obj)
    finally:
        if by_value:
            cloudpickle.unregister_pickle_by_value(sys.modules[module_name])
