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


def run_cli(*args, timeout=600):
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    return subprocess.run(args, capture_output=True, text=True, encoding="utf-8", timeout=timeout, env=env)


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
    command = shutil.which("spark-ray") if not SPARK_RAY.exists() else str(SPARK_RAY)
    assert command, "spark-ray is not installed: pip install -e . adds the console script"
    result = run_cli(
        command, "run", *scripts,
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
    script.write_text('set a="1";\n\n!python conf "runin2=driver";\nselect 1 as x as t;\n', encoding="utf-8")
    # Checked before Spark starts, so this costs no JVM.
    result = run_cli(sys.executable, "-m", "sql_ext", "run", str(script), "--master", "local[1]", timeout=120)
    assert result.returncode == 1
    assert result.stdout == ""
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"spark-ray: error: {script}: line 3, column 15: unknown option 'runin2'. Did you mean")
    assert '  3 | !python conf "runin2=driver";' in result.stderr
    assert "Traceback" not in result.stderr

    missing = run_cli(sys.executable, "-m", "sql_ext", "run", str(tmp_path / "nope.sql"), timeout=120)
    assert missing.returncode == 1 and "cannot read" in missing.stderr and "Traceback" not in missing.stderr
    usage = run_cli(sys.executable, "-m", "sql_ext", "run", str(script), "--conf", "novalue", timeout=120)
    assert usage.returncode == 2 and "--conf expects KEY=VALUE" in usage.stderr
