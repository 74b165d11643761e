"""What the tsuku tests share: a batch's run summary per platform job, and what the endpoint stored for it.

A run summary counts platform validations per platform **job** (`linux-x86_64`); the endpoint
stores rows per fine platform (`linux-alpine-musl-x86_64`) and folds them into the job where only
the job's passes are known. Both are compared per (operating system, architecture).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.live import Storage

BATCHES = Path(__file__).resolve().parent / "fixtures" / "tsuku" / "batches"


def job(platform: str) -> tuple[str, str]:
    parts = platform.split("-")
    return parts[0], parts[-1]


def run_summary(batch: Path) -> dict[str, Any]:
    """The run summary a fixture batch committed."""
    [path] = (batch / "data" / "metrics").glob("batch-runs-*.jsonl")
    value: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return value


def said(summary: dict[str, Any]) -> dict[tuple[str, str], tuple[int, int, int]]:
    """The summary's passed, failed and skipped per platform job (jobs that tested nothing left out)."""
    return {
        job(name): (
            counts["passed"],
            counts["failed"],
            counts["tested"] - counts["passed"] - counts["failed"],
        )
        for name, counts in summary["platforms"].items()
        if counts["tested"]
    }


def stored(storage: Storage, run_id: int) -> dict[tuple[str, str], tuple[int, int, int]]:
    """What the endpoint counts for the run per platform job, from the roll-ups every page reads."""
    counts: dict[tuple[str, str], list[int]] = {}
    for row in storage.query(
        "SELECT platform, passed, failed, skipped FROM run_platforms WHERE batch_run_id = {mark}", [run_id]
    ):
        total = counts.setdefault(job(row["platform"]), [0, 0, 0])
        for position, name in enumerate(("passed", "failed", "skipped")):
            total[position] += int(row[name])
    return {key: (value[0], value[1], value[2]) for key, value in counts.items() if any(value)}


def failure_lines(batch: Path) -> set[tuple[str, str]]:
    """(recipe, platform) of every per-platform failure line the batch committed."""
    found = set()
    for path in (batch / "data" / "failures").glob("*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            value = json.loads(line) if line.strip() else {}
            if "recipe" in value:
                found.add((value["recipe"], value["platform"]))
    return found
