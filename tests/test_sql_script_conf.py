"""``context.conf`` as Byzer fills it: a script's keys as spelt, keys of the user's own, and the warning a
key that is no option gets (it may be a typo). ``ray_transform(**options)`` stays strict.

Real Spark and the embedded Ray; the code runs in ``runIn=driver`` model mode and reports what it saw.
"""

from __future__ import annotations

import pytest

from spark_ray import ConfigError, ray_transform
from sql_ext import ScriptSession, run_script
from sql_ext.script_conf import UnknownKeyWarning

SEEN = """
context.build_result([{"key": k, "value": context.conf.get(k, "<missing>")} for k in KEYS])
"""


@pytest.fixture(autouse=True)
def fresh_script_session(spark):
    ScriptSession.forget(spark)
    yield
    ScriptSession.forget(spark)


def seen(spark, settings, keys, where=""):
    text = "".join(f'!python conf "{setting}";\n' for setting in settings)
    text += '!python conf "schema=st(field(key,string),field(value,string))";\n!python conf "dataMode=model";\n'
    text += '!python conf "runIn=driver";\n'
    text += f'run command as Ray.`` where inputTable="command" and outputTable="seen"{where} and code=\'\'\'\n'
    text += f"KEYS = {keys!r}\n{SEEN}''';"
    return dict(tuple(row) for row in run_script(spark, text)["seen"].collect())


def test_a_typo_is_passed_with_a_warning_that_names_the_option(spark):
    with pytest.warns(UnknownKeyWarning) as caught:
        got = seen(spark, ["runin2=executor", "myThreshold=0.5"], ["runin2", "run_in", "myThreshold"])
    assert got == {"runin2": "executor", "run_in": "driver", "myThreshold": "0.5"}
    messages = [str(w.message) for w in caught if w.category is UnknownKeyWarning]
    assert messages == [
        "!python conf: 'runin2' is not a spark-ray option; it is passed to the code as context.conf['runin2']. "
        "Did you mean 'run_in'?",
        "!python conf: 'myThreshold' is not a spark-ray option; it is passed to the code as "
        "context.conf['myThreshold'].",
    ]


def test_where_keys_reach_the_code_as_spelt(spark):
    keys = ["pythonMode", "python_mode", "topK", "numCpus", "num_cpus"]
    with pytest.warns(UnknownKeyWarning) as caught:
        got = seen(spark, ["pythonMode=ray"], keys, where=' and topK="3" and numCpus="1"')
    assert got == {"pythonMode": "ray", "python_mode": "ray", "topK": "3", "numCpus": "1", "num_cpus": "1.0"}
    assert [str(w.message) for w in caught if w.category is UnknownKeyWarning] == [
        "where: 'topK' is not a spark-ray option; it is passed to the code as context.conf['topK']."
    ]


def test_the_script_keys_stay_for_later_statements_of_the_session(spark):
    with pytest.warns(UnknownKeyWarning):
        seen(spark, ["threshold=0.75", "rayAddress=local"], ["threshold"])
    later = seen(spark, [], ["threshold", "rayAddress", "ray_address"])
    assert later == {"threshold": "0.75", "rayAddress": "local", "ray_address": "local"}


def test_ray_transform_from_python_stays_strict(spark):
    df = spark.range(2)
    with pytest.raises(ConfigError, match="unknown option 'threshold'"):
        ray_transform(df, lambda row: row, threshold="0.75")
