"""The child of test_ray_settings.py's local_ray_cpus tests: in a fresh interpreter, start the embedded Ray
with each size given (a JSON list) in turn, then stop it.

    ray_size_child.py '[1, 3]'

Writes (``processes.write_result``) the CPUs Ray had after each size, the Ray processes this process
started, and whether Ray is still connected after ``spark_ray.shutdown()``.
"""

from __future__ import annotations

import json
import sys

import ray
from processes import write_result

import spark_ray
from spark_ray import own_processes
from spark_ray.cluster import ensure_driver_ray
from spark_ray.conf import RayTransformConf


def main(sizes: list[int]) -> None:
    found = []
    for cpus in sizes:
        ensure_driver_ray(RayTransformConf(local_ray_cpus=cpus))
        found.append(ray.cluster_resources()["CPU"])
    started = sorted(own_processes.descendants())
    spark_ray.shutdown()
    write_result({"cpus": found, "ray_processes": started, "connected": ray.is_initialized()})


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
