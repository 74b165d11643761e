"""`batch-metrics backfill` on a git history of tsuku's committed batches, into the real endpoint.

The history is the fixture batches (tests/fixtures/tsuku/batches/), one commit each, as tsuku's
pipeline committed them (bench/history.py writes it). The endpoint runs on loopback on SQLite and
on PostgreSQL; the command runs as users run it, in its own process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bench.history import Batch, fixture_batches, write_history
from tests.conftest import ROOT
from tests.live import Live
from tests.tsuku import BATCHES, failure_lines, job, run_summary, said, stored

pytest_plugins = ["tests.live"]


def backfill(*args: str, token: str = "", cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batch_metrics.cli", "backfill", *args],
        cwd=cwd, env={"PATH": os.environ["PATH"], "BATCH_METRICS_TOKEN": token},
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.fixture
def history(tmp_path: Path) -> Path:
    repo = tmp_path / "tsuku"
    write_history(repo, fixture_batches())
    return repo


def test_every_committed_batch_stores_exactly_its_run_summary(live: Live, history: Path) -> None:
    done = backfill("--repo", str(history), "--endpoint", live.url, token=live.token)
    assert done.returncode == 0, done.stderr
    folders = sorted(path for path in BATCHES.iterdir() if path.is_dir())
    count = len(folders)
    assert done.stdout.startswith(
        f"backfill: {count} batch commits of {count} commits read: {count} stored in "
    )
    assert "backfill: reading" in done.stderr  # progress goes to stderr
    stored_runs = _runs(live)
    assert len(stored_runs) == len(folders)
    for folder, run in zip(folders, stored_runs, strict=True):
        summary = run_summary(folder)
        assert stored(live.storage, run["id"]) == said(summary), folder.name
        totals = [
            sum(counts[key] for counts in summary["platforms"].values()) for key in ("passed", "failed")
        ]
        assert [run["passed"], run["failed"]] == totals, folder.name
        assert run["completed_at"] == summary["timestamp"]  # the batch's own times, not the backfill's
        assert run["started_at"] <= summary["timestamp"]
        assert run["batch_id"].startswith(f"{summary['batch_id']}@")
        full = live.storage.get_run(run["id"])
        assert full is not None and full["run_summary"]["platforms"] == summary["platforms"]
        # No result counted twice: one stored row per failure line, each a validation.
        validations = [
            (row["recipe_name"], row["platform"]) for row in full["results"] if row["stage"] is None
        ]
        assert sorted(validations) == sorted(failure_lines(folder)), folder.name


def _runs(live: Live) -> list[dict[str, Any]]:
    answer = live.get("/batch-runs", params={"limit": "500"}).json()
    return sorted(answer["runs"], key=lambda run: int(run["id"]))


def test_a_second_run_stores_nothing_new(live: Live, history: Path) -> None:
    first = backfill("--repo", str(history), "--endpoint", live.url, token=live.token)
    assert first.returncode == 0, first.stderr
    again = backfill("--repo", str(history), "--endpoint", live.url, token=live.token)
    assert again.returncode == 0, again.stderr
    count = len(list(BATCHES.iterdir()))
    assert f"commits read: {count} already stored in " in again.stdout
    assert len(_runs(live)) == count


def test_a_range_limits_the_commits_and_dry_run_sends_nothing(tmp_path: Path, history: Path) -> None:
    listed = ["git", "-C", str(history), "rev-list", "--reverse", "main"]
    commits = subprocess.run(listed, capture_output=True, text=True, check=True).stdout.split()
    payloads = tmp_path / "payloads"
    done = backfill("--repo", str(history), "--range", f"{commits[7]}..main", "--dry-run",
                    "--payload-dir", str(payloads))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "3 batch commits of 3 commits read: 3 not sent (dry run)" in done.stdout
    assert sorted(path.stem for path in payloads.iterdir()) == sorted(commits[8:])
    body = json.loads((payloads / f"{commits[-1]}.json").read_bytes())
    assert body["batch_id"] == f"2026-05-07@{commits[-1][:12]}"
    assert (body["passed"], body["failed"]) == (1, 10)


def test_the_older_layout_appends_summaries_and_lines_to_one_file(tmp_path: Path, live: Live) -> None:
    """Before timestamped files, tsuku appended each batch's summary to `batch-runs.jsonl`."""
    values = (
        (ROOT / "tests/fixtures/tsuku/metrics/batch-runs.jsonl").read_text(encoding="utf-8").split("}\n{")
    )
    first, second = values[0] + "}\n", "{" + values[1] + "}\n"
    line = json.dumps({"schema_version": 1, "recipe": "gh", "platform": "linux-alpine-musl-x86_64",
                       "exit_code": 6, "category": "deterministic"}) + "\n"  # fmt: skip
    batches = [
        Batch({"data/metrics/batch-runs.jsonl": first.encode(),
               "data/failures/homebrew.jsonl": line.encode()}, json.loads(first), _time(first)),
        Batch({"data/metrics/batch-runs.jsonl": (first + second).encode(),
               "data/failures/homebrew.jsonl": (line + line.replace("x86_64", "arm64")).encode()},
              json.loads(second), _time(second)),
    ]  # fmt: skip
    repo = tmp_path / "old"
    write_history(repo, batches)
    done = backfill("--repo", str(repo), "--endpoint", live.url, token=live.token)
    assert done.returncode == 0, done.stderr
    first_run, second_run = _runs(live)
    for run, batch in ((first_run, batches[0]), (second_run, batches[1])):
        assert stored(live.storage, int(run["id"])) == said(batch.summary)
    stored_second = live.storage.get_run(int(second_run["id"]))
    assert stored_second is not None
    assert [(row["recipe_name"], row["platform"]) for row in stored_second["results"]] == [
        ("gh", "linux-alpine-musl-arm64")  # only the appended line
    ]


def _time(text: str) -> datetime:
    return datetime.fromisoformat(json.loads(text)["timestamp"].replace("Z", "+00:00"))


def test_a_rewritten_file_in_a_batch_commit_is_a_warning_not_a_guess(tmp_path: Path) -> None:
    [early, later] = fixture_batches()[:2]
    rewritten = dict(later.files)
    name = next(path for path in early.files if "failures" in path)
    rewritten[name] = b'{"schema_version": 1, "recipe": "x", "platform": "darwin-arm64", "exit_code": 6}\n'
    repo = tmp_path / "rewritten"
    write_history(repo, [early, Batch(rewritten, later.summary, later.time)])
    done = backfill("--repo", str(repo), "--dry-run")
    assert done.returncode == 0
    assert (
        f"{name}: changed, not appended to: its new lines cannot be told from the old ones; skipped"
        in done.stderr
    )


@pytest.mark.parametrize(
    ("args", "said_"),
    [
        (["--repo", "/nonexistent-repository", "--dry-run"], "cannot change to"),
        (["--range=--output=x", "--dry-run"], "is not a revision range"),
        ([], "give --endpoint"),
    ],
)
def test_what_cannot_be_read_or_sent_says_why_and_exits_2(
    args: list[str], said_: str, tmp_path: Path
) -> None:
    done = backfill(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert said_ in done.stderr


def test_the_platforms_of_the_committed_files_are_the_jobs_the_summary_counts() -> None:
    for folder in BATCHES.iterdir():
        jobs = {job(name) for name in run_summary(folder)["platforms"]}
        assert {job(platform) for _, platform in failure_lines(folder)} <= jobs, folder.name
