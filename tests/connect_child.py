"""Connect to a Ray from a fresh interpreter (``ray.init`` refuses a second connection in one process).

    connect_child.py init ADDRESS [--without-grpc]   # cluster._init_ray(ADDRESS): fails, or returns
    connect_child.py ensure ADDRESS                  # ensure_driver_ray(ray_address=ADDRESS), then shutdown

An error leaves as the traceback on stderr and a non-zero exit (what the tests read). ``ensure`` writes
(``processes.write_result``) the GCS port it joined. ``--without-grpc`` makes grpc (what ``ray[client]``
adds) unimportable first: nothing is uninstalled.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> None:
    how, address, *flags = argv
    if "--without-grpc" in flags:
        sys.modules["grpc"] = None  # type: ignore[assignment]
    from spark_ray import RayTransformConf, cluster

    if how == "init":
        cluster._init_ray(address, "spark_ray", None)
        return
    import ray
    from processes import write_result

    cluster.ensure_driver_ray(RayTransformConf(ray_address=address))
    write_result({"port": int(ray.get_runtime_context().gcs_address.rsplit(":", 1)[1])})
    cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1:])
