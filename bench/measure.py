"""Measuring whole processes, summarising runs, and the report table."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
MIB = 1024 * 1024


@dataclass(frozen=True)
class Scale:
    """How big each workload is: the full run of issue 4, or a quick smoke run."""

    name: str
    files: int
    results: int
    runs: int  # fresh processes per figure; the median is reported
    startup_runs: int
    ingest_results: int
    ingest_runs: int  # uploads per contender after one unmeasured warm-up; the median is reported
    clients: int
    uploads_per_client: int
    rows_per_upload: int
    offline: bool = False  # skip what would contact a package index (the pip install)


# Collect+build is judged at 500k results, where per-row cost dominates a run's fixed start-up.
FULL = Scale("full", files=200, results=500_000, runs=3, startup_runs=10, ingest_results=100_000,
             ingest_runs=7, clients=16, uploads_per_client=20, rows_per_upload=1000)  # fmt: skip
QUICK = Scale("quick", files=10, results=2_000, runs=1, startup_runs=3, ingest_results=2_000,
              ingest_runs=1, clients=4, uploads_per_client=3, rows_per_upload=100)  # fmt: skip


class BenchError(RuntimeError):
    """A measured command failed or produced the wrong output: no figure can be reported for it."""


@dataclass(frozen=True)
class ProcessRun:
    seconds: float
    peak_bytes: int  # the child's ru_maxrss
    stderr_tail: str = ""


def run_process(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None,
    stdout: Path | None = None,
) -> ProcessRun:  # fmt: skip
    """Run one fresh process to the end (through bench/spawn.py): wall time from spawn to reap, peak RSS."""
    spawner = [PYTHON, "-I", "-S", str(Path(__file__).with_name("spawn.py")), str(stdout or os.devnull)]
    completed = subprocess.run([*spawner, *argv], capture_output=True, env=env, cwd=cwd, check=False)
    tail = completed.stderr[-2000:].decode(errors="replace")
    if completed.returncode != 0:
        raise BenchError(f"{' '.join(argv[:4])} ... exited {completed.returncode}:\n{tail}")
    seconds, peak = completed.stdout.split()
    return ProcessRun(float(seconds), int(peak), tail)


def stop(process: subprocess.Popen[Any], seconds: float) -> None:
    """End a server the benchmark started: asked to stop, then killed if it has not within `seconds`."""
    process.terminate()
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def cli_command() -> list[str]:
    """`batch-metrics` as installed beside this Python (the console script), else `python -m`."""
    script = Path(PYTHON).parent / "batch-metrics"
    return [str(script)] if script.exists() else [PYTHON, "-m", "batch_metrics.cli"]


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without anything that would make the CLI act as a GitHub Actions step.

    Also without PYTHONDONTWRITEBYTECODE (some machines set it): an installed CLI has its bytecode
    compiled, as pip does at install; recompiling every module in every measured run is not its cost.
    """
    keep = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GITHUB_", "INPUT_", "RUNNER_", "BATCH_METRICS_"))
        and key != "PYTHONDONTWRITEBYTECODE"
    }
    return {**keep, **extra}


def median_run(runs: Sequence[ProcessRun]) -> ProcessRun:
    return ProcessRun(
        statistics.median(run.seconds for run in runs), int(statistics.median(run.peak_bytes for run in runs))
    )


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: the value at or below which `fraction` of the values lie."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass
class Row:
    """One line of the report: our figure beside the baseline's, measured in the same run."""

    workload: str
    ours: str
    baseline: str
    ratio: float | None = None
    target: str = "—"
    met: bool | None = None  # None: no target, or nothing could be measured
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def unavailable(cls, workload: str, reason: str, target: str = "—") -> Row:
        return cls(workload, "not measured", f"n/a: {reason}", target=target, raw={"unavailable": reason})


def ratio_row(
    workload: str, ours: float, baseline: float, *, unit: str, baseline_name: str, limit: float | None,
    higher_is_better: bool = False, strict: bool = False, **raw: Any,
) -> Row:  # fmt: skip
    """A row whose ratio is ours / baseline, met when within `limit` (at least it, if higher is better)."""
    ratio = ours / baseline if baseline else float("inf")
    if limit is None:
        target, met = "—", None
    elif higher_is_better:
        target, met = f"≥ {limit:g}x", ratio >= limit
    elif strict:
        target, met = f"< {limit:g}x", ratio < limit
    else:
        target, met = f"≤ {limit:g}x", ratio <= limit
    return Row(
        workload,
        f"{_figure(ours)} {unit}",
        f"{_figure(baseline)} {unit} ({baseline_name})",
        ratio,
        target,
        met,
        {"ours": ours, "baseline": baseline, "unit": unit, "baseline_name": baseline_name, **raw},
    )


def _figure(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if value < 1 else f"{value:.2f}"


def table(rows: Sequence[Row]) -> str:
    lines = ["| workload | ours | baseline | ratio | target | met? |", "|---|---|---|---|---|---|"]
    for row in rows:
        ratio = "—" if row.ratio is None else f"{row.ratio:.2f}x"
        met = "—" if row.met is None else "yes" if row.met else "**no**"
        lines.append(f"| {row.workload} | {row.ours} | {row.baseline} | {ratio} | {row.target} | {met} |")
    return "\n".join(lines)


def machine() -> dict[str, str]:
    """What the figures were measured on, for docs/benchmarks.md."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        ram = next(
            int(line.split()[1]) * 1024
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal:")
        )
    except (OSError, StopIteration):
        ram = 0
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": cpu,
        "ram": f"{ram / 1024**3:.1f} GiB",
        "python": platform.python_version(),
        "os": platform.platform(terse=True),
    }
