"""The command line's progress display: one line for the script, Spark and Ray.

A script spends its time in places a statement counter cannot see: a Spark
job reading a table, Ray tasks running user code. The line shows the current
statement (``[3/9] !ray on t1 ...``), and a background thread adds what Spark
and Ray are doing right now: the active stage's finished/total tasks (from
Spark's status tracker) and the Ray CPUs in use. It goes to stderr, so stdout
keeps only the script's output, and text printed meanwhile (``!desc``, tables)
goes through :meth:`Progress.write` so the bar never tears a line.
"""

from __future__ import annotations

import sys
import threading
from types import TracebackType
from typing import Any

from pyspark.sql import SparkSession
from tqdm import tqdm

from .errors import statement_head
from .statements import Statement

_POLL_SECONDS = 0.5


class Progress:
    """A tqdm bar over the statements of a script, with live Spark and Ray activity.

    Args:
        spark: the session whose jobs to watch.
        enabled: False makes every method a no-op except :meth:`write`.
    """

    def __init__(self, spark: SparkSession, enabled: bool) -> None:
        self.spark = spark
        self.enabled = enabled
        self.bar: tqdm[Any] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Progress:
        if self.enabled:
            self.bar = tqdm(total=0, file=sys.stderr, unit="stmt", dynamic_ncols=True, leave=False,
                            bar_format="{desc} {n_fmt}/{total_fmt} [{elapsed}]{postfix}")  # fmt: skip
            self._thread = threading.Thread(target=self._poll, name="spark-ray-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def statement(self, statement: Statement, index: int, total: int) -> None:
        """Called by the runner before each statement."""
        self.phase(statement_head(statement.source), index, total)

    def phase(self, text: str, done: int | None = None, total: int | None = None) -> None:
        if self.bar is None:
            return
        if total is not None:
            self.bar.total = total
        if done is not None:
            self.bar.n = done
        self.bar.set_description_str(text[:50], refresh=True)

    def done(self) -> None:
        """Every statement has run (what follows is showing tables)."""
        if self.bar is not None:
            self.bar.n = self.bar.total
            self.bar.refresh()

    def write(self, text: str) -> None:
        """Print ``text`` to stdout without tearing the bar."""
        if self.bar is None:
            sys.stdout.write(text)
            sys.stdout.flush()
            return
        with tqdm.external_write_mode(file=sys.stdout):
            sys.stdout.write(text)
            sys.stdout.flush()

    def _poll(self) -> None:
        while not self._stop.wait(_POLL_SECONDS):
            bar = self.bar
            if bar is None:
                return
            try:
                activity = ", ".join(part for part in (self._spark_activity(), _ray_activity()) if part)
            except Exception:  # the session is stopping; the display is best effort
                return
            bar.set_postfix_str(activity, refresh=True)

    def _spark_activity(self) -> str:
        tracker = self.spark.sparkContext.statusTracker()
        parts = []
        for stage_id in tracker.getActiveStageIds():
            info = tracker.getStageInfo(stage_id)
            if info is not None:
                parts.append(f"Spark stage {stage_id}: {info.numCompletedTasks}/{info.numTasks} tasks")
        return ", ".join(parts)


def _ray_activity() -> str:
    if "ray" not in sys.modules:
        return ""
    import ray

    if not ray.is_initialized():
        return ""
    total = ray.cluster_resources().get("CPU", 0.0)
    free = ray.available_resources().get("CPU", 0.0)
    busy = total - free
    return f"Ray: {busy:g}/{total:g} CPUs busy" if busy > 0 else ""


class ProgressWriter:
    """A file-like object for ScriptSession.out: what the script prints goes through the bar."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def write(self, text: str) -> int:
        self.progress.write(text)
        return len(text)

    def flush(self) -> None:
        sys.stdout.flush()
