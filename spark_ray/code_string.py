"""Running Python source in the pyjava style (Byzer's code strings).

The source runs once on the driver, where it declares its function through
``RayContext`` (see context.py). It runs with its own ``__import__`` so that
``import pyjava...`` resolves to spark-ray's implementation inside the code
string only: a real pyjava installed beside us is never shadowed. The code gets
a module name that no one can import, so cloudpickle ships its functions by
value (what ``@rayfix.last`` used to patch around).
"""

from __future__ import annotations

import builtins
import hashlib
import importlib
import logging
import traceback
from typing import Any

from .context import PythonContext
from .errors import UserCodeError
from .user_code import UserFunction, register_source, user_traceback

log = logging.getLogger(__name__)

_SHIM_PACKAGE = "spark_ray"


def _pyjava_aware_import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
    if level == 0 and (name == "pyjava" or name.startswith("pyjava.")):
        module = importlib.import_module(f"{_SHIM_PACKAGE}.{name}")
        return module if fromlist else importlib.import_module(f"{_SHIM_PACKAGE}.pyjava")
    return builtins.__import__(name, globals, locals, fromlist, level)


def code_filename(code: str) -> str:
    digest = hashlib.sha1(code.encode("utf-8")).hexdigest()[:8]
    return f"<ray_transform code {digest}>"


def execute_code(code: str, context: PythonContext) -> dict[str, Any]:
    """Run a code string with ``context`` and the pyjava shim; return its globals.

    A syntax error or an exception in the code is a UserCodeError whose
    traceback shows the code string's own lines.
    """
    filename = code_filename(code)
    register_source(filename, code)
    try:
        compiled = compile(code, filename, "exec")
    except SyntaxError as error:
        raise UserCodeError(
            f"the code string has a syntax error at line {error.lineno}: {error.msg}",
            "".join(traceback.format_exception_only(type(error), error)),
        ) from None
    own_builtins = dict(vars(builtins))
    own_builtins["__import__"] = _pyjava_aware_import
    namespace: dict[str, Any] = {
        "__name__": f"spark_ray_code_{filename[-9:-1]}",
        "__builtins__": own_builtins,
        "context": context,
        "data_manager": context,
    }
    try:
        exec(compiled, namespace)
    except Exception as error:
        raise UserCodeError(f"the code string raised {type(error).__name__}: {error}", user_traceback(error)) from None
    return namespace


def function_from_code(code: str, context: PythonContext) -> UserFunction:
    """Run the code string and return the function it declared for data mode."""
    execute_code(code, context)
    if not context.registered:
        raise UserCodeError(
            "the code string declared no function: call ray_context.foreach(fn) (per row), "
            "ray_context.map_iter(fn) (per shard) or ray_context.setup(fn), after "
            "`ray_context = RayContext.connect(context, address)`"
        )
    if len(context.registered) > 1:
        kinds = ", ".join(f"{kind}:{getattr(fn, '__name__', fn)}" for kind, fn in context.registered)
        log.warning("the code string declared %d functions (%s); the last one is used", len(context.registered), kinds)
    kind, fn = context.registered[-1]
    user = UserFunction.from_callable(fn, kind)
    user.source = code
    user.filename = code_filename(code)
    return user
