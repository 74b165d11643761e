"""Hostile inputs (issue 8 §2-3): each at two sizes, our CLI beside its floor, each a whole process.

- malformed NDJSON: one good line, then lines cut off mid-object (the issue's 80k lines and 10x);
- nested suites: each `<testsuite>` inside the one before, one testcase each (100k and 10x);
- entity-heavy XML: a 240-character entity referenced N times inside `<failure>` (6 MB and 10x).

Time must grow linearly: the third row of each workload is our time at 10x the input over
our time at 1x, beside the 10x growth of the input. Every output is checked to hold the
floor's counts, so a fast wrong answer never counts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import data, floor
from bench.measure import (
    MIB,
    PYTHON,
    ROOT,
    BenchError,
    ProcessRun,
    Row,
    Scale,
    clean_env,
    cli_command,
    median_run,
    ratio_row,
    run_process,
)

BENCH = Path(__file__).resolve().parent
GROWTH = 10
_SUFFIXES = {"malformed-ndjson": ".jsonl", "nested-suites": ".xml", "entity-xml": ".xml"}
_LABELS = {
    "malformed-ndjson": "{size:,} malformed NDJSON lines",
    "nested-suites": "{size:,} nested testsuites",
    "entity-xml": "{size:,} entity references in one <failure>",
}
_FLOORS = {
    "malformed-ndjson": "json.loads per line",
    "nested-suites": "bare iterparse",
    "entity-xml": "expat, refusing entities",
}


def _counts(path: Path) -> tuple[Any, ...]:
    payload = json.loads(path.read_bytes())
    return tuple(payload[key] for key in ("total_recipes", "passed", "failed", "skipped"))


def _measure(workload: str, size: int, scale: Scale, work: Path) -> tuple[int, dict[str, ProcessRun]]:
    directory = work / "hostile" / workload
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.iterdir():
        old.unlink()
    source = directory / f"input{_SUFFIXES[workload]}"
    size_bytes = data.HOSTILE_WRITERS[workload](source, size)
    out = work / "hostile-out"
    out.mkdir(parents=True, exist_ok=True)
    commands = {  # the floor first: ours is checked against its counts
        "floor": [PYTHON, str(BENCH / "floor.py"), workload, str(source), str(out / "floor.json")],
        "ours": [
            *cli_command(), "run", "--dry-run", "--no-summary", "--results", source.name,
            "--workspace", str(directory), "--payload-path", str(out / "ours.json"),
            "--ecosystem", floor.ECOSYSTEM, "--batch-id", "bench-ours",
        ],
    }  # fmt: skip
    runs: dict[str, list[ProcessRun]] = {name: [] for name in commands}
    for _ in range(scale.runs):
        for name, argv in commands.items():
            target = out / f"{name}.json"
            target.unlink(missing_ok=True)
            finished = run_process(argv, env=clean_env(), cwd=ROOT)
            if not target.exists():
                raise BenchError(f"{name} on {workload} wrote no payload:\n{finished.stderr_tail}")
            runs[name].append(finished)
        ours, expected = _counts(out / "ours.json"), _counts(out / "floor.json")
        if ours != expected:
            raise BenchError(f"{workload}: ours counted {ours}, the floor {expected}")
    return size_bytes, {name: median_run(measured) for name, measured in runs.items()}


def run(scale: Scale, work: Path) -> list[Row]:
    factor = min(scale.results / data.RESULTS, 1.0)  # the quick run shrinks these as it shrinks the others
    rows: list[Row] = []
    for workload in data.HOSTILE:
        seconds: list[float] = []
        small = max(int(data.HOSTILE_SIZES[workload] * factor), 10)
        for size in (small, small * GROWTH):
            size_bytes, medians = _measure(workload, size, scale, work)
            ours, base = medians["ours"], medians["floor"]
            label = f"hostile, {_LABELS[workload].format(size=size)} ({size_bytes / 1e6:.1f} MB)"
            raw: dict[str, Any] = {
                "input": workload,
                "size": size,
                "bytes": size_bytes,
                "runs": scale.runs,
            }
            rows.append(
                ratio_row(f"{label}: wall time", ours.seconds, base.seconds, unit="s",
                          baseline_name=f"floor: {_FLOORS[workload]}", limit=None, **raw)
            )  # fmt: skip
            rows.append(
                ratio_row(f"{label}: peak memory", ours.peak_bytes / MIB, base.peak_bytes / MIB, unit="MiB",
                          baseline_name=f"floor: {_FLOORS[workload]}", limit=None, **raw)
            )  # fmt: skip
            seconds.append(ours.seconds)
        growth = seconds[1] / seconds[0]
        rows.append(
            ratio_row(f"hostile, {workload}: our time at {GROWTH}x the input over 1x", growth, GROWTH,
                      unit="x", baseline_name="input growth", limit=1.5, input=workload)
        )  # fmt: skip
    return rows
