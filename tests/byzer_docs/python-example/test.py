# A code file as MLSQL's console kept them: folder python-example, file test.py (see mlsql_py_include.byzer).
from pyjava.api.mlsql import RayContext

ray_context = RayContext.connect(globals(), None)


def double(row):
    row["double_score"] = row["score"] * 2
    return row


ray_context.foreach(double)
