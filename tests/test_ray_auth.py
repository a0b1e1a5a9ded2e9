"""Token auth against a `ray start` cluster by address: a missing or wrong token is one clear error at
once (not ten seconds of Ray's warnings), and a token this process has is used without being asked."""

from __future__ import annotations

import os
import subprocess

import pytest
from processes import RayCluster, result_of, run_python


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
    return run_python("connect_child.py", ["ensure", address], child_env, timeout_s=180)


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
    assert result_of(done) == {"port": token_cluster.port}
    assert _real_token() not in done.stdout + done.stderr
