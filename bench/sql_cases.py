"""The SQL cases: the table functions beside Spark's own Python UDTF and the DataFrame path.

Two questions, each answered against the right floor:

* the generic ``ray_transform(TABLE(t), '<code>', '<schema>')`` must take a
  schema per query, so it needs ``analyze`` and Spark's row-at-a-time UDTF
  protocol; its floor is Spark's own Python UDTF doing the identity with
  ``analyze`` (``udtf_floor``). Spark sends every argument with every row,
  constants included, so ``udtf_floor_args`` calls the same floor with the
  code and schema strings the generic function takes, to show that share;
* a function made by ``register_function`` has its schema fixed, so it can be
  vectorized; it is compared with ``ray_transform(df, ...)`` on the same data,
  and ``arrow_udtf_floor`` shows what its protocol (``arrow_udtf``, with the
  TABLE argument Spark packs into a struct per row) costs by itself, against
  ``mapInArrow``.
"""

from collections.abc import Iterator
from typing import Any

from pyspark.sql import DataFrame

from cases import BenchContext, Case, Skip, Target, Thunk, _identity_batch
from common import noop_write

VIEW = "spark_ray_bench_t"

IDENTITY_CODE = """
from pyjava.api.mlsql import RayContext
ray_context = RayContext.connect(context, "local")
ray_context.foreach(lambda row: row)
"""


def _floor_udtf() -> Any:
    """Spark's own Python UDTF: identity, its schema from analyze (the generic function's protocol)."""
    from pyspark.sql.functions import udtf
    from pyspark.sql.udtf import AnalyzeArgument, AnalyzeResult

    class Identity:
        @staticmethod
        def analyze(table: AnalyzeArgument, *constants: AnalyzeArgument) -> AnalyzeResult:
            return AnalyzeResult(schema=table.dataType)

        def eval(self, row: Any, *constants: Any) -> Iterator[tuple[Any, ...]]:
            yield tuple(row)

    return udtf(Identity, useArrow=False)


def _arrow_floor_udtf(schema: Any) -> Any:
    """Spark's own vectorized table function (``arrow_udtf``, pyspark 4.1+), identity: the protocol
    ``register_function`` uses, with its schema fixed as there."""
    try:
        from pyspark.sql.functions import arrow_udtf
    except ImportError:
        raise Skip("arrow_udtf: needs pyspark 4.1") from None

    class Identity:
        def eval(self, batch: Any) -> Iterator[Any]:
            yield batch

    return arrow_udtf(Identity, returnType=schema)


def udtf_floor(ctx: BenchContext, df: DataFrame) -> Thunk:
    df.createOrReplaceTempView(VIEW)
    ctx.spark.udtf.register("spark_ray_bench_floor", _floor_udtf())
    query = f"SELECT * FROM spark_ray_bench_floor(TABLE({VIEW}))"
    return lambda: noop_write(ctx.spark.sql(query))


def arrow_udtf_floor(ctx: BenchContext, df: DataFrame) -> Thunk:
    df.createOrReplaceTempView(VIEW)
    ctx.spark.udtf.register("spark_ray_bench_arrow_floor", _arrow_floor_udtf(df.schema))
    query = f"SELECT * FROM spark_ray_bench_arrow_floor(TABLE({VIEW}))"
    return lambda: noop_write(ctx.spark.sql(query))


def udtf_floor_args(ctx: BenchContext, df: DataFrame) -> Thunk:
    """The same floor, called with the generic function's arguments (the code and the schema)."""
    df.createOrReplaceTempView(VIEW)
    ctx.spark.udtf.register("spark_ray_bench_floor", _floor_udtf())
    query = f"SELECT * FROM spark_ray_bench_floor(TABLE({VIEW}), :code, 'id long, x double, s string')"
    return lambda: noop_write(ctx.spark.sql(query, args={"code": IDENTITY_CODE}))


def sql_generic(ctx: BenchContext, df: DataFrame) -> Thunk:
    import spark_ray

    df.createOrReplaceTempView(VIEW)
    spark_ray.register(ctx.spark)
    query = f"SELECT * FROM ray_transform(TABLE({VIEW}), :code, 'id long, x double, s string')"
    return lambda: noop_write(ctx.spark.sql(query, args={"code": IDENTITY_CODE}))


def sql_registered(ctx: BenchContext, df: DataFrame) -> Thunk:
    import spark_ray

    df.createOrReplaceTempView(VIEW)
    spark_ray.register_function(ctx.spark, "spark_ray_bench_identity", _identity_batch(), df.schema, kind="arrow")
    query = f"SELECT * FROM spark_ray_bench_identity(TABLE({VIEW}))"
    return lambda: noop_write(ctx.spark.sql(query))


SQL_CASES = [
    Case("udtf_floor", "Spark's Python UDTF identity with analyze (useArrow=False): the SQL floor", udtf_floor,
         baseline="spark_native", ray_cpus=None),
    Case("udtf_floor_args", "the same, called with the code and schema arguments sql_generic takes",
         udtf_floor_args, baseline="udtf_floor", ray_cpus=None),
    Case("sql_generic", "SELECT * FROM ray_transform(TABLE(t), '<foreach identity>', '<schema>')", sql_generic,
         baseline="udtf_floor", target=Target("ratio", 1.3)),
    Case("arrow_udtf_floor", "Spark's arrow_udtf identity, schema fixed (register_function's protocol): its floor",
         arrow_udtf_floor, baseline="spark_native", ray_cpus=None),
    Case("sql_registered", "register_function(identity, kind=arrow); SELECT * FROM f(TABLE(t))", sql_registered,
         baseline="executor_arrow", target=Target("ratio", 1.25)),
]  # fmt: skip
