"""Scripts written as Byzer's docs write them (tests/byzer_docs/), run and compared with what they should print.

Each case runs through the real runner (a ScriptSession on the shared Spark and
embedded Ray) and prints what `spark-ray run` prints: the script's own output
(`!println`, `!show`, `!desc`), then every table it shows as
`== name (file) ==` and `df.show(20, truncate=False)`. Two cases also run
through the `spark-ray` command line, in one process, as a user would run them.
Set BYZER_DOCS_UPDATE=1 to rewrite the .expected files from what the scripts print
(then read the diff: the files are the specification).
"""

from __future__ import annotations

import io
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

import spark_ray
from sql_ext import ScriptSession

DOCS = pathlib.Path(__file__).resolve().parent / "byzer_docs"
CASES = sorted(str(path.relative_to(DOCS).with_suffix("")) for path in DOCS.rglob("*.expected"))
UPDATE = os.environ.get("BYZER_DOCS_UPDATE") == "1"
SPARK_RAY = pathlib.Path(sys.executable).with_name("spark-ray")
# Cases run again through the command line, in this order, in one `spark-ray run`.
CLI_CASES = ("notebook", "project/main")


def _has_register_function() -> bool:
    try:
        spark_ray.register_function  # noqa: B018
    except (AttributeError, ImportError):
        return False
    return True


NEEDS = {"register_table_function": (_has_register_function(), "spark_ray.register_function is not there yet")}


def case_files(case: str) -> list[pathlib.Path]:
    """The files of a case: one script, or a folder of notebook cells in name order."""
    base = DOCS / case
    if base.is_dir():
        return sorted(path for path in base.iterdir() if path.suffix in (".byzer", ".py"))
    found = [base.with_suffix(suffix) for suffix in (".byzer", ".py") if base.with_suffix(suffix).exists()]
    assert len(found) == 1, f"{case}.expected needs one {case}.byzer or {case}.py beside it"
    return found


def run_case(spark, case: str) -> str:
    ScriptSession.forget(spark)
    session = ScriptSession.of(spark)
    out = io.StringIO()
    session.out = out
    try:
        for path in case_files(case):
            result = session.run(path.read_text(encoding="utf-8"), base_dir=path.parent)
            for shown in result.shown:
                table = session.attribute(shown.statement, lambda df=shown.df: df._show_string(20, truncate=False))
                out.write(f"== {shown.name} ({path.name}) ==\n{table.rstrip(chr(10))}\n")
    finally:
        ScriptSession.forget(spark)
    return out.getvalue()


def expected(case: str) -> str:
    return (DOCS / f"{case}.expected").read_text(encoding="utf-8")


@pytest.mark.parametrize("case", CASES)
def test_doc_script_prints_what_it_should(spark, case):
    available, reason = NEEDS.get(case, (True, ""))
    if not available:
        pytest.skip(reason)
    printed = run_case(spark, case)
    if UPDATE:
        (DOCS / f"{case}.expected").write_text(printed, encoding="utf-8")
    assert printed == expected(case)


def test_every_case_has_its_script():
    assert len(CASES) >= 10
    for case in CASES:
        assert case_files(case)


def test_doc_scripts_through_the_command_line():
    command = str(SPARK_RAY) if SPARK_RAY.exists() else shutil.which("spark-ray")
    assert command, "spark-ray is not installed: pip install -e . adds the console script"
    files = [str(path) for case in CLI_CASES for path in case_files(case)]
    result = subprocess.run(
        [command, "run", *files, "--master", "local[2]", "--conf", "spark.ui.enabled=false", "--no-progress"],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=900,
        env=dict(os.environ, PYTHONIOENCODING="utf-8"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout == "".join(expected(case) for case in CLI_CASES)
