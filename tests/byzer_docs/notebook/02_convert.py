# fmt: off
#%python
#%input=weather
#%output=weather_f
#%schema=st(field(city,string),field(fahrenheit,double))
#%runIn=driver
#%dataMode=model
#%cache=false
#%env=source activate dev
# fmt: on
# ruff: noqa: F821  (Byzer gives the code `context`)

from pyjava.api.mlsql import PythonContext, RayContext

context: PythonContext = context
ray_context = RayContext.connect(globals(), None)
rows = [{"city": row["city"], "fahrenheit": row["temp"] * 9 / 5 + 32} for row in ray_context.collect()]
context.build_result(rows)
