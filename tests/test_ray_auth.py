"""Token auth against a `ray start` cluster by address: a missing or wrong token is one clear error at
once (not ten seconds of Ray's warnings), and a token this process has is used without being asked."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from processes import RayCluster

CONNECT = """
import sys
from spark_ray import RayTransformConf, cluster
spec = cluster.ensure_driver_ray(RayTransformConf(ray_address=sys.argv[1]))
import ray
print("CONNECTED", ray.get_runtime_context().gcs_address.rsplit(":", 1)[1], flush=True)
cluster.shutdown()
"""


@pytest.fixture(scope="module")
def token_cluster(tmp_path_factory):
    head = RayCluster.start_head(str(tmp_path_factory.mktemp("ray-auth")), num_cpus=1)
    try:
        yield head
    finally:
        head.stop()


def _connect(address: str, home: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Connect from a fresh process whose HOME (and so ~/.ray/auth_token) is ``home``."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    child_env.update(HOME=home, RAY_USAGE_STATS_ENABLED="0", **env)
    return subprocess.run(
        [sys.executable, "-c", CONNECT, address], env=child_env, capture_output=True, text=True, timeout=180
    )


def _real_token() -> str:
    with open(os.path.expanduser("~/.ray/auth_token"), encoding="utf-8") as token_file:
        return token_file.read().strip()


def test_a_process_without_the_token_gets_one_clear_error(token_cluster, tmp_path):
    done = _connect(token_cluster.address, str(tmp_path))
    assert done.returncode != 0
    assert f"the Ray cluster at '{token_cluster.address}' requires an auth token, and this process has none" in (
        done.stderr
    )
    assert "gcs_client.cc" not in done.stderr, "Ray's retry warnings came before the error"


def test_a_wrong_token_is_named_as_wrong_and_never_printed(token_cluster, tmp_path):
    wrong = "0123456789abcdef" * 4
    done = _connect(token_cluster.address, str(tmp_path), RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=wrong)
    assert done.returncode != 0
    assert "rejected this process's auth token" in done.stderr
    assert wrong not in done.stderr + done.stdout


def test_a_token_in_the_home_directory_is_used_when_the_mode_is_unset(token_cluster, tmp_path):
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text(_real_token())
    done = _connect(token_cluster.address, str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"CONNECTED {token_cluster.port}" in done.stdout
    assert _real_token() not in done.stdout + done.stderr
