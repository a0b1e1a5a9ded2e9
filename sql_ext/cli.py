"""``spark-ray run SCRIPT``: run Byzer-style scripts from a shell or through spark-submit.

    spark-ray run job.sql [--master URL] [--conf k=v ...] [--var name=value ...] [--show N]

The script is parsed before any JVM starts, so a syntax error costs a second,
not a Spark start-up. Then a SparkSession is built (``local[*]`` unless
``--master`` says otherwise; under spark-submit, the one spark-submit set
up), the statements run with a progress line on stderr, and the tables the
script marks for display (each ``select ... as output``, else its last table)
are printed to stdout. Several scripts run in one session, in order, so the
``!python conf`` settings of one stay in force for the next and the tables one
makes are there for the next, as a notebook's cells: a ``.py`` file is a Byzer
Notebook Python cell (``#%python`` first, see notebook.py). Project paths
(``include project.`...```, ``!pyInclude project ...``) are relative to each
script's own folder.

Exit status: 0 on success, 1 when a script fails (the message names the line,
column and statement; no Python traceback), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from spark_ray.conf import SPARK_CONF_PREFIX, canonical_name
from spark_ray.errors import SparkRayError

from .errors import ScriptError
from .notebook import is_python_cell
from .runner import check_script

PROG = "spark-ray"
DEFAULT_MASTER = "local[*]"
DEFAULT_SHOW = 20
# pyspark logs every SQL error it raises, with the JVM stack; the ScriptError says it better.
_NOISY_LOGGERS = ("SQLQueryContextLogger", "DataFrameQueryContextLogger")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Run Byzer-style scripts on Spark and Ray.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="run one or more scripts in one Spark session")
    run.add_argument("scripts", nargs="+", metavar="SCRIPT", help="script file(s); '-' reads standard input")
    run.add_argument("--master", help=f"Spark master URL (default: {DEFAULT_MASTER}, or spark-submit's)")
    run.add_argument("--conf", action="append", default=[], metavar="K=V",
                     help="a Spark conf setting; spark.ray.<option>=... sets a spark-ray option")  # fmt: skip
    run.add_argument("--var", action="append", default=[], metavar="NAME=VALUE", help="a script variable, for ${NAME}")
    run.add_argument("--show", type=int, default=DEFAULT_SHOW, metavar="N",
                     help=f"rows to print of each displayed table (default {DEFAULT_SHOW}; 0 prints none)")  # fmt: skip
    progress = run.add_mutually_exclusive_group()
    progress.add_argument("--progress", dest="progress", action="store_true", default=None,
                          help="show the progress line (default: when stderr is a terminal)")  # fmt: skip
    progress.add_argument("--no-progress", dest="progress", action="store_false")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The ``spark-ray`` command. Returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        conf = _pairs(args.conf, "--conf")
        variables = _pairs(args.var, "--var")
        for key in conf:
            if key.startswith(SPARK_CONF_PREFIX):
                canonical_name(key[len(SPARK_CONF_PREFIX) :])
        scripts = [(path, _read(path)) for path in args.scripts]
        for path, text in scripts:
            _parse(path, text)
    except (ScriptError, SparkRayError, OSError) as error:
        _fail(error)
        return 1
    except ValueError as error:
        parser.error(str(error))
    try:
        return _run(args, conf, variables, scripts)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def _run(
    args: argparse.Namespace, conf: dict[str, str], variables: dict[str, str], scripts: list[tuple[str, str]]
) -> int:
    from spark_ray import shutdown

    from .progress import Progress, ProgressWriter
    from .runner import ScriptSession

    logging.basicConfig(format=f"{PROG}: %(levelname)s: %(message)s", level=logging.WARNING)
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    enabled = sys.stderr.isatty() if args.progress is None else args.progress
    spark = _session(args.master, conf)
    status = 0
    try:
        with Progress(spark, enabled) as progress, _warnings_through(progress):
            session = ScriptSession.of(spark)
            session.out = ProgressWriter(progress)
            for path, text in scripts:
                try:
                    base_dir = None if path == "-" else os.path.dirname(os.path.abspath(path))
                    result = session.run(text, variables, on_statement=progress.statement, base_dir=base_dir)
                    progress.done()
                    for shown in result.shown if args.show > 0 else []:
                        progress.phase(f"show {shown.name}")
                        table = session.attribute(shown.statement, functools.partial(_show, shown.df, args.show))
                        progress.write(f"== {shown.name} ({os.path.basename(path)}) ==\n{table}\n")
                except (ScriptError, SparkRayError) as error:
                    _fail(error, path)
                    status = 1
                    break
    finally:
        spark.stop()  # Spark first: its Python workers hold Ray connections
        shutdown()
    return status


def _session(master: str | None, conf: dict[str, str]) -> Any:
    """A SparkSession: spark-submit's when it started us, a local one, or one on ``master``."""
    from pyspark.sql import SparkSession

    from spark_ray.local_spark import local_spark

    started_by_spark_submit = "PYSPARK_GATEWAY_PORT" in os.environ
    if master is None and started_by_spark_submit:
        builder = SparkSession.builder.appName(PROG)
    elif master is None or master.startswith("local"):
        return local_spark(master or DEFAULT_MASTER, app_name=PROG, **conf)
    else:
        builder = SparkSession.builder.master(master).appName(PROG)
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def _show(df: Any, rows: int) -> str:
    """What ``df.show(rows, truncate=False)`` prints, as text, so the progress line stays intact."""
    show_string = getattr(df, "_show_string", None)
    if show_string is not None:
        return str(show_string(rows, truncate=False)).rstrip("\n")
    df.show(rows, truncate=False)
    return ""


class _warnings_through:
    """Print warnings as ``spark-ray: warning: ...`` lines that do not tear the progress line."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress
        self.saved: Any = None

    def __enter__(self) -> None:
        self.saved = warnings.showwarning

        def show(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
            text = f"{PROG}: warning: {message}\n"
            if self.progress.bar is None:
                sys.stderr.write(text)
            else:
                self.progress.bar.write(text.rstrip("\n"), file=sys.stderr)

        warnings.showwarning = show

    def __exit__(self, *exc: object) -> None:
        warnings.showwarning = self.saved


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in items:
        key, equals, value = item.partition("=")
        if not equals or not key.strip():
            raise ValueError(f"{flag} expects KEY=VALUE, got {item!r}")
        found[key.strip()] = value
    return found


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    with open(path, encoding="utf-8") as file:
        return file.read()


def _parse(path: str, text: str) -> None:
    """Parse and check now, before Spark starts: a typo should cost a second, not a JVM start-up."""
    if path.endswith(".py") and not is_python_cell(text):
        raise SparkRayError(
            f"{path} is Python but not a Byzer Notebook Python cell: start it with the line #%python "
            "(then #%input=TABLE, #%output=TABLE, #%schema=..., ... lines) to run it as one"
        )
    try:
        check_script(text)
    except ScriptError as error:
        error.script_path = path  # type: ignore[attr-defined]
        raise


def _fail(error: BaseException, path: str | None = None) -> None:
    path = path or getattr(error, "script_path", None)
    where = f"{path}: " if path else ""
    if isinstance(error, OSError) and error.filename:
        message = f"cannot read {error.filename}: {error.strerror}"
    elif isinstance(error, ScriptError):
        message = str(error)
    else:
        message = f"{type(error).__name__}: {error}"
    print(f"{PROG}: error: {where}{message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
