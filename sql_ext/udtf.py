"""The ``ray_transform`` SQL table function, re-exported for code that imports it from sql_ext.

It lives in ``spark_ray.table_function``: it is a data path of the library,
and the script language only uses it.
"""

from spark_ray.table_function import FUNCTION_NAME, parse_options, register

__all__ = ["FUNCTION_NAME", "parse_options", "register"]
