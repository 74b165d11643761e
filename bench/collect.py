"""Workload 1, collect + build: result files → payload file, each contender a whole fresh process.

Contenders, run interleaved so drift hits them alike: our CLI's dry run, the stdlib floor
(`bench/floor.py`), and `jq -s` with `bench/payload.jq` (JSON formats only: jq cannot read XML).
Every output is checked to hold the same rows as the floor's, so a fast wrong answer never counts.
"""

from __future__ import annotations

import json
import shutil
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
JQ_INSTALL = "apt-get install -y jq"


def _commands(dataset: data.Dataset, out: Path, jq: str | None) -> dict[str, list[str]]:
    pattern = f"**/*{data.SUFFIXES[dataset.fmt]}"
    commands = {  # the floor first: the others' output is checked against its
        "floor": [PYTHON, str(BENCH / "floor.py"), dataset.fmt, str(dataset.directory),
                  str(out / "floor.json")],
        "ours": [
            *cli_command(), "run", "--dry-run", "--no-summary", "--results", pattern,
            "--workspace", str(dataset.directory), "--payload-path", str(out / "ours.json"),
            "--ecosystem", floor.ECOSYSTEM, "--batch-id", "bench-ours",
        ],
    }  # fmt: skip
    if jq and dataset.fmt != "junit":
        nested = "true" if dataset.fmt == "validation-results" else "false"
        files = [str(path) for path in dataset.files]
        program = str(BENCH / "payload.jq")
        commands["jq"] = [jq, "-s", "-c", "--argjson", "nested", nested, "-f", program, *files]
    return commands


def _summary(path: Path) -> tuple[Any, ...]:
    payload = json.loads(path.read_bytes())
    counts = tuple(payload[key] for key in ("total_recipes", "passed", "failed", "skipped"))
    return (*counts, payload["results"])


def _measure_format(dataset: data.Dataset, scale: Scale, out: Path, jq: str | None) -> dict[str, ProcessRun]:
    commands = _commands(dataset, out, jq)
    runs: dict[str, list[ProcessRun]] = {name: [] for name in commands}
    expected: tuple[Any, ...] | None = None
    for _ in range(scale.runs):
        for name, argv in commands.items():
            target = out / f"{name}.json"
            target.unlink(missing_ok=True)
            # jq writes the payload to stdout; the others write the file themselves.
            finished = run_process(argv, env=clean_env(), cwd=ROOT, stdout=target if name == "jq" else None)
            if not target.exists():
                raise BenchError(
                    f"{name} on {dataset.fmt} wrote no payload to {target}:\n{finished.stderr_tail}"
                )
            runs[name].append(finished)
            summary = _summary(target)
            expected = expected or summary
            if summary[0] != dataset.results or summary != expected:
                raise BenchError(
                    f"{name} on {dataset.fmt}: {summary[0]} rows written; expected {dataset.results} rows, "
                    "the same as the floor's"
                )
    return {name: median_run(measured) for name, measured in runs.items()}


def run(scale: Scale, work: Path) -> list[Row]:
    jq = shutil.which("jq")
    rows: list[Row] = []
    for fmt in data.FORMATS:
        dataset = data.write_dataset(fmt, work / "collect" / fmt, files=scale.files, results=scale.results)
        out = work / "collect-out"
        out.mkdir(parents=True, exist_ok=True)
        medians = _measure_format(dataset, scale, out, jq)
        ours, base = medians["ours"], medians["floor"]
        label = (
            f"collect + build, {fmt} ({dataset.results:,} results, {len(dataset.files)} files, "
            f"{dataset.size_bytes / 1e6:.1f} MB)"
        )
        raw: dict[str, Any] = {"format": fmt, "results": dataset.results, "bytes": dataset.size_bytes}
        raw.update(files=len(dataset.files), runs=scale.runs)
        floor_name = "stdlib floor"
        rows.append(
            ratio_row(f"{label}: wall time", ours.seconds, base.seconds, unit="s", baseline_name=floor_name,
                      limit=1.3, **raw)
        )  # fmt: skip
        rows.append(
            ratio_row(f"{label}: peak memory", ours.peak_bytes / MIB, base.peak_bytes / MIB, unit="MiB",
                      baseline_name=floor_name, limit=2.0, **raw)
        )  # fmt: skip
        if fmt == "junit":
            continue  # jq reads JSON only
        versus_jq = f"{label}: wall time vs jq"
        if "jq" not in medians:
            rows.append(Row.unavailable(versus_jq, f"jq not installed ({JQ_INSTALL})", "< 1x"))
            continue
        jq_run = medians["jq"]
        rows.append(
            ratio_row(versus_jq, ours.seconds, jq_run.seconds, unit="s", baseline_name="jq -s", limit=1.0,
                      strict=True, jq_peak_mib=jq_run.peak_bytes / MIB, **raw)
        )  # fmt: skip
    return rows
