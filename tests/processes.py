"""Clusters that deployment tests start on this machine, and stop, leaving nothing behind.

Every process here starts in its own session (so one ``killpg`` ends it and
its children) or, for Ray, under its own ``--temp-dir`` (so ``ray_processes``
finds exactly its processes). Addresses are loopback or the host's own
address that Ray picks for its nodes; ports are free ones.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from spark_ray import own_processes

BIN = os.path.dirname(sys.executable)
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
RAY_CLI = os.path.join(BIN, "ray")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def mentioning(pattern: str) -> list[int]:
    """Pids of live processes whose command line holds ``pattern`` (this process excepted)."""
    pids = (int(entry) for entry in os.listdir("/proc") if entry.isdigit())
    return sorted(
        pid for pid in pids if pid != os.getpid() and pattern in own_processes.command_line(pid) and alive(pid)
    )


def process_tree(pattern: str) -> list[int]:
    """Pids of processes whose command line holds ``pattern``, and all their descendants.

    The tree is the library's own walker (``spark_ray.own_processes``, from ``/proc``): tests and library
    agree on what a process's children are."""
    found: set[int] = set()
    for pid in mentioning(pattern):
        if pid not in found:
            found |= {pid} | own_processes.descendants(pid)
    return sorted(found)


def kill_pids(pids: list[int], sig: int = signal.SIGKILL) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def wait_gone(pids: list[int], timeout_s: float = 30.0) -> list[int]:
    """The pids still alive after ``timeout_s`` (zombies count as gone)."""
    deadline = time.monotonic() + timeout_s
    left = list(pids)
    while left and time.monotonic() < deadline:
        left = [pid for pid in left if alive(pid)]
        if left:
            time.sleep(0.2)
    return left


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def hiding(paths: list[str], command: list[str]) -> list[str]:
    """``command`` run in a private mount namespace where each of ``paths`` (an existing directory) is an
    empty tmpfs: processes started this way stand for another host, which cannot read this one's disk."""
    if not paths:
        return command
    mounts = " && ".join(f"mount -t tmpfs spark-ray-test-hidden {shlex.quote(path)}" for path in paths)
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", f'{mounts} && exec "$@"', "sh", *command]


def token_env(**extra: str) -> dict[str, str]:
    """The environment for `ray start`: token auth on, no usage stats."""
    return dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token", **extra)


@dataclass
class RayCluster:
    """A `ray start` cluster of one or more nodes on this machine, all under ``temp_dir``."""

    temp_dir: str
    port: int
    client_port: int | None = None
    node_dirs: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        """The GCS address (``host:port``) by loopback."""
        return f"127.0.0.1:{self.port}"

    @property
    def client_address(self) -> str:
        assert self.client_port is not None, "started without a Ray Client server"
        return f"ray://127.0.0.1:{self.client_port}"

    @classmethod
    def start_head(
        cls, temp_dir: str, num_cpus: int = 1, resources: dict[str, float] | None = None, client: bool = False
    ) -> RayCluster:
        port = free_port()
        head = cls(temp_dir, port, free_port() if client else None)
        command = [
            RAY_CLI, "start", "--head", f"--port={port}", f"--num-cpus={num_cpus}", "--include-dashboard=false",
            f"--temp-dir={temp_dir}", "--disable-usage-stats", f"--resources={json.dumps(resources or {})}",
        ]  # fmt: skip
        extra_env = {}
        if head.client_port is not None:
            command.append(f"--ray-client-server-port={head.client_port}")
            # Ray's client proxy forks a server per client while gRPC runs; with gRPC's fork handlers on,
            # the child crashes before it starts (ray-project/ray#63202; every time here, grpcio 1.85).
            extra_env["GRPC_ENABLE_FORK_SUPPORT"] = "0"
        head._run(command, extra_env)
        if head.client_port is not None:
            head._wait_for_client_server(120.0)
        return head

    def _wait_for_client_server(self, timeout_s: float) -> None:
        """`ray start` returns before the Ray Client server listens; a test connecting at once is refused."""
        assert self.client_port is not None
        try:
            _wait_for_port(self.client_port, timeout_s)
        except TimeoutError:
            self.stop()
            raise

    def add_node(
        self, num_cpus: int = 1, resources: dict[str, float] | None = None, hide: list[str] | None = None
    ) -> None:
        """Another raylet on this machine, joined to the head (a second 'host' for the scheduler);
        ``hide``: directories its processes see empty (see ``hiding``)."""
        command = [
            RAY_CLI, "start", f"--address={self.address}", f"--num-cpus={num_cpus}",
            f"--resources={json.dumps(resources or {})}", "--disable-usage-stats",
        ]  # fmt: skip
        self._run(hiding(hide or [], command))

    def _run(self, command: list[str], extra_env: dict[str, str] | None = None) -> None:
        done = subprocess.run(command, env=token_env(**(extra_env or {})), capture_output=True, text=True, timeout=180)
        if done.returncode != 0:
            self.stop()
            raise RuntimeError(f"{' '.join(command[:3])} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")

    def processes(self) -> list[int]:
        """Every process of this cluster: the head's (by its temp dir) and the joined nodes' (by the GCS port)."""
        return sorted(set(process_tree(self.temp_dir)) | set(process_tree(f"--gcs-address=127.0.0.1:{self.port}"))
                      | set(process_tree(f":{self.port} ")))  # fmt: skip

    def stop(self) -> None:
        pids = self.processes()
        kill_pids(pids)
        wait_gone(pids, 30.0)


