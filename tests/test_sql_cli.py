"""The command line as users run it: `spark-ray run` in a subprocess, on the three seed scripts.

All three seeds run in one `spark-ray run` (one JVM, one embedded Ray: each start costs
15-20 s here), in the order data mode, run command, model mode, each with a `save`
appended so its result can be read back. `--conf spark.ray.rayAddress=local` points
seed 001's `RayContext.connect(globals(), "127.0.0.1:10001")` at the embedded Ray.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from spark_ray.errors import ConfigError

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
SPARK_RAY = pathlib.Path(sys.executable).with_name("spark-ray")
SEEDS = {
    "data": ("seed_000_data.sql", "output"),
    "run_command": ("seed_001_run_command.sql", "python_output_table"),
    "model": ("seed_000_model.sql", "output"),
}


def run_cli(*args, timeout=600, stdin=None):
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    return subprocess.run(args, input=stdin, capture_output=True, text=True, encoding="utf-8", timeout=timeout, env=env)


def spark_ray_command():
    command = shutil.which("spark-ray") if not SPARK_RAY.exists() else str(SPARK_RAY)
    assert command, "spark-ray is not installed: pip install -e . adds the console script"
    return command


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory):
    """Copy each seed, append `save overwrite <table> as parquet.<dir>`, run them all in one command."""
    work = tmp_path_factory.mktemp("seeds")
    scripts = []
    for key, (name, table) in SEEDS.items():
        script = work / name
        text = (EXAMPLES / name).read_text(encoding="utf-8")
        script.write_text(f"{text}\nsave overwrite {table} as parquet.`{work / key}`;\n", encoding="utf-8")
        scripts.append(str(script))
    result = run_cli(
        spark_ray_command(), "run", *scripts,
        "--master", "local[1]", "--conf", "spark.ray.rayAddress=local", "--conf", "spark.ui.enabled=false",
        "--show", "10",
    )  # fmt: skip
    return work, result


def read_back(spark, work, key):
    path = work / key
    assert path.exists(), f"{key} wrote nothing"
    return spark.read.parquet(str(path))


def failure_of(result, script_name):
    """The error lines the command printed for one script, if it failed there."""
    return [line for line in result.stderr.splitlines() if "error:" in line and script_name in line]


def test_seed_000_data_mode_returns_the_six_rows_intact(spark, seed_run):
    work, result = seed_run
    assert not failure_of(result, SEEDS["data"][0]), result.stderr
    df = read_back(spark, work, "data")
    assert df.schema.simpleString() == "struct<id:bigint,content:string,label:double>"
    assert sorted(tuple(row) for row in df.collect()) == [
        (9, "1", 0.0), (10, "2", 0.0), (11, "中国", 0.0), (12, "e", 0.0), (13, "5", 0.0), (14, "4", 0.0),
    ]  # fmt: skip
    # `!desc orginal_text_corpus1 json;` printed JSON that schema= accepts, and `... as output` was shown.
    desc = next(line for line in result.stdout.splitlines() if line.startswith('{"fields"'))
    assert [field["name"] for field in json.loads(desc)["fields"]] == ["id", "content", "label"]
    assert "== output (seed_000_data.sql) ==" in result.stdout
    assert "|11 |中国" in result.stdout


def test_seed_001_run_command_gives_its_seven_rows(spark, seed_run):
    work, result = seed_run
    assert not failure_of(result, SEEDS["run_command"][0]), result.stderr
    df = read_back(spark, work, "run_command")
    assert df.columns == ["ProductName", "SubProduct"]
    assert sorted(tuple(row) for row in df.collect()) == sorted([
        ("114_jackm", "57_product"), ("55_jackm", "134_product"), ("27_jackm", "137_product"),
        ("101_jackm", "129_product"), ("125_jackm", "145_product"), ("27_jackm", "60_product"),
        ("105_jackm", "49_product"),
    ])  # fmt: skip
    assert "== python_output_table (seed_001_run_command.sql) ==" in result.stdout


def test_seed_000_model_mode_returns_the_rows_it_set(spark, seed_run):
    work, result = seed_run
    failed = failure_of(result, SEEDS["model"][0])
    if failed and "ConfigError" in "\n".join(failed):
        raise ConfigError("\n".join(failed))
    assert not failed, result.stderr
    df = read_back(spark, work, "model")
    assert df.columns == ["id", "label"]
    assert sorted(tuple(row) for row in df.collect()) == [(1, 2.0), (2, 3.0), (3, 4.0), (4, 5.0)]
    assert result.returncode == 0


def test_byzer_environment_settings_warn_once_and_never_fail(seed_run):
    _, result = seed_run
    warnings = [line for line in result.stderr.splitlines() if line.startswith("spark-ray: warning:")]
    # The data and model seeds both activate streamingpro-spark-2.4.x: one warning for both.
    assert sum("streamingpro-spark-2.4.x" in line for line in warnings) == 1, warnings
    assert sum("pythonExec=" in line for line in warnings) == 1, warnings
    assert "Traceback" not in result.stderr


def test_a_failing_script_exits_1_with_the_place_and_no_traceback(tmp_path):
    script = tmp_path / "bad.sql"
    script.write_text('set a="1";\n\n!desc t jsn;\nselect 1 as x as t;\n', encoding="utf-8")
    # Checked before Spark starts, so this costs no JVM.
    result = run_cli(sys.executable, "-m", "sql_ext", "run", str(script), "--master", "local[1]", timeout=120)
    assert result.returncode == 1
    assert result.stdout == ""
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"spark-ray: error: {script}: line 3, column 9: unknown !desc style 'jsn'. Did you mean")
    assert "  3 | !desc t jsn;" in result.stderr
    assert "Traceback" not in result.stderr

    missing = run_cli(sys.executable, "-m", "sql_ext", "run", str(tmp_path / "nope.sql"), timeout=120)
    assert missing.returncode == 1 and "cannot read" in missing.stderr and "Traceback" not in missing.stderr
    usage = run_cli(sys.executable, "-m", "sql_ext", "run", str(script), "--conf", "novalue", timeout=120)
    assert usage.returncode == 2 and "--conf expects KEY=VALUE" in usage.stderr


# ---------------------------------------------------------------- --var, standard input, --progress

# Needs no Ray: one Spark start-up (a few seconds) per run.
VAR_SCRIPT = """set greeting='hi' where type=defaultParam;
set rows='''
{"id":1}
{"id":2}
{"id":3}
''';
load jsonStr.`rows` as raw;
select id * ${factor} as scaled, '${greeting}' as greeting from raw where ${cond} as output;
"""
STDIN_SCRIPT = "select count(*) as n, max(scaled) as top from output as counted;\n"
VARS = ("--var", "factor=10", "--var", "greeting=hello", "--var", "cond=id >= 2")


@pytest.fixture(scope="module")
def var_run(tmp_path_factory):
    """A script file, then a script on standard input (`-`), in one session, with --var and --progress."""
    script = tmp_path_factory.mktemp("vars") / "first.sql"
    script.write_text(VAR_SCRIPT, encoding="utf-8")
    result = run_cli(
        spark_ray_command(), "run", str(script), "-", *VARS, "--progress",
        "--master", "local[1]", "--conf", "spark.ui.enabled=false",
        stdin=STDIN_SCRIPT, timeout=300,
    )  # fmt: skip
    return script, result


def progress_frames(stderr):
    """The successive states of the progress line (tqdm redraws it after each carriage return)."""
    return [frame.rstrip() for frame in stderr.replace("\n", "\r").split("\r") if frame.strip()]


def test_cli_var_values_replace_the_references_and_beat_default_param(var_run):
    script, result = var_run
    assert result.returncode == 0, result.stderr
    # factor=10 and `cond=id >= 2` (a value may hold '='), greeting=hello over the script's defaultParam 'hi'.
    assert result.stdout.startswith(
        "== output (first.sql) ==\n"
        "+------+--------+\n"
        "|scaled|greeting|\n"
        "+------+--------+\n"
        "|20    |hello   |\n"
        "|30    |hello   |\n"
        "+------+--------+\n"
    ), result.stdout


def test_cli_reads_a_script_from_standard_input_in_the_same_session(var_run):
    _, result = var_run
    assert result.returncode == 0, result.stderr
    # The stdin script is named "-" and reads `output`, which the first script made.
    assert result.stdout.endswith("== counted (-) ==\n+---+---+\n|n  |top|\n+---+---+\n|2  |30 |\n+---+---+\n")
    assert "Traceback" not in result.stderr


def test_cli_progress_shows_each_statement_of_each_script(var_run):
    _, result = var_run
    frames = progress_frames(result.stderr)
    expected = [
        "set greeting='hi' where type=defaultParam 0/4",
        "load jsonStr.`rows` as raw 2/4",
        VAR_SCRIPT.splitlines()[-1][:50] + " 3/4",  # statements are cut to 50 characters
        "show output 4/4",
        STDIN_SCRIPT[:50] + " 0/1",
        "show counted 1/1",
    ]
    positions = [next((i for i, frame in enumerate(frames) if frame.startswith(state)), -1) for state in expected]
    assert -1 not in positions and positions == sorted(positions), frames


def test_cli_without_var_names_the_missing_variable_and_shows_no_progress(var_run):
    script, _ = var_run
    result = run_cli(
        spark_ray_command(), "run", str(script), "--var", "cond=true",
        "--master", "local[1]", "--conf", "spark.ui.enabled=false", timeout=300,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("spark-ray: error:")]
    assert errors == [
        f"spark-ray: error: {script}: line 8, column 13: no variable 'factor' has been set. "
        "Variables set so far: cond, greeting, rows. "
        "Set it earlier with `set name='''value''';` (or pass it in: --var name=value)."
    ]
    assert "  8 | select id * ${factor} as scaled" in result.stderr
    # stderr is a pipe, not a terminal: no progress line unless --progress asks for one.
    assert "\r" not in result.stderr and "0/4" not in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_var_without_equals_is_a_usage_error():
    result = run_cli(sys.executable, "-m", "sql_ext", "run", "-", "--var", "factor", stdin="", timeout=120)
    assert result.returncode == 2
    assert "--var expects KEY=VALUE, got 'factor'" in result.stderr


def test_loading_csv_files_by_a_glob_prints_no_java_exception(tmp_path):
    # Spark probes a path for a streaming sink's metadata and logs a java.io.FileNotFoundException when the
    # path is a glob, though the load works; the runner quiets that probe for the load (sources.py).
    (tmp_path / "a.csv").write_text("name,score\na,3\n", encoding="utf-8")
    (tmp_path / "b.csv").write_text("name,score\nb,5\n", encoding="utf-8")
    script = tmp_path / "load.byzer"
    script.write_text(
        f'load csv.`{tmp_path}/*.csv` where header="true" as scores;\n'
        "select name, score from scores order by name as output;\n",
        encoding="utf-8",
    )
    result = run_cli(
        sys.executable, "-m", "sql_ext", "run", str(script), "--master", "local[1]", "--no-progress", timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout == (
        "== output (load.byzer) ==\n+----+-----+\n|name|score|\n+----+-----+\n|a   |3    |\n|b   |5    |\n+----+-----+\n"
    )
    assert "FileNotFoundException" not in result.stderr and "FileStreamSink" not in result.stderr
