"""The seed workload (Byzer's `!ray on` example) through Ray, in both run_in modes.

Run with `make run`. It starts a local Spark and an embedded Ray, sends the
seed table (ids 9..14, "中国" among the contents) through Ray, and prints the
input and each output table.
"""

from __future__ import annotations

import time

from spark_ray import ray_transform
from spark_ray.local_spark import local_spark

SEED_JSON_LINES = """
{"id":9,"content":"1","label":0.0}
{"id":10,"content":"2","label":0.0}
{"id":11,"content":"中国","label":0.0}
{"id":12,"content":"e","label":0.0}
{"id":13,"content":"5","label":0.0}
{"id":14,"content":"4","label":0.0}
"""

# Seed 000's data-mode code, unchanged except for the Ray address ("local": the embedded Ray).
SEED_CODE = """
from pyjava.api.mlsql import RayContext

ray_context = RayContext.connect(context, "local")

def echo(rows):
    for row in rows:
        yield row

ray_context.map_iter(echo)
"""

SCHEMA = "st(field(id,long),field(content,string),field(label,double))"


def main() -> None:
    spark = local_spark("local[2]", app_name="spark-ray-demo")
    try:
        lines = [line for line in SEED_JSON_LINES.strip().splitlines()]
        table = spark.read.schema("id long, content string, label double").json(spark.sparkContext.parallelize(lines))
        print("input table:")
        table.show()
        for run_in in ("executor", "driver"):
            started = time.perf_counter()
            out = ray_transform(table, SEED_CODE, SCHEMA, run_in=run_in)
            rows = out.orderBy("id").collect()
            print(f"output of the seed's code on Ray, run_in={run_in} ({time.perf_counter() - started:.1f} s):")
            out.orderBy("id").show()
            assert [tuple(r) for r in rows] == [tuple(r) for r in table.orderBy("id").collect()]

        def shout(row: dict) -> dict:
            return {"id": row["id"], "content": row["content"].upper() + "!"}

        print("a Python callable instead of a code string (run_in=executor):")
        ray_transform(table, shout, "id long, content string").orderBy("id").show()
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
