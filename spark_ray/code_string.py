"""Running Python source in the pyjava style (Byzer's code strings).

In data mode the source runs once on the driver, where it declares its
function through ``RayContext`` (see context.py); in model mode it runs once
where the program runs. Either way the Ray address the code names in
``RayContext.connect`` is honoured unless the caller configured one; a bare
``host:port`` there is a Ray Client server when one answers (pyjava's meaning,
``resolve_code_address``). It runs with its own ``__import__`` so that
``import pyjava...`` resolves to spark-ray's implementation inside the code
string only: a real pyjava installed beside us is never shadowed. The code gets
a module name that no one can import, so cloudpickle ships its functions by
value (what ``@rayfix.last`` used to patch around).
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import importlib
import logging
import traceback
import warnings
from collections.abc import Callable
from typing import Any

from .conf import RayTransformConf
from .context import UNSET, PythonContext
from .errors import ConfigError, UserCodeError
from .ray_addresses import (
    CLIENT_SCHEME,
    RAY_CLIENT_DEFAULT_PORT,
    is_client_address,
    ray_client_answers,
    split_host_port,
)
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


def user_function(code: Callable[..., Any] | str, conf: RayTransformConf) -> tuple[UserFunction, RayTransformConf]:
    """The data-mode function to run, and the conf adjusted by the address a code string asked for.

    Shared by ``ray_transform`` and the SQL table function, so both follow one
    rule for the code's own address.
    """
    if not isinstance(code, str):
        return UserFunction.from_callable(code, conf.kind), conf
    context = PythonContext(code_conf(conf))
    user = function_from_code(code, context)
    asked = [name for name in ("kind", "batch_format") if name in conf.given]
    if asked and user.kind != conf.kind:
        raise ConfigError(
            f"{' and '.join(f'{name}={getattr(conf, name)!r}' for name in asked)} was given, but the code string "
            f"declares a {user.kind!r} function ({_DECLARED_BY[user.kind]}); the code string decides: remove the "
            "option, or declare the function the other way"
        )
    return user, apply_code_address(context.requested_address, conf)


# How a code string declares each kind.
_DECLARED_BY = {
    "row": "ray_context.foreach",
    "rows": "ray_context.map_iter",
    "arrow": "ray_context.map_batches(fn, batch_format='pyarrow')",
    "pandas": "ray_context.map_batches(fn, batch_format='pandas')",
}


def code_conf(conf: RayTransformConf) -> dict[str, str]:
    """What the code sees as ``context.conf``: the options by spark-ray's names, and the script's keys as spelt.

    Byzer's code reads its settings by the names the script used
    (``context.conf["rayAddress"]``) and reads keys of the user's own, so a
    script's keys (``conf.script_conf``) are there as written, beside
    ``ray_address``, ``run_in``, ... (``as_strings``), which code written for
    spark-ray reads. A key written both ways has the script's value.
    """
    merged = {key: value for key, value in conf.as_strings().items() if key != "script_conf"}
    merged.update({str(key): str(value) for key, value in (conf.script_conf or {}).items()})
    return merged


def apply_code_address(asked: Any, conf: RayTransformConf) -> RayTransformConf:
    """Byzer code names its own Ray address; a configured ray_address wins, with a warning.

    A bare ``host:port`` is resolved by ``resolve_code_address`` (Ray Client or a cluster's GCS).
    """
    if asked is UNSET:
        return conf
    if conf.ray_address is not None:
        if asked is not None and conf.ray_address not in (asked, f"{CLIENT_SCHEME}{asked}"):
            warnings.warn(
                f"the code string connects to {asked!r}, but ray_address={conf.ray_address!r} was given; "
                "using the given address",
                stacklevel=4,
            )
        return conf
    if asked is None:  # pyjava: connect(context, None) runs without Ray
        return conf.replace(python_mode="python")
    return conf.replace(ray_address=resolve_code_address(str(asked)))


def resolve_code_address(address: str, probe: Callable[[str, int], bool | None] = ray_client_answers) -> str:
    """The Ray address a code string's ``RayContext.connect(..., address)`` means.

    pyjava handed that address to Ray Client (``ray.util.connect``) on every Ray since 1.0, so Byzer
    scripts name Ray Client servers there, as a bare ``host:port`` (Byzer's docs: ``<head>:10001``),
    while ``ray_address`` in spark-ray takes a cluster's GCS address unless it says ``ray://``. So a
    bare ``host:port`` is asked (``probe``, see ``ray_addresses.ray_client_answers``):

    - a Ray Client server answers there: ``ray://host:port``;
    - something else answers (a cluster's GCS port, e.g. 6379): ``host:port``, as written;
    - nothing can be asked (nobody listens, or Ray Client's packages are missing): port 10001, Ray
      Client's default, means ``ray://host:10001``; any other port stays as written. The connection
      then fails at once, naming that address (or asking for ``ray[client]``).

    ``ray://...``, ``local``, ``auto`` and anything that is not ``host:port`` are kept as written.

    >>> resolve_code_address("head:10001", probe=lambda host, port: None)
    'ray://head:10001'
    >>> resolve_code_address("head:6379", probe=lambda host, port: None)
    'head:6379'
    >>> resolve_code_address("head:17019", probe=lambda host, port: True)
    'ray://head:17019'
    """
    if is_client_address(address):
        return address
    target = split_host_port(address)
    if target is None:
        return address
    answer = probe(*target)
    if answer is None:
        answer = target[1] == RAY_CLIENT_DEFAULT_PORT
    resolved = f"{CLIENT_SCHEME}{address}" if answer else address
    if resolved != address:
        log.info("the code string's address %r is a Ray Client server: connecting to %r", address, resolved)
    return resolved


def requested_address_in(code: str) -> Any:
    """The address literal a code string passes to ``RayContext.connect``, or UNSET.

    Model-mode code runs once, so its Ray connection must be made before it
    starts; the address is read from the source instead of running it twice.
    """
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return UNSET  # execute_code reports it with the line
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "connect":
            keyword = next((k.value for k in node.keywords if k.arg in ("address", "url")), None)
            address = node.args[1] if len(node.args) > 1 else keyword
            if isinstance(address, ast.Constant) and (address.value is None or isinstance(address.value, str)):
                return address.value
    return UNSET
