"""`python3 scripts/dev.py demo` end to end: the real endpoint, the real job, the stored batch read back.

The expected numbers were read off examples/results/ by hand (see examples/README.md): 50 rows,
36 passed, 12 failed, 2 skipped; 809.7 s on macOS platforms and 2545.2 s on Linux ones.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.conftest import ROOT

EXPECTED = {
    "ecosystem": "homebrew",
    "results": "50 (36 passed, 12 failed, 2 skipped)",
    "success rate": "0.75  (passed / (passed + failed))",
    "macOS minutes": "13.495",
    "Linux minutes": "42.42",
    "rows stored": "50",
}


def run_demo(*arguments: str) -> subprocess.CompletedProcess[str]:
    # stdin is not a terminal, so the demo does not wait for Enter before it stops the endpoint.
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "dev.py"), "demo", *arguments],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def final_table(stdout: str) -> dict[str, str]:
    """The `label  value` lines under step 5, up to the blank line that ends them."""
    section = stdout.split("\n5. Read the stored batch back", 1)[1].split("\n\n", 1)[0]
    rows = [re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in section.splitlines()[1:]]
    return {label: value for label, value in rows}


def workdir_of(stdout: str) -> Path:
    match = re.search(r"This run's files go to (\S+), removed", stdout)
    assert match, stdout
    return Path(match.group(1))


def test_the_demo_walks_through_and_ends_with_what_was_stored() -> None:
    demo = run_demo("--keep")
    assert demo.returncode == 0, demo.stdout + demo.stderr
    workdir = workdir_of(demo.stdout)
    try:
        steps = re.findall(r"^(\d)\. ", demo.stdout, re.MULTILINE)
        assert steps == ["1", "2", "3", "4", "5"], demo.stdout
        table = final_table(demo.stdout)
        assert {label: table[label] for label in EXPECTED} == EXPECTED, demo.stdout
        assert table["batch id"].startswith("local-")
        started = datetime.fromisoformat(table["started at"])
        assert abs(datetime.now(UTC) - started) < timedelta(minutes=5)  # not a stale date from the samples

        # Each stream labelled: the job's lines prefixed, the endpoint's log in its file, not here.
        assert re.search(r"^   job \| batch local-\S+: 50 results", demo.stdout, re.MULTILINE), demo.stdout
        assert re.search(r"^     status +uploaded$", demo.stdout, re.MULTILINE), demo.stdout
        assert "batch_metrics.access" not in demo.stdout + demo.stderr
        assert '"POST /batch-metrics" 201' in (workdir / "server.log").read_text(encoding="utf-8")
        token = (workdir / "token").read_text(encoding="utf-8").strip()
        assert token not in demo.stdout + demo.stderr
        assert f'TOKEN="$(cat {workdir / "token"})"' in demo.stdout
        assert f"Kept {workdir}" in demo.stdout.splitlines()[-1]

        # The table is what the database holds.
        with sqlite3.connect(workdir / "batch-metrics.db") as db:
            stored = db.execute(
                "SELECT batch_id, total_recipes, passed, failed, skipped, macos_minutes, linux_minutes "
                "FROM batch_runs"
            ).fetchall()
            rows = db.execute("SELECT count(*) FROM recipe_results").fetchone()[0]
        assert stored == [(table["batch id"], 50, 36, 12, 2, 13.495, 42.42)]
        assert rows == 50
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_the_demo_removes_its_folder_and_says_so() -> None:
    demo = run_demo()
    assert demo.returncode == 0, demo.stdout + demo.stderr
    workdir = workdir_of(demo.stdout)
    assert not workdir.exists()
    assert demo.stdout.splitlines()[-1] == f"Removed {workdir} (--keep keeps it)."


def test_the_demo_refuses_an_unknown_option() -> None:
    demo = run_demo("--no-such-option")
    assert demo.returncode != 0
    assert "usage:" in demo.stderr
    assert "This run's files" not in demo.stdout
