"""A git history of tsuku's committed batches, as its pipeline commits them: one commit per batch.

The batches are the real ones in `tests/fixtures/tsuku/batches/` (each folder holds exactly what one
batch commit added under `data/`). `copies` > 1 repeats them, each earlier repetition shifted back in time
(file names and every timestamp in the files move together), for a history of ~1,000 batch commits.
One `git fast-import` writes the whole history, with each commit dated at its run summary's time.
Used by the backfill benchmark (`bench/backfill.py`) and by the tests.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.measure import ROOT

BATCHES = ROOT / "tests" / "fixtures" / "tsuku" / "batches"
SHIFT = timedelta(days=120)  # longer than the fixtures span, so repetitions keep their order
# A timestamp as tsuku writes it, in a file or a file name: `2026-03-11T21:36:10Z`, `...T21-36-10Z`,
# `...T20:33:12.773280096Z`.
_STAMP = re.compile(r"(\d{4}-\d\d-\d\d)T(\d\d)([:-])(\d\d)[:-](\d\d)")


@dataclass(frozen=True)
class Batch:
    """One committed batch: its files (path under the repository -> bytes) and its run summary."""

    files: dict[str, bytes]
    summary: dict[str, object]
    time: datetime


def _shift(text: str, by: timedelta) -> str:
    def moved(match: re.Match[str]) -> str:
        day, hour, sep, minute, second = match.groups()
        moment = datetime.fromisoformat(f"{day}T{hour}:{minute}:{second}") + by
        return moment.strftime(f"%Y-%m-%dT%H{sep}%M{sep}%S")

    return _STAMP.sub(moved, text) if by else text


def fixture_batches(copies: int = 1) -> list[Batch]:
    """The fixture batches, oldest first, repeated `copies` times, each repetition SHIFT earlier than the next
    (the last is the fixtures' own)."""
    found = []
    for back in range(copies - 1, -1, -1):
        for folder in sorted(path for path in BATCHES.iterdir() if path.is_dir()):
            files = {
                _shift(path.relative_to(folder).as_posix(), -back * SHIFT): _shift(
                    path.read_text(encoding="utf-8"), -back * SHIFT
                ).encode()
                for path in sorted(folder.rglob("*"))
                if path.is_file()
            }
            [summary] = [
                json.loads(data)
                for name, data in files.items()
                if name.startswith("data/metrics/batch-runs-")
            ]
            time = datetime.fromisoformat(str(summary["timestamp"]).replace("Z", "+00:00"))
            found.append(Batch(files, summary, time))
    return found


def write_history(repo: Path, batches: list[Batch]) -> list[str]:
    """A new git repository at `repo` holding one commit per batch, dated at its summary; the commits."""
    subprocess.run(["git", "init", "-q", "--initial-branch=main", str(repo)], check=True)
    stream = bytearray()
    for number, batch in enumerate(batches, 1):
        seconds = int(batch.time.astimezone(UTC).timestamp())
        message = f"chore(batch): update batch state\n\nbatch_id: {batch.summary['batch_id']}\n".encode()
        stream += f"commit refs/heads/main\nmark :{number}\n".encode()
        stream += f"committer github-actions[bot] <bot@example.invalid> {seconds} +0000\n".encode()
        stream += f"data {len(message)}\n".encode() + message
        if number > 1:
            stream += f"from :{number - 1}\n".encode()
        for path, data in batch.files.items():
            stream += f"M 100644 inline {path}\ndata {len(data)}\n".encode() + data + b"\n"
    subprocess.run(["git", "-C", str(repo), "fast-import", "--quiet"], input=bytes(stream), check=True)
    listed = subprocess.run(
        ["git", "-C", str(repo), "rev-list", "--reverse", "main"], capture_output=True, text=True, check=True
    )
    return listed.stdout.split()
