"""The model-mode cases: one program reads the whole table and sets the output, beside Spark-native.

Model mode runs user code once over every shard, so its cost is reading the
table into the program and the output back into Spark. Two ways to write the
program, the identity in both:

* ``model_collect``: ``ray_context.collect()`` -> ``context.build_result(rows)``,
  the pyjava way (a Python dict per row, both ways);
* ``model_batches``: ``ray_context.collect_batches()`` ->
  ``build_result_from_batches``, Arrow in and Arrow out;
* ``model_dataset``: ``ray_context.to_dataset()`` (streamed by Ray Data) ->
  ``iter_batches`` -> ``build_result_from_batches``.
"""

from collections.abc import Callable
from typing import Any

from pyspark.sql import DataFrame

from cases import BenchContext, Case, Target, Thunk
from common import noop_write
from spark_ray import ray_transform


def _collect_program() -> Callable[[Any], None]:
    def program(context: Any) -> None:
        from spark_ray.context import RayContext

        ray_context = RayContext.connect(context, "local")
        context.build_result(ray_context.collect())

    return program


def _batches_program() -> Callable[[Any], None]:
    def program(context: Any) -> None:
        from spark_ray.context import RayContext

        ray_context = RayContext.connect(context, "local")
        ray_context.build_result_from_batches(ray_context.collect_batches())

    return program


def _dataset_program() -> Callable[[Any], None]:
    def program(context: Any) -> None:
        from spark_ray.context import RayContext

        ray_context = RayContext.connect(context, "local")
        dataset = ray_context.to_dataset()
        ray_context.build_result_from_batches(dataset.iter_batches(batch_format="pyarrow", batch_size=None))

    return program


def model_collect(ctx: BenchContext, df: DataFrame) -> Thunk:
    program = _collect_program()
    return lambda: noop_write(ray_transform(df, program, df.schema, mode="model"))


def model_batches(ctx: BenchContext, df: DataFrame) -> Thunk:
    program = _batches_program()
    return lambda: noop_write(ray_transform(df, program, df.schema, mode="model"))


def model_dataset(ctx: BenchContext, df: DataFrame) -> Thunk:
    program = _dataset_program()
    return lambda: noop_write(ray_transform(df, program, df.schema, mode="model"))


MODEL_CASES = [
    Case("model_collect", "mode=model: ray_context.collect() -> context.build_result(rows)", model_collect,
         target=Target("ratio", 3.0)),
    Case("model_batches", "mode=model: collect_batches() -> build_result_from_batches (Arrow in, Arrow out)",
         model_batches, target=Target("ratio", 2.0)),
    Case("model_dataset", "mode=model: to_dataset() -> iter_batches -> build_result_from_batches", model_dataset),
]  # fmt: skip
