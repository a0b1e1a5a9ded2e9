"""A child process for test_load_and_leaks: driver memory under a limit, then a quiet exit.

In its own process, so that the memory it measures (and any limit it sets)
concern nothing but this driver:

1. A warm-up driver-mode call, then the baseline: this process's private
   memory (RssAnon: resident and not shared, so without the pages of Ray's
   object store that the driver maps to read results).
2. A driver-mode call over a generated table whose Arrow size is
   ``--table-factor`` times ``--limit-mb``, with a sampler thread
   (bench/driver_memory.py's) keeping the peak.
3. A small executor-path call, so that Spark's Python workers are joined to
   Ray and own objects there while they live.
4. Ray stops before Spark (as at any exit of a script that never calls
   ``spark.stop()``): the order in which Spark's Python workers used to log
   ``core_worker.cc ... E ... Attempting to recover N lost objects``. The test
   reads this process's stdout and stderr for such lines.

The result is written with ``processes.write_result``.
"""

from __future__ import annotations

import argparse
import os
import sys

BENCH_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")
sys.path.insert(0, BENCH_DIR)  # bench/driver_memory.py and its sibling common.py

from processes import write_result  # noqa: E402

from driver_memory import MB, _current_private, _Sampler  # noqa: E402

# Bytes per row of the generated table in Arrow: an 8-byte id, a 4-byte string offset and the text.
TEXT_BYTES = 200


def _measure(df: object) -> tuple[int, int, int]:
    """(rows, sum of id, Arrow bytes) of a table, in one pass: its batches as Spark hands them to Python."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def sizes(batches):  # type: ignore[no-untyped-def]
        rows = total = nbytes = 0
        for batch in batches:
            rows, nbytes = rows + batch.num_rows, nbytes + batch.nbytes
            total += pc.sum(batch.column("id")).as_py() or 0
        yield pa.RecordBatch.from_pydict({"rows": [rows], "total": [total], "nbytes": [nbytes]})

    found = df.mapInArrow(sizes, "rows long, total long, nbytes long")  # type: ignore[attr-defined]
    return tuple(found.selectExpr("sum(rows)", "sum(total)", "sum(nbytes)").first())  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit-mb", type=int, required=True)
    parser.add_argument("--table-factor", type=float, default=2.0)
    parser.add_argument("--batch-mb", type=int, default=8)
    args = parser.parse_args()

    import pyarrow as pa

    from spark_ray import cluster, ray_transform
    from spark_ray.conf import RayTransformConf
    from spark_ray.local_spark import local_spark

    spark = local_spark("local[2]", app_name="spark-ray-leaks-child", **{"spark.ui.enabled": "false"})
    cluster.ensure_driver_ray(RayTransformConf(local_ray_cpus=2))
    limit = args.limit_mb * MB
    rows = int(args.table_factor * limit / (8 + 4 + TEXT_BYTES)) + 1
    table = spark.range(rows, numPartitions=4).selectExpr("id", f"repeat('x', {TEXT_BYTES}) as s")

    def identity(batch: pa.RecordBatch) -> pa.RecordBatch:
        return batch

    options = {"run_in": "driver", "kind": "arrow", "batch_bytes": args.batch_mb * MB}
    # Warm-up: every import and first-time allocation of the driver path happens here, not in the measure.
    ray_transform(table.limit(1000), identity, table.schema, **options).count()
    baseline = _current_private() or 0
    sampler = _Sampler()
    sampler.start()
    out = ray_transform(table, identity, table.schema, **options)
    sampler.stop()
    count, id_sum, arrow_bytes = _measure(out)  # the output of the identity: the input's rows and size

    executor_rows = ray_transform(
        spark.range(100, numPartitions=2), lambda row: {"id": row["id"] * 2}, "id long"
    ).collect()
    result = {
        "rows": rows,
        "arrow_bytes": arrow_bytes,
        "limit_bytes": limit,
        "baseline_private": baseline,
        "peak_private": sampler.peak_private or 0,
        "count": count,
        "id_sum": id_sum,
        "executor_sum": sum(row.id for row in executor_rows),
    }
    write_result(result)
    cluster.shutdown()  # Ray first, Spark's Python workers still joined to it
    spark.stop()


if __name__ == "__main__":
    main()
