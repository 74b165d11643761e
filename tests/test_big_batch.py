"""A 1M-result batch reaches the project's own endpoint, both sides at their defaults (the server's
limits, the client's 30 s timeout): through `run` (the action's job, via entrypoint.py) and through
`batch-metrics upload` of a saved payload.

Slow by nature (about a minute per store on 2 cores), and marked so; it runs in the suite all the same.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from batch_metrics.client.upload import GZIP_THRESHOLD
from tests.conftest import ROOT, unused_port, wait_healthy
from tests.test_cli import TOKEN, cli, github_layout, run_entrypoint

RESULTS = 1_000_000

pytestmark = pytest.mark.slow


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """`batch-metrics serve` with nothing but a database and a token: its URL, database and log."""
    db, log, tokens = tmp_path / "metrics.db", tmp_path / "serve.log", tmp_path / "tokens"
    tokens.write_text(f"{TOKEN}\n")
    port = unused_port()
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, str(ROOT / "entrypoint.py"), "serve", "--port", str(port), "--db", str(db),
             "--token-file", str(tokens)],
            env={"PATH": os.environ["PATH"]}, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, seconds=60, alive=lambda: server.poll() is None, why=log.read_text)
        yield url, db, log
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)


def write_results(path: Path) -> None:
    """1M validation results, one JSON array, written row by row (no million dicts held here)."""
    statuses = ("pass", "fail", "skipped")
    with path.open("w") as out:
        out.write("[")
        for index in range(RESULTS):
            row = {
                "recipe": f"recipe-{index}",
                "platform": "darwin-arm64" if index % 2 else "linux-debian-glibc-x86_64",
                "status": statuses[index % 3],
                "exit_code": 6 if index % 3 == 1 else 0,
                "attempts": 1,
            }
            out.write(("," if index else "") + json.dumps(row))
        out.write("]")


def stored_rows(db: Path, batch_run_id: str) -> int:
    with sqlite3.connect(db) as connection:
        [(count,)] = connection.execute(
            "SELECT count(*) FROM recipe_results WHERE batch_run_id = ?", (int(batch_run_id),)
        ).fetchall()
    return int(count)


def test_a_million_results_upload_by_run_and_by_upload(
    tmp_path: Path, endpoint: tuple[str, Path, Path]
) -> None:
    url, db, log = endpoint
    github = github_layout(tmp_path)
    workspace = github / "workspace"
    write_results(workspace / "results/validation-results-big.json")
    inputs = {"results": "results/*big.json", "ecosystem": "npm", "token": TOKEN}

    run = run_entrypoint(github, {**inputs, "endpoint": url, "retries": "0"}, seconds=900)
    assert (run.code, run.outputs["status"], run.outputs["total"]) == (0, "uploaded", str(RESULTS)), (
        run.stdout
    )
    assert stored_rows(db, run.outputs["batch-run-id"]) == RESULTS
    payload = workspace / "batch-metrics-payload.json"
    size = payload.stat().st_size
    assert size > 100 * 1024 * 1024  # well over the endpoint's 64 MiB wire limit, uncompressed
    [posted] = [line for line in log.read_text().splitlines() if '"POST /batch-metrics" 201' in line]
    wire = int(posted.split(" in=")[1].split()[0])
    assert GZIP_THRESHOLD < wire < size / 5  # it went gzip-compressed

    saved = run_entrypoint(github, {**inputs, "dry-run": "true", "batch-id": "saved-1m"}, seconds=900)
    assert saved.outputs["status"] == "dry-run"
    sent = cli(
        "upload", str(payload), "--endpoint", url, "--retries", "0", BATCH_METRICS_TOKEN=TOKEN, seconds=900
    )
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.startswith("uploaded: stored as batch run "), sent.stdout + sent.stderr
    run_id = sent.stdout.split("batch run ")[1].split()[0]
    assert run_id != run.outputs["batch-run-id"] and stored_rows(db, run_id) == RESULTS
