"""sql_ext.progress: what the progress line shows while a script runs, on the shared local Spark and Ray.

The line is drawn on stderr with carriage returns (tqdm); each redraw is one ``\\r``-separated
frame, so the tests read the frames in order.
"""

from __future__ import annotations

import re

import pytest

from sql_ext import ScriptSession
from sql_ext.progress import Progress, ProgressWriter

# Sleeps in a Ray task long enough for the progress thread (every 0.5 s) to see it.
SLOW_CODE = """
import time
from pyjava.api.mlsql import RayContext
ray_context = RayContext.connect(context, "local")  # "local": on Ray, not in the Spark worker
def slow(row):
    time.sleep(3)
    return row
ray_context.foreach(slow)
"""


pytestmark = pytest.mark.usefixtures("fresh_script_session")  # conftest.py


def frames(stderr: str) -> list[str]:
    """The successive states of the progress line, trailing padding removed, blanks dropped."""
    return [frame.rstrip() for frame in re.split(r"[\r\n]", stderr) if frame.strip()]


def run_with_progress(spark, text: str, enabled: bool) -> None:
    with Progress(spark, enabled) as progress:
        session = ScriptSession.of(spark)
        session.out = ProgressWriter(progress)
        session.run(text, on_statement=progress.statement)
        progress.done()
        progress.phase("show t")


def test_the_line_names_each_statement_and_counts_them(spark, capsys):
    text = """set n='3';
select id from range(${n}) as t;
!desc t st;"""
    run_with_progress(spark, text, enabled=True)
    captured = capsys.readouterr()
    # !desc printed through the bar: whole lines on stdout, no bar characters in them.
    assert captured.out == "st(field(id,long))\n"
    shown = frames(captured.err)
    expected = [
        "set n='3' 0/3",
        "select id from range(${n}) as t 1/3",
        "!desc t st 2/3",
        "!desc t st 3/3",  # done(): every statement has run
        "show t 3/3",
    ]
    # Each state appears, in this order (a state may be redrawn, and Spark activity may be appended).
    positions = [next(i for i, frame in enumerate(shown) if frame.startswith(state)) for state in expected]
    assert positions == sorted(positions), shown
    assert all(re.fullmatch(r".* \d+/3 \[\d\d:\d\d\].*", frame) for frame in shown if "/3" in frame), shown


def test_statement_text_is_cut_to_fifty_characters(spark, capsys):
    long_select = "select id, id + 1 as next_id, id * 2 as twice, id * 3 as thrice from range(2) as t;"
    run_with_progress(spark, long_select, enabled=True)
    shown = frames(capsys.readouterr().err)
    assert any(frame.startswith(long_select[:50] + " 0/1") for frame in shown), shown
    assert not any(long_select[:51] in frame for frame in shown)


def test_disabled_progress_prints_nothing_on_stderr_and_passes_output_through(spark, capsys):
    run_with_progress(spark, "select 1L as id as t;\n!desc t;", enabled=False)
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.splitlines() == ["col_name  data_type  nullable", "id        long       false"]


def test_the_line_shows_the_running_spark_stage_and_the_busy_ray_cpus(spark, capsys, tmp_path):
    # Executor mode: saving `slow` runs a Spark stage whose task waits on a Ray task that sleeps.
    text = f"""select 1L as id as t;
!ray on t '''{SLOW_CODE}''' named slow where schema="id long";
save overwrite slow as parquet.`{tmp_path}/slow`;"""
    run_with_progress(spark, text, enabled=True)
    shown = frames(capsys.readouterr().err)
    during_save = [frame for frame in shown if frame.startswith("save overwrite slow as parquet")]
    assert any(re.search(r", Spark stage \d+: 0/1 tasks", frame) for frame in during_save), shown
    assert any(re.search(r"Ray: 1/\d+ CPUs busy", frame) for frame in during_save), shown
    assert spark.read.parquet(str(tmp_path / "slow")).collect()[0].id == 1
