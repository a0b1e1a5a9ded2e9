"""sql_ext: Byzer-style scripts and Spark SQL in front of spark_ray.ray_transform.

People who used Byzer write scripts; people who use Spark write SQL. Both
reach ``ray_transform`` without a line of PySpark:

* ``run_script(spark, text)`` runs a script (``set``, ``load``, ``select``,
  ``save``, ``!python conf``, ``!ray on``, ``run command as Ray``, ``!desc``,
  ``include``, ``register``, ``!if``/``!fi`` and Byzer's other ``!`` commands)
  or a Byzer Notebook Python cell;
* ``spark-ray run SCRIPT`` does the same from a shell, and
  ``spark-submit sql_ext/__main__.py run SCRIPT`` on a cluster;
* ``register(spark)`` adds the table function
  ``SELECT * FROM ray_transform(TABLE(t), '<code>', '<schema>'[, '<options>'])``.
"""

from .errors import ScriptError
from .parser import parse_script
from .runner import ScriptRun, ScriptSession, ShownTable, check_script, run_script
from .udtf import register

__all__ = [
    "ScriptError",
    "ScriptRun",
    "ScriptSession",
    "ShownTable",
    "check_script",
    "parse_script",
    "register",
    "run_script",
]
