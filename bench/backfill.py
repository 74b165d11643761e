"""Workload 7, backfill: a git history of ~1,000 tsuku batch commits into `batch-metrics serve` on SQLite.

The history is tsuku's committed fixture batches repeated, each repetition shifted back in time
(bench/history.py), one commit per batch, as its pipeline commits them. Ours is one
`batch-metrics backfill` process, from start to exit, against a fresh database. The baseline, in
the same run, sends the same batches (the payload files ours writes with `--dry-run
--payload-dir`, untimed) as one `batch-metrics upload` process each to another fresh database:
what loading the history took before there was a backfill. Each contender's database ends up
holding the same batches, which is checked. The target is the issue's: ≤ 10 s.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

from batch_metrics import ENDPOINT_ENV, TOKEN_ENV
from bench.endpoint import HOST, serving
from bench.history import fixture_batches, write_history
from bench.measure import ROOT, BenchError, Row, Scale, clean_env, cli_command, ratio_row

TARGET_SECONDS = 10.0
COPIES = {"full": 91, "quick": 5}  # 91 x 11 fixture batches = 1,001 batch commits


def _timed(argv: list[str], env: dict[str, str]) -> float:
    began = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise BenchError(f"{' '.join(argv[:3])} ... exited {done.returncode}:\n{done.stderr[-2000:]}")
    return seconds


def _stored(db: Path) -> int:
    with sqlite3.connect(db) as connection:
        count: int = connection.execute("SELECT count(*) FROM batch_runs").fetchone()[0]
    return count


def run(scale: Scale, work: Path) -> list[Row]:
    base = work / "backfill"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    batches = fixture_batches(COPIES[scale.name])
    write_history(base / "history", batches)
    payloads = base / "payloads"
    _timed([*cli_command(), "backfill", "--repo", str(base / "history"), "--dry-run", "--payload-dir",
            str(payloads)], clean_env())  # fmt: skip
    files = sorted(payloads.iterdir())
    if len(files) != len(batches):
        raise BenchError(f"{len(files)} payloads for {len(batches)} batch commits")
    with serving(str(base / "ours.db"), base / "ours.log") as endpoint:
        env = clean_env(**{TOKEN_ENV: endpoint.token, ENDPOINT_ENV: f"http://{HOST}:{endpoint.port}"})
        ours = _timed([*cli_command(), "backfill", "--repo", str(base / "history")], env)
    with serving(str(base / "baseline.db"), base / "baseline.log") as endpoint:
        env = clean_env(**{TOKEN_ENV: endpoint.token, ENDPOINT_ENV: f"http://{HOST}:{endpoint.port}"})
        began = time.perf_counter()
        for path in files:
            _timed([*cli_command(), "upload", str(path)], env)
        baseline = time.perf_counter() - began
    counts = (_stored(base / "ours.db"), _stored(base / "baseline.db"))
    if counts != (len(batches), len(batches)):
        raise BenchError(f"stored {counts[0]} (backfill) and {counts[1]} (uploads) of {len(batches)} batches")
    label = f"backfill, {len(batches):,} batch commits of tsuku's committed batches into serve on SQLite"
    row = ratio_row(
        f"{label}: wall time", ours, baseline, unit="s", baseline_name="one `batch-metrics upload` per batch",
        limit=None, batches=len(batches), per_batch_ms=round(ours / len(batches) * 1000, 2),
        baseline_per_batch_ms=round(baseline / len(batches) * 1000, 2),
    )  # fmt: skip
    row.target, row.met = f"≤ {TARGET_SECONDS:g} s", ours <= TARGET_SECONDS
    return [row]
