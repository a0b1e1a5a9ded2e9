# A least-squares line through the points, with plain Python: y = k * x + b.
# ruff: noqa: F821  (Byzer gives the code `context`)
from pyjava.api.mlsql import RayContext

ray_context = RayContext.connect(globals(), None)
points = list(ray_context.collect())
n = len(points)
mean_x = sum(p["x"] for p in points) / n
mean_y = sum(p["y"] for p in points) / n
k = sum((p["x"] - mean_x) * (p["y"] - mean_y) for p in points) / sum((p["x"] - mean_x) ** 2 for p in points)
b = mean_y - k * mean_x
context.build_result([{"k": round(k, 3), "b": round(b, 3), "n": n}])