@dataclass
class SparkStandalone:
    """A Spark standalone master and one worker on loopback, each in its own session."""

    master_port: int
    processes: list[subprocess.Popen[bytes]]
    log_dir: str

    @property
    def master_url(self) -> str:
        return f"spark://127.0.0.1:{self.master_port}"

    @classmethod
    def start(cls, log_dir: str, cores: int = 2, memory: str = "2g", hide: list[str] | None = None) -> SparkStandalone:
        """``hide``: directories the worker and its executors see empty (see ``hiding``)."""
        spark_home = spark_home_dir()
        port = free_port()
        env = spark_env()
        master = _start_logged(
            [os.path.join(spark_home, "bin", "spark-class"), "org.apache.spark.deploy.master.Master",
             "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(free_port())],
            env, os.path.join(log_dir, "master.log"),
        )  # fmt: skip
        standalone = cls(port, [master], log_dir)
        try:
            _wait_for_port(port, 60.0, master)
            worker_command = [
                os.path.join(spark_home, "bin", "spark-class"), "org.apache.spark.deploy.worker.Worker",
                "--host", "127.0.0.1", "--cores", str(cores), "--memory", memory,
                "--webui-port", str(free_port()), "--work-dir", os.path.join(log_dir, "work"), standalone.master_url,
            ]  # fmt: skip
            worker = _start_logged(hiding(hide or [], worker_command), env, os.path.join(log_dir, "worker.log"))
            standalone.processes.append(worker)
            _wait_for_log(os.path.join(log_dir, "worker.log"), "Successfully registered with master", 60.0)
        except BaseException:
            standalone.stop()
            raise
        return standalone

    def stop(self) -> None:
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def spark_home_dir() -> str:
    import pyspark

    return os.path.dirname(pyspark.__file__)


def spark_env(**extra: str) -> dict[str, str]:
    """The environment for Spark processes: this venv's Python for the Python workers, and its bin on PATH."""
    return dict(
        os.environ,
        PYSPARK_PYTHON=sys.executable,
        PYSPARK_DRIVER_PYTHON=sys.executable,
        SPARK_HOME=spark_home_dir(),
        SPARK_LOCAL_IP="127.0.0.1",
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        **extra,
    )


def spark_submit(
    master: str,
    script: str,
    args: list[str],
    conf: dict[str, str] | None = None,
    timeout_s: float = 600.0,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with spark-submit (``run_child``)."""
    command = [os.path.join(spark_home_dir(), "bin", "spark-submit"), "--master", master,
               "--conf", "spark.driver.host=127.0.0.1", "--conf", "spark.ui.enabled=false"]  # fmt: skip
    for key, value in (conf or {}).items():
        command += ["--conf", f"{key}={value}"]
    command += [script, *args]
    return run_child(command, spark_env(**(env or {})), timeout_s)


def run_child(command: list[str], env: dict[str, str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in a session of its own; when it ends or times out, kill whatever it left in its
    process group (Ray, a JVM). A timeout keeps the output so far and says so at the end of stderr."""
    child = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    try:
        stdout, stderr = child.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        stdout, stderr = child.communicate()
        stderr += f"\n(killed: still running after {timeout_s} s)"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    return subprocess.CompletedProcess(command, child.returncode, stdout, stderr)


# --- the one result protocol of child programs: write_result in the child, result_of in the test -----------

RESULT_MARK = "SPARK_RAY_TEST_RESULT "


def write_result(result: Any) -> None:
    """A child program's result for the test that started it: one JSON line on stdout, after
    ``RESULT_MARK`` (values JSON cannot hold are written as their ``str``). Read with ``result_of``."""
    sys.stdout.write(RESULT_MARK + json.dumps(result, default=str) + "\n")
    sys.stdout.flush()


def result_of(done: subprocess.CompletedProcess[str]) -> Any:
    """What the child wrote with ``write_result``; a failure with its stderr's tail if it wrote nothing."""
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK) :])
    tail = "\n".join(done.stderr.strip().splitlines()[-40:])
    raise AssertionError(f"the child exited with {done.returncode} and no result:\n{tail}")


def run_python(
    program: str, args: list[str], env: dict[str, str] | None = None, timeout_s: float = 300.0
) -> subprocess.CompletedProcess[str]:
    """Run the child program ``tests/<program>`` (a file ruff and mypy see) with this interpreter, in a
    session of its own (``run_child``); ``env`` replaces the environment (default: this one)."""
    command = [sys.executable, os.path.join(TESTS_DIR, program), *args]
    return run_child(command, dict(os.environ) if env is None else env, timeout_s)


def _start_logged(command: list[str], env: dict[str, str], log_path: str) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log:
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for_port(port: int, timeout_s: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """Until something listens on 127.0.0.1:``port``; fails early if ``process`` (the one to listen) exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the process for port {port} exited with {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout_s} s")


def _wait_for_log(path: str, text: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), open(path, encoding="utf-8", errors="replace") as log:
            if text in log.read():
                return
        time.sleep(0.3)
    with contextlib.suppress(OSError), open(path, encoding="utf-8", errors="replace") as log:
        tail = log.read()[-3000:]
    raise TimeoutError(f"{text!r} did not appear in {path} within {timeout_s} s:\n{tail}")


@contextlib.contextmanager
def ray_cluster(temp_dir: str, **head_options: object) -> Iterator[RayCluster]:
    head = RayCluster.start_head(temp_dir, **head_options)  # type: ignore[arg-type]
    try:
        yield head
    finally:
        head.stop()


def spark_executors(app_id: str) -> dict[int, str]:
    """The executor JVMs of the Spark application ``app_id`` on this machine (a local-cluster's, a
    standalone worker's): pid -> executor id."""
    table = subprocess.run(["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    found: dict[int, str] = {}
    for line in table.splitlines():
        pid, _, args = line.strip().partition(" ")
        words = args.split()
        if "CoarseGrainedExecutorBackend" in args and app_id in words and "--executor-id" in words:
            found[int(pid)] = words[words.index("--executor-id") + 1]
    return found
