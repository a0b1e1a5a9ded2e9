"""``python -m sql_ext run SCRIPT``, and the file spark-submit runs:

    spark-submit --master local[2] sql_ext/__main__.py run job.sql

spark-submit runs this file as a script, which puts its own directory
(sql_ext/) first on sys.path, where our module names (errors, parser, ...)
would shadow top-level ones. So the directory is swapped for its parent,
which also lets a source checkout run without installing.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if __package__ in (None, "") and sys.path and os.path.abspath(sys.path[0] or ".") == _HERE:
    sys.path[0] = os.path.dirname(_HERE)

from sql_ext.cli import main  # noqa: E402  (after the sys.path fix above)

if __name__ == "__main__":
    sys.exit(main())
