"""Turning measurements into what people read: a terminal table, a JSON file, a chart.

The table is for the person who ran the suite; the JSON (with the machine
and the command line, since numbers mean little without them) is for
comparing runs later; the chart shows at a glance which cases are how far
above Spark-native. Targets are reported as met or not, never asserted.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Any

PACKAGES = ("pyspark", "ray", "pyarrow", "pandas", "numpy", "cloudpickle", "fugue", "matplotlib", "psutil")


@dataclass
class Result:
    """One line of the report.

    Attributes:
        case: the case name (see cases.CASES).
        rows: input rows, or None for a row that is not about one size.
        median_s: median of the measured runs (seconds), None if it did not run.
        runs_s, warmups_s: every measured and warm-up time.
        baseline: the case compared with; ratio = median_s / its median_s,
            diff_s = median_s - its median_s.
        growth_mb: for driver_rss_growth, the peak RSS growth smallest -> largest size.
        target: the goal as text; met: whether the measurement meets it.
        note: why it did not run, or extra facts (peak RSS, ...).
        rows_label: shown instead of ``rows`` when set.
        extra: case-specific numbers kept in the JSON.
    """

    case: str
    rows: int | None
    median_s: float | None = None
    runs_s: list[float] = field(default_factory=list)
    warmups_s: list[float] = field(default_factory=list)
    baseline: str | None = None
    ratio: float | None = None
    diff_s: float | None = None
    growth_mb: float | None = None
    target: str | None = None
    met: bool | None = None
    note: str = ""
    what: str = ""
    rows_label: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _rows_text(result: Result) -> str:
    if result.rows_label is not None:
        return result.rows_label
    return "-" if result.rows is None else f"{result.rows:,}"


def _comparison_text(result: Result) -> str:
    if result.ratio is not None:
        return f"{result.ratio:.2f}x"
    if result.diff_s is not None:
        return f"{result.diff_s:+.3f} s"
    if result.growth_mb is not None:
        return f"{result.growth_mb:+.0f} MB"
    return "-"


def _met_text(result: Result) -> str:
    if result.met is None:
        return "-"
    return "yes" if result.met else "NO"


def format_table(results: list[Result]) -> str:
    """Plain-text, aligned: case, rows, median s, ratio to native, target, met?, note."""
    header = ("case", "rows", "median s", "ratio to native", "target", "met?", "note")
    lines = [
        (
            r.case,
            _rows_text(r),
            "-" if r.median_s is None else f"{r.median_s:.3f}",
            _comparison_text(r),
            r.target or "-",
            _met_text(r),
            r.note,
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    right = {1, 2, 3}  # numbers align right

    def render(row: tuple[str, ...]) -> str:
        cells = [cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([render(header), rule, *(render(row) for row in lines)])


def machine_info() -> dict[str, Any]:
    """The facts a benchmark number depends on: cores, memory, interpreter, library versions."""
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "java": _java_version(),
    }
    for package in PACKAGES:
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info[package] = None
    return info


def _memory_gb() -> float | None:
    try:
        import psutil

        return round(psutil.virtual_memory().total / 2**30, 2)
    except ImportError:
        try:
            pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
            return round(pages * page_size / 2**30, 2)
        except (ValueError, OSError):
            return None


def _java_version() -> str | None:
    import subprocess

    java = (
        shutil.which("java")
        if not os.environ.get("JAVA_HOME")
        else os.path.join(os.environ["JAVA_HOME"], "bin", "java")
    )
    if not java:
        return None
    try:
        done = subprocess.run([java, "-version"], check=False, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = (done.stderr or done.stdout).strip().splitlines()
    return first[0] if first else None


def write_json(payload: dict[str, Any], out_dir: str, timestamp: str) -> tuple[str, str]:
    """Write ``results-<timestamp>.json`` and ``latest.json``; return both paths."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"results-{timestamp}.json")
    with open(path, "w", encoding="utf-8") as out:
        json.dump(payload, out, indent=2, default=_json_default)
        out.write("\n")
    latest = os.path.join(out_dir, "latest.json")
    shutil.copyfile(path, latest)
    return path, latest


def _json_default(value: Any) -> Any:
    if isinstance(value, Result):
        return asdict(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def write_chart(results: list[Result], path: str, title: str) -> str | None:
    """Bars of the ratio to native per case and size, a line at 1.0, target marks.

    Returns the path, or None (with the reason printed) when matplotlib is
    missing or there is no ratio to draw.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("chart: matplotlib is not installed; no PNG written")
        return None
    drawn = [r for r in results if r.ratio is not None and r.rows is not None]
    if not drawn:
        print("chart: no ratios to draw; no PNG written")
        return None
    cases = list(dict.fromkeys(r.case for r in drawn))
    sizes = sorted({r.rows for r in drawn if r.rows is not None})
    by_key = {(r.case, r.rows): r for r in drawn}
    width = 0.8 / len(sizes)
    fig, ax = plt.subplots(figsize=(max(8.0, 1.3 * len(cases) + 2), 5.0))
    for index, size in enumerate(sizes):
        xs, ys = [], []
        for position, case in enumerate(cases):
            result = by_key.get((case, size))
            if result is not None and result.ratio is not None:
                xs.append(position - 0.4 + width * (index + 0.5))
                ys.append(result.ratio)
        bars = ax.bar(xs, ys, width=width * 0.95, label=f"{size:,} rows")
        ax.bar_label(bars, labels=[f"{y:.2f}" for y in ys], fontsize=7, padding=2)
    targets = {r.case: r.target for r in drawn if r.target}
    for position, case in enumerate(cases):
        limit = _ratio_limit(targets.get(case))
        if limit is not None:
            ax.hlines(limit, position - 0.45, position + 0.45, colors="red", linestyles="dashed", linewidth=1.2)
    ax.axhline(1.0, color="black", linewidth=1.0)
    ax.set_xticks(range(len(cases)))
    baselines = {r.case: r.baseline for r in drawn}
    labels = [
        case if baselines.get(case) == "spark_native" else f"{case}\n(vs {baselines.get(case)})" for case in cases
    ]
    ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("median time / Spark-native median")
    ax.set_title(title, fontsize=9)
    ax.plot([], [], color="red", linestyle="dashed", label="target")
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _ratio_limit(target: str | None) -> float | None:
    """``"<= 1.15x"`` -> 1.15; other targets are not ratios."""
    if not target or not target.endswith("x"):
        return None
    try:
        return float(target.lstrip("<= ").rstrip("x"))
    except ValueError:
        return None
