"""Workload 3, cold start: the CLI's dry run on a one-result file, as a whole process.

Baseline: `python -c "import pydantic, requests"`, the least any client built on those two can
start in. Measured for the console script (`batch-metrics`, what the README promotes) and for
`entrypoint.py` (what the composite action runs). Over target, `python -X importtime` names the
heaviest imports.
"""

from __future__ import annotations

import statistics
import subprocess
from pathlib import Path

from bench import data
from bench.measure import PYTHON, ROOT, Row, Scale, clean_env, cli_command, ratio_row, run_process

BASELINE = [PYTHON, "-c", "import pydantic, requests"]
_TARGET = 1.5


def _dry_run_args(workspace: Path, out: Path) -> list[str]:
    return ["run", "--dry-run", "--no-summary", "--results", "**/*.json", "--workspace", str(workspace),
            "--payload-path", str(out), "--batch-id", "bench-startup"]  # fmt: skip


def import_offenders(args: list[str], top: int = 8) -> list[str]:
    """The imports taking the most cumulative time in one `python -X importtime -m batch_metrics.cli` run."""
    completed = subprocess.run(
        [PYTHON, "-X", "importtime", "-m", "batch_metrics.cli", *args],
        capture_output=True, text=True, env=clean_env(), cwd=ROOT, check=False,
    )  # fmt: skip
    timings: list[tuple[int, str]] = []
    for line in completed.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        if not name.startswith("batch_metrics") and "." in name:
            continue  # submodules are inside their package's cumulative figure
        timings.append((int(cumulative), name))
    return [f"{name} {micros / 1000:.1f} ms" for micros, name in sorted(timings, reverse=True)[:top]]


def run(scale: Scale, work: Path) -> list[Row]:
    dataset = data.write_dataset("validation-results", work / "startup", files=1, results=1)
    args = _dry_run_args(dataset.directory, work / "startup-payload.json")
    commands = {
        "batch-metrics": [*cli_command(), *args],
        "entrypoint.py": [PYTHON, str(ROOT / "entrypoint.py"), *args],
        "baseline": BASELINE,
    }
    seconds: dict[str, list[float]] = {name: [] for name in commands}
    for argv in commands.values():  # warm the page cache; not counted
        run_process(argv, env=clean_env(), cwd=ROOT)
    for _ in range(scale.startup_runs):
        for name, argv in commands.items():
            seconds[name].append(run_process(argv, env=clean_env(), cwd=ROOT).seconds)
    baseline = statistics.median(seconds["baseline"])
    rows = []
    for name in ("batch-metrics", "entrypoint.py"):
        ours = statistics.median(seconds[name])
        row = ratio_row(
            f"cold start: `{name} run --dry-run`, 1 result", ours * 1000, baseline * 1000, unit="ms",
            baseline_name="import pydantic, requests", limit=_TARGET, runs=scale.startup_runs,
            ours_seconds=seconds[name], baseline_seconds=seconds["baseline"],
        )  # fmt: skip
        if row.met is False:
            row.raw["note"] = "heaviest imports (cumulative): " + ", ".join(import_offenders(args))
        rows.append(row)
    return rows
