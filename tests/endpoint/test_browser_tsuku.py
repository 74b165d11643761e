"""tsuku's committed batches on the dashboard, in a real browser: each ecosystem of the data has its own line.

The batches of tests/fixtures/tsuku/batches/ are committed into a git history and loaded the
documented way (`batch-metrics backfill`, with a recipe → ecosystem mapping) into `batch-metrics
serve`, its own process; the page is read back as the user sees it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from bench.history import fixture_batches, write_history
from tests.endpoint.test_browser import TOKEN, browser, cells, open_dashboard, screenshot
from tests.live import ServeProcess, serve_process
from tests.test_tsuku_merge_job import QUEUE
from tests.tsuku import BATCHES

__all__ = ["browser"]  # the fixture, shared with test_browser.py
DATA_ECOSYSTEMS = {"crates.io", "github", "homebrew", "npm", "pypi", "rubygems"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    work = tmp_path_factory.mktemp("tsuku-browser")
    write_history(work / "tsuku", fixture_batches())
    (work / "queue.json").write_text(json.dumps(QUEUE))
    with serve_process(str(work / "metrics.db"), TOKEN, work / "serve.log") as process:
        loaded = subprocess.run(
            [sys.executable, "-m", "batch_metrics.cli", "backfill", "--repo", str(work / "tsuku"),
             "--endpoint", process.url, "--ecosystem-map", str(work / "queue.json")],
            env={"PATH": os.environ["PATH"], "BATCH_METRICS_TOKEN": TOKEN}, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
        assert loaded.returncode == 0, loaded.stderr
        yield process


def test_each_ecosystem_of_the_data_has_its_own_line(browser: Browser, server: ServeProcess) -> None:
    page = open_dashboard(browser, f"{server.url}/")
    lines = {row[0]: row for row in cells(page, "ecosystems-table")}
    # The six ecosystems the batches cover, and `mixed`: the batch label, which holds the validations
    # of the one batch whose files do not say whose they are (2026-03-02: github and homebrew, no row).
    assert set(lines) == DATA_ECOSYSTEMS | {"mixed"}
    # Each latest batch's own counts: 2026-05-07, solargraph (rubygems) failed on 10 platforms, passed on 1.
    assert lines["rubygems"][2:4] == ["9.1%", "10"]
    # crates.io's latest batch validated none of its recipes: no rate, one generation failure; and it
    # never validated anything, so no run counts since a green one.
    assert lines["crates.io"][2:6] == ["—", "0", "1", "—"]
    assert [
        option for option in page.locator("#ecosystem option").all_inner_texts() if option != "all"
    ] == sorted(lines)
    page.locator("#ecosystems-table tbody tr", has_text="rubygems").locator("a.time").click()
    expect(page.locator("#drill-title")).to_contain_text("2026-05-07@")
    body = page.locator("#drill-body").inner_text()
    assert "Run summary 2026-05-07" in body and "generated" in body  # generation, apart from validation
    per_ecosystem = {row[0]: row for row in cells(page, "drill-body table") if row[0] in DATA_ECOSYSTEMS}
    assert per_ecosystem["rubygems"][1:4] == ["9.1%", "1", "10"]
    assert per_ecosystem["npm"][1] == "—" and per_ecosystem["npm"][5] == "1"  # npm: a generation failure only
    screenshot(page, "tsuku")
    assert page.errors == []  # type: ignore[attr-defined]


def test_the_stored_numbers_are_the_run_summaries(server: ServeProcess) -> None:
    import requests

    runs = requests.get(f"{server.url}/batch-runs", params={"limit": "100"}, timeout=30,
                        headers={"Authorization": f"Bearer {TOKEN}"}).json()["runs"]  # fmt: skip
    assert len(runs) == len(list(BATCHES.iterdir()))
    assert sum(run["passed"] for run in runs) == sum(
        counts["passed"]
        for batch in fixture_batches()
        for counts in batch.summary["platforms"].values()  # type: ignore[attr-defined]
    )
