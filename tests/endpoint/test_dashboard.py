"""The dashboard's queries on real SQLite and PostgreSQL, and its routes over real HTTP on loopback.

The stored history (tests/history.py) is small enough that every expected figure below is
counted by hand from its description.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from batch_metrics import TOKEN_ENV
from batch_metrics.endpoint.answers import dashboard, flaky
from batch_metrics.endpoint.answers.dashboard import Window
from batch_metrics.endpoint.answers.shapes import DashboardSummary, RecipeHistory, RunFailures
from batch_metrics.endpoint.storage import (
    MIGRATIONS,
    RESULT_COLUMNS,
    RUN_COLUMNS,
    is_postgres_url,
    open_storage,
)
from batch_metrics.endpoint.storage import base as storage_module
from batch_metrics.endpoint.storage.rollups import roll_up_run
from batch_metrics.models import rfc3339
from tests.conftest import ROOT, unused_port, wait_healthy
from tests.history import HOSTILE, HOSTILE_CATEGORY, HOSTILE_MESSAGE, batches, seeded_database
from tests.live import Storage, count_rows, running, serve_process

pytest_plugins = ["tests.live"]

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
ROLLUPS = {
    "run_ecosystems": "SELECT * FROM run_ecosystems ORDER BY batch_run_id, ecosystem",
    "run_platforms": "SELECT * FROM run_platforms ORDER BY batch_run_id, ecosystem, platform",
    "run_recipe_failures": "SELECT * FROM run_recipe_failures ORDER BY batch_run_id, recipe_name",
    "run_category_failures": "SELECT * FROM run_category_failures ORDER BY batch_run_id, error_category",
    "recipe_latest": "SELECT * FROM recipe_latest ORDER BY ecosystem, recipe_name, platform",
    "recipe_flips": "SELECT * FROM recipe_flips ORDER BY batch_run_id, recipe_name, platform",
}


def seed(storage: Storage, now: datetime = NOW) -> None:
    for payload in batches(now):
        storage.insert_batch(payload, None)  # type: ignore[arg-type]


@pytest.fixture
def seeded(storage: Storage) -> Storage:
    seed(storage)
    return storage


def relabelled(payload: dict[str, Any], ecosystem: str) -> dict[str, Any]:
    """The batch and its rows in another ecosystem: the dashboard groups by the rows' ecosystems."""
    rows = [{**row, "ecosystem": ecosystem} for row in payload["results"]]
    return {**payload, "ecosystem": ecosystem, "results": rows}


def by_name(rows: list[dict[str, Any]], key: str = "ecosystem") -> dict[str, dict[str, Any]]:
    return {row[key]: row for row in rows}


def test_ecosystems_show_the_latest_run_runs_since_green_and_a_stale_one(seeded: Storage) -> None:
    status = by_name(dashboard.ecosystems(seeded, Window(days=7, now=NOW)))
    assert set(status) == {"homebrew", "npm", "cargo"}  # npm's last batch is outside the window: still listed
    homebrew = status["homebrew"]
    assert homebrew["latest_run"]["started_at"] == "2026-11-29T01:00:00Z"
    assert (homebrew["latest_run"]["passed"], homebrew["latest_run"]["failed"]) == (4, 3)
    assert homebrew["latest_run"]["success_rate"] == round(4 / 7, 4)
    assert (homebrew["runs_since_green"], homebrew["last_green_at"]) == (20, None)  # `broken` never passes
    assert (homebrew["stale"], homebrew["stale_after_seconds"]) == (False, 2 * 86400)
    npm = status["npm"]
    assert npm["latest_run"]["started_at"] == "2026-11-18T01:00:00Z"
    assert (npm["runs_since_green"], npm["last_green_at"]) == (1, "2026-11-17T01:00:00Z")
    assert npm["stale"] is True
    cargo = status["cargo"]
    assert (cargo["runs_since_green"], cargo["last_green_at"]) == (0, "2026-11-29T01:00:00Z")
    assert cargo["stale"] is False


def test_a_configured_threshold_replaces_the_usual_interval(seeded: Storage) -> None:
    window = Window(days=30, now=NOW)
    strict = by_name(dashboard.ecosystems(seeded, window, stale_after=timedelta(hours=6)))
    assert [name for name, row in strict.items() if row["stale"]] == sorted(strict)  # all > 6 h ago
    lenient = by_name(dashboard.ecosystems(seeded, window, stale_after=timedelta(days=13)))
    assert not any(row["stale"] for row in lenient.values())
    assert lenient["npm"]["stale_after_seconds"] == 13 * 86400


def test_the_ecosystem_filter_narrows_every_panel(seeded: Storage) -> None:
    window = Window(days=30, ecosystem="cargo", now=NOW)
    assert [row["ecosystem"] for row in dashboard.ecosystems(seeded, window)] == ["cargo"]
    assert {row["ecosystem"] for row in dashboard.daily(seeded, window)} == {"cargo"}
    assert [(row["ecosystem"], row["name"]) for row in dashboard.failing_recipes(seeded, window)] == [
        ("cargo", "ripgrep")
    ]
    assert flaky.across_runs(seeded, window) == []


def test_daily_success_rate_and_runner_minutes(seeded: Storage) -> None:
    days = dashboard.daily(seeded, Window(days=7, now=NOW))
    homebrew = [row for row in days if row["ecosystem"] == "homebrew"]
    # The window starts 2026-11-23T12:00Z, so that night's 01:00 run is out: 6 nights, 11-24 to 11-29.
    assert [row["day"] for row in homebrew] == [f"2026-11-{day}" for day in range(24, 30)]
    last = homebrew[-1]
    assert (last["runs"], last["passed"], last["failed"], last["success_rate"]) == (1, 4, 3, round(4 / 7, 4))
    assert (last["macos_minutes"], last["linux_minutes"]) == (5.0, 10.0)
    assert not [row for row in days if row["ecosystem"] == "npm"]  # nothing from npm in the last 7 days


def test_per_platform_breakdown(seeded: Storage) -> None:
    rows = {
        (row["ecosystem"], row["platform"]): row for row in dashboard.platforms(seeded, Window(30, now=NOW))
    }
    assert set(rows) == {("homebrew", "darwin"), ("homebrew", "linux"), ("npm", "linux"), ("cargo", "linux")}
    darwin = rows["homebrew", "darwin"]
    assert (darwin["runs"], darwin["passed"], darwin["failed"], darwin["success_rate"]) == (20, 40, 5, 0.8889)
    linux = rows["homebrew", "linux"]
    assert (linux["passed"], linux["failed"], linux["success_rate"]) == (40, 40, 0.5)
    assert linux["minutes"] == 80 * 30 / 60  # 80 rows of 30 seconds
    assert (rows["cargo", "linux"]["passed"], rows["cargo", "linux"]["failed"]) == (8, 4)


def test_per_platform_success_rate_per_day(seeded: Storage) -> None:
    days = dashboard.platform_days(seeded, Window(days=7, ecosystem="homebrew", now=NOW))
    last = {row["platform"]: row for row in days if row["day"] == "2026-11-29"}
    assert (last["darwin"]["passed"], last["darwin"]["failed"], last["darwin"]["success_rate"]) == (
        2,
        1,
        0.6667,
    )
    assert (last["linux"]["passed"], last["linux"]["failed"], last["linux"]["success_rate"]) == (2, 2, 0.5)
    assert len(days) == 2 * 6 and {row["ecosystem"] for row in days} == {"homebrew"}


def test_top_failing_recipes_with_counts_and_trend(seeded: Storage) -> None:
    top = dashboard.failing_recipes(seeded, Window(days=30, now=NOW))
    # The window's second half starts 2026-11-15T12:00Z: homebrew nights 6-19 (of 0-19) are "recent".
    assert [
        (row["ecosystem"], row["name"], row["failures"], row["earlier"], row["recent"]) for row in top
    ] == [
        ("homebrew", "broken", 20, 6, 14),
        ("homebrew", "fixed", 10, 6, 4),
        ("homebrew", "flaky", 10, 3, 7),
        ("homebrew", HOSTILE, 5, 0, 5),
        ("cargo", "ripgrep", 4, 0, 4),  # 3 to 6 days ago
        ("npm", "react", 1, 0, 1),  # 12 days ago
    ]
    assert len(dashboard.failing_recipes(seeded, Window(days=30, now=NOW), limit=2)) == 2


def test_top_error_categories(seeded: Storage) -> None:
    top = dashboard.error_categories(seeded, Window(days=30, now=NOW))
    assert [(row["ecosystem"], row["name"], row["failures"]) for row in top] == [
        ("homebrew", "checksum", 20),
        ("homebrew", "network", 20),
        ("homebrew", HOSTILE_CATEGORY, 5),
        ("cargo", "", 4),
        ("npm", "", 1),
    ]


def test_flaky_recipes_are_ranked_by_flips_and_one_change_is_not_flaky(seeded: Storage) -> None:
    found = flaky.across_runs(seeded, Window(days=30, now=NOW))
    # `fixed`, `ripgrep` and `react` changed once each; only `flaky` went back and forth (19 times, linux).
    assert [(row["ecosystem"], row["recipe_name"], row["flips"], row["platforms"]) for row in found] == [
        ("homebrew", "flaky", 19, 1)
    ]
    assert found[0]["last_flip_at"] == "2026-11-29T01:00:00Z"
    assert flaky.across_runs(seeded, Window(days=7, now=NOW))[0]["flips"] == 6


def test_a_recipes_history_and_a_runs_failures(seeded: Storage) -> None:
    history = dashboard.recipe_history(seeded, Window(days=30, now=NOW), "flaky")
    linux = [row["result"] for row in history if row["platform"] == "linux"]
    assert linux == ["passed", "failed"] * 10
    assert {row["result"] for row in history if row["platform"] == "darwin"} == {"passed"}
    assert [row["started_at"] for row in history] == sorted(row["started_at"] for row in history)

    latest = by_name(dashboard.ecosystems(seeded, Window(now=NOW)))["homebrew"]["latest_run"]
    run = dashboard.run_failures(seeded, latest["id"])
    assert run is not None and (run["ecosystem"], run["failed"], run["truncated"]) == ("homebrew", 3, False)
    failures = {row["recipe_name"]: row for row in run["failures"]}
    assert set(failures) == {"broken", "flaky", HOSTILE}
    assert failures["broken"]["error_message"] == "sha256 mismatch"
    assert failures[HOSTILE]["error_message"] == HOSTILE_MESSAGE
    assert dashboard.run_failures(seeded, 10**9) is None


def _rollups(storage: Storage) -> dict[str, list[dict[str, Any]]]:
    return {table: storage.query(query, []) for table, query in ROLLUPS.items()}


@pytest.fixture
def expected_rollups(tmp_path: Path) -> dict[str, list[dict[str, Any]]]:
    """The roll-ups of the seeded history stored in turn on a fresh SQLite file, nothing racing."""
    reference = open_storage(str(tmp_path / "reference.db"))
    try:
        reference.migrate()
        seed(reference)
        return _rollups(reference)
    finally:
        reference.close()


def _store_as_before_migration_4(database: str) -> None:
    """The seeded history as the code before migration 4 stored it: the Worker's columns and `platform`."""
    runs = f"INSERT INTO batch_runs ({', '.join(RUN_COLUMNS)}) VALUES ({{}}) RETURNING id"  # noqa: S608
    results = f"INSERT INTO recipe_results ({', '.join(RESULT_COLUMNS[:8])}) VALUES ({{}})"  # noqa: S608
    rows = [
        ([payload.get(column) for column in RUN_COLUMNS],
         [(payload["recipe_name"], payload["ecosystem"], payload["result"], payload.get("error_category"),
           payload.get("error_message"), payload["duration_seconds"], payload["platform"])
          for payload in payload["results"]])
        for payload in batches(NOW)
    ]  # fmt: skip
    if is_postgres_url(database):
        with psycopg.connect(database) as db:
            for run, stored in rows:
                run_id = db.execute(runs.format(", ".join(["%s"] * len(run))).encode(), run).fetchone()
                db.cursor().executemany(results.format(", ".join(["%s"] * 8)).encode(),
                                        [(run_id[0], *row) for row in stored])  # fmt: skip
        return
    with sqlite3.connect(database) as db:
        for run, stored in rows:
            (run_id,) = db.execute(runs.format(", ".join("?" * len(run))), run).fetchone()
            db.executemany(results.format(", ".join("?" * 8)), [(run_id, *row) for row in stored])


def test_upgrading_fills_the_rollups_of_batches_stored_before_them(
    database: str, monkeypatch: pytest.MonkeyPatch, expected_rollups: dict[str, list[dict[str, Any]]]
) -> None:
    """An upgraded database ends up with exactly the roll-ups the insert path makes for the same batches."""
    with monkeypatch.context() as before:  # the schema as it was before migration 4
        before.setattr(storage_module, "MIGRATIONS", MIGRATIONS[:3])
        old = open_storage(database)
        assert old.migrate() == [1, 2, 3]
        old.close()
    _store_as_before_migration_4(database)
    upgraded = open_storage(database)
    try:
        assert upgraded.migrate() == [version for version, _ in MIGRATIONS[3:]]
        upgraded_rollups = _rollups(upgraded)  # migration 7 queued every batch: the first read adds them
    finally:
        upgraded.close()
    for table, rows in expected_rollups.items():
        assert upgraded_rollups[table] == rows, table
    assert len(expected_rollups["recipe_flips"]) == 19 + 1 + 1 + 1


def test_a_rollup_that_fails_is_set_aside_and_made_once_when_it_is_retried_later(
    storage: Storage, monkeypatch: pytest.MonkeyPatch, expected_rollups: dict[str, list[dict[str, Any]]]
) -> None:
    """The upload's transaction stores and queues; the roll-up's adds and dequeues: each all or nothing.
    A failed roll-up sets its batch aside (reads still answer) until its retry time, then adds it once."""
    payloads = list(batches(NOW))

    def rollup_then_a_failure(db: Any, mark: str, run_id: int, ecosystem: str) -> None:
        roll_up_run(db, mark, run_id, ecosystem)
        db.execute("INSERT INTO no_such_table VALUES (1)")

    monkeypatch.setattr(storage_module, "roll_up_run", rollup_then_a_failure)
    run_id, _ = storage.insert_batch(payloads[0], "key-1")  # type: ignore[arg-type]
    stored = storage.get_run(run_id)
    assert stored is not None and len(stored["results"]) == len(payloads[0]["results"])
    assert storage.roll_up() == 0  # tried, failed, set aside: nothing added, nothing raised
    assert storage.query("SELECT count(*) AS n FROM run_platforms", []) == [{"n": 0}]  # the read answers
    assert storage.backlog() == (1, 1)
    monkeypatch.undo()
    assert storage.roll_up() == 0  # not tried again before its retry time
    later = datetime.now(UTC) + timedelta(minutes=2)
    monkeypatch.setattr(storage_module, "now", lambda: rfc3339(later, milliseconds=True))
    assert storage.roll_up() == 1
    for payload in payloads[1:]:
        storage.insert_batch(payload, None)  # type: ignore[arg-type]
    assert _rollups(storage) == expected_rollups
    assert storage.roll_up() == 0  # nothing left queued
    assert storage.backlog() == (0, 0)


def _wait_for_empty_queue(database: str) -> None:
    deadline = time.monotonic() + 60
    while count_rows(database, "rollup_queue") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert count_rows(database, "rollup_queue") == 0


def test_the_rollups_are_made_in_the_background_after_the_upload(database: str, storage: Storage) -> None:
    """Nothing reads the dashboard here: the storage's own thread empties the queue."""
    seed(storage)
    _wait_for_empty_queue(database)
    platforms = sum(len({row.get("platform") or "" for row in batch["results"]}) for batch in batches(NOW))
    assert count_rows(database, "run_platforms") == platforms


def test_batches_queued_when_the_server_stopped_are_added_after_it_starts_again(
    database: str, monkeypatch: pytest.MonkeyPatch, expected_rollups: dict[str, list[dict[str, Any]]]
) -> None:
    with monkeypatch.context() as stopped:  # the process ends before its thread gets to the queue
        stopped.setattr(storage_module._Background, "wake", lambda _: None)
        first = open_storage(database)
        first.migrate()
        seed(first)
        first.close()
    assert count_rows(database, "rollup_queue") == len(list(batches(NOW)))
    again = open_storage(database)
    try:
        assert _rollups(again) == expected_rollups  # the first read adds them
        assert count_rows(database, "rollup_queue") == 0
    finally:
        again.close()


def test_the_wal_is_checkpointed_off_the_upload_path_and_does_not_grow(tmp_path: Path) -> None:
    """Commits leave the WAL to the background thread; without it six batches make it six times as long."""
    path = tmp_path / "metrics.db"
    storage = open_storage(str(path))
    rows = [{"recipe_name": f"recipe-{n}", "ecosystem": "npm", "result": "passed", "platform": "linux",
             "error_message": "x" * 100} for n in range(20_000)]  # fmt: skip
    sizes = []
    try:
        storage.migrate()
        for number in range(6):
            payload = {"batch_id": f"b{number}", "ecosystem": "npm", "started_at": "2026-11-29T01:00:00Z",
                       "results": rows}  # fmt: skip
            storage.insert_batch(payload, None)  # type: ignore[arg-type]
            _wait_for_empty_queue(str(path))
            time.sleep(0.2)  # the checkpoint follows the roll-ups
            sizes.append(path.with_name("metrics.db-wal").stat().st_size)
    finally:
        storage.close()
    assert sizes[0] > 2_000_000, sizes  # one batch's pages went through the WAL
    assert max(sizes) < 2 * sizes[0], sizes


def test_rollups_made_by_several_processes_at_once_add_each_batch_once(
    database: str, expected_rollups: dict[str, list[dict[str, Any]]]
) -> None:
    """Two storages on one database (two server processes) and three threads race to empty the queue."""
    writer = open_storage(database)
    others = [open_storage(database) for _ in range(2)]
    try:
        writer.migrate()
        seed(writer)
        racers = [threading.Thread(target=other.roll_up) for other in (*others, others[0])]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join(timeout=120)
        assert _rollups(others[1]) == expected_rollups
    finally:
        for storage in (writer, *others):
            storage.close()


# --- over HTTP ------------------------------------------------------------------------------------


@pytest.fixture
def token() -> str:
    return secrets.token_urlsafe(24)


def _get(url: str, token: str | None = None, **params: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(url, params=params, headers=headers, timeout=30)


def test_the_page_is_public_and_every_answer_with_data_needs_the_token(storage: Storage, token: str) -> None:
    seed(storage, datetime.now(UTC))
    with running(storage, [token]) as url:
        page = _get(f"{url}/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "/static/dashboard.js" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        for asset, kind in (("dashboard.js", "javascript"), ("dashboard.css", "text/css")):
            answer = _get(f"{url}/static/{asset}")
            assert answer.status_code == 200 and kind in answer.headers["content-type"], asset
        assert "innerHTML" not in _get(f"{url}/static/dashboard.js").text
        first_run = storage.query("SELECT min(id) AS id FROM batch_runs", [])[0]["id"]
        for path, params in (("/api/dashboard", {}), ("/api/dashboard/recipe", {"name": "flaky"}),
                             (f"/api/dashboard/runs/{first_run}", {}), ("/metrics", {})):  # fmt: skip
            refused = _get(f"{url}{path}", **params)
            assert refused.status_code == 401, path
            assert refused.headers["www-authenticate"].startswith("Bearer"), path
            assert _get(f"{url}{path}", "wrong-token", **params).status_code == 401, path
            assert _get(f"{url}{path}", token, **params).status_code == 200, path


def test_public_read_opens_reading_but_never_writing(storage: Storage, token: str) -> None:
    seed(storage, datetime.now(UTC))
    with running(storage, [token], public_read=True) as url:
        assert _get(f"{url}/api/dashboard").status_code == 200
        assert _get(f"{url}/metrics").status_code == 200
        assert _get(f"{url}/batch-runs").status_code == 200
        assert requests.post(f"{url}/batch-metrics", json=next(batches(NOW)), timeout=30).status_code == 401


def test_the_json_answers_have_the_documented_shapes(storage: Storage, token: str) -> None:
    seed(storage, datetime.now(UTC))
    with running(storage, [token]) as url:
        summary = DashboardSummary.model_validate(_get(f"{url}/api/dashboard", token, days="90").json())
        assert (summary.days, summary.ecosystem) == (90, None)
        assert {row.ecosystem for row in summary.ecosystems} == {"homebrew", "npm", "cargo"}
        assert [row.recipe_name for row in summary.flaky_recipes] == ["flaky"]
        assert summary.failing_recipes[0].name == "broken"
        assert summary.platform_days == []  # per platform and day only for one ecosystem
        only = DashboardSummary.model_validate(_get(f"{url}/api/dashboard", token, ecosystem="npm").json())
        assert [row.ecosystem for row in only.ecosystems] == ["npm"] and only.ecosystems[0].stale
        assert {(row.platform, row.success_rate) for row in only.platform_days} >= {
            ("linux", 1.0),
            ("linux", 0.5),
        }
        recipe = RecipeHistory.model_validate(_get(f"{url}/api/dashboard/recipe", token, name=HOSTILE).json())
        assert [row.result for row in recipe.history] == ["failed"] * 5
        run = RunFailures.model_validate(_get(f"{url}/api/dashboard/runs/{recipe.history[-1].batch_run_id}",
                                              token).json())  # fmt: skip
        assert HOSTILE_MESSAGE in [row.error_message for row in run.failures]
        assert _get(f"{url}/api/dashboard", token).headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/api/dashboard", {"days": "0"}, 400),
        ("/api/dashboard", {"days": "367"}, 400),
        ("/api/dashboard", {"days": "7d"}, 400),
        ("/api/dashboard", {"days": "-1"}, 400),
        ("/api/dashboard", {"window": "7"}, 400),
        ("/api/dashboard", {"ecosystem": "a\x00b"}, 400),
        ("/api/dashboard/recipe", {}, 400),
        ("/api/dashboard/recipe", {"name": "x\x00"}, 400),
        ("/api/dashboard/runs/999999", {}, 404),
        ("/api/dashboard/runs/99999999999999999999999", {}, 404),
        ("/api/dashboard/runs/abc", {}, 404),
    ],
)
def test_bad_requests_are_refused_plainly(
    storage: Storage, token: str, path: str, params: dict[str, str], status: int
) -> None:
    with running(storage, [token]) as url:
        answer = _get(f"{url}{path}", token, **params)
        assert answer.status_code == status, answer.text
        assert answer.headers["content-type"].startswith("text/plain")


def test_metrics_are_prometheus_text_per_ecosystem(storage: Storage, token: str) -> None:
    seed(storage, datetime.now(UTC))
    storage.insert_batch({**relabelled(next(batches(NOW)), 'we"ird\neco\\system'), "batch_id": "odd"}, None)  # type: ignore[arg-type]
    with running(storage, [token]) as url:
        answer = _get(f"{url}/metrics", token)
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }
    homebrew = (("ecosystem", "homebrew"),)
    assert samples["batch_metrics_last_batch_success_rate", homebrew] == round(4 / 7, 4)
    assert samples["batch_metrics_last_batch_results", (("ecosystem", "homebrew"), ("result", "failed"))] == 3
    assert samples["batch_metrics_runs_since_green", homebrew] == 20
    assert samples["batch_metrics_ecosystem_stale", (("ecosystem", "npm"),)] == 1
    assert samples["batch_metrics_ecosystem_stale", homebrew] == 0
    yesterday = datetime.now(UTC).replace(hour=1, minute=0, second=0, microsecond=0) - timedelta(days=1)
    assert samples["batch_metrics_last_batch_timestamp_seconds", homebrew] == yesterday.timestamp()
    # A label value with a quote, a newline and a backslash comes back intact: it was escaped.
    assert samples["batch_metrics_ecosystem_stale", (("ecosystem", 'we"ird\neco\\system'),)] in (0, 1)


def test_serve_flags_open_reading_and_set_the_stale_threshold(tmp_path: Path, token: str) -> None:
    """`batch-metrics serve --public-read --stale-after 6`: the same as create_app's options, from the CLI."""
    database = seeded_database(tmp_path / "metrics.db", datetime.now(UTC))
    with serve_process(
        database, token, tmp_path / "serve.log", "--public-read", "--stale-after", "6"
    ) as served:
        summary = _get(f"{served.url}/api/dashboard")  # no token
        assert summary.status_code == 200, served.output()
        status = by_name(summary.json()["ecosystems"])
        assert {name: row["stale"] for name, row in status.items()} == {
            "homebrew": True,
            "npm": True,
            "cargo": True,
        }
        assert status["homebrew"]["stale_after_seconds"] == 6 * 3600
        assert (
            requests.post(f"{served.url}/batch-metrics", json=next(batches(NOW)), timeout=30).status_code
            == 401
        )
    with serve_process(database, token, tmp_path / "serve-2.log") as served:
        assert _get(f"{served.url}/api/dashboard").status_code == 401
        status = by_name(_get(f"{served.url}/api/dashboard", token).json()["ecosystems"])
        assert [name for name, row in status.items() if row["stale"]] == ["npm"]


def test_a_long_history_keeps_its_latest_rows(storage: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dashboard, "MAX_HISTORY", 5)
    seed(storage)
    history = dashboard.recipe_history(storage, Window(days=30, now=NOW), "flaky")
    assert [(row["started_at"][:10], row["platform"]) for row in history] == [
        ("2026-11-27", "linux"), ("2026-11-28", "darwin"), ("2026-11-28", "linux"),
        ("2026-11-29", "darwin"), ("2026-11-29", "linux"),
    ]  # fmt: skip


def test_a_started_at_that_is_no_time_stays_out_of_every_panel(storage: Storage) -> None:
    """Stored before the endpoint checked times (the storage itself does not): text that sorts after any
    time is in no window and is no ecosystem's latest run."""
    seed(storage)
    odd = {**relabelled(next(batches(NOW)), "odd"), "batch_id": "odd", "started_at": "yesterday"}
    storage.insert_batch(odd, None)  # type: ignore[arg-type]
    window = Window(days=90, now=NOW)
    assert "odd" not in {row["ecosystem"] for row in dashboard.daily(storage, window)}
    assert "odd" not in {row["ecosystem"] for row in dashboard.failing_recipes(storage, window)}
    assert "odd" not in {row["ecosystem"] for row in dashboard.ecosystems(storage, window)}


def test_app_from_env_takes_the_dashboards_settings_from_the_environment(tmp_path: Path, token: str) -> None:
    """`hypercorn 'batch_metrics.server:app_from_env()'` (several workers) cannot take serve's flags."""
    database = seeded_database(tmp_path / "metrics.db", datetime.now(UTC))
    port = unused_port()
    env = {**os.environ, "DATABASE_URL": database, TOKEN_ENV: token, "BATCH_METRICS_PUBLIC_READ": "1",
           "BATCH_METRICS_STALE_AFTER_HOURS": "6"}  # fmt: skip
    argv = [
        sys.executable,
        "-m",
        "hypercorn",
        "--bind",
        f"127.0.0.1:{port}",
        "batch_metrics.server:app_from_env()",
    ]
    with subprocess.Popen(
        argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    ) as process:
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, seconds=30, alive=lambda: process.poll() is None)
            answer = _get(f"{url}/api/dashboard")  # no token: reads are public
            assert answer.status_code == 200
            assert by_name(answer.json()["ecosystems"])["homebrew"]["stale_after_seconds"] == 6 * 3600
            assert (
                requests.post(f"{url}/batch-metrics", json=next(batches(NOW)), timeout=30).status_code == 401
            )
        finally:
            process.terminate()
            process.wait(timeout=30)


def test_metrics_speak_openmetrics_when_asked(storage: Storage, token: str) -> None:
    seed(storage, datetime.now(UTC))
    with running(storage, [token]) as url:
        answer = requests.get(
            f"{url}/metrics",
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/openmetrics-text; version=1.0.0",
            },
            timeout=30,
        )
    assert answer.headers["content-type"].startswith("application/openmetrics-text")
    assert answer.text.endswith("# EOF\n")
    assert 'batch_metrics_ecosystem_stale{ecosystem="npm"} 1.0' in answer.text


ROUNDS = 16


def test_batches_of_one_ecosystem_stored_at_once_never_deadlock(storage: Storage) -> None:
    """Both change every recipe's result, listing the recipes in opposite orders.

    Upserted in the order given, PostgreSQL found them deadlocked in about half the runs of 8 rounds.
    """
    names = [f"recipe-{number:03d}" for number in range(300)]
    failures: list[BaseException] = []

    def upload(order: list[str], worker: int) -> None:
        for number in range(ROUNDS):
            result = "failed" if (number + worker) % 2 else "passed"
            rows = [{"recipe_name": name, "ecosystem": "npm", "result": result, "platform": "linux"}
                    for name in order]  # fmt: skip
            payload = {"batch_id": f"{worker}-{number}", "ecosystem": "npm",
                       "started_at": "2026-11-29T01:00:00Z", "results": rows}  # fmt: skip
            try:
                storage.insert_batch(payload, None)  # type: ignore[arg-type]
            except Exception as error:  # any failure is the finding
                failures.append(error)

    threads = [threading.Thread(target=upload, args=(order, worker))
               for worker, order in enumerate((names, names[::-1]))]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    assert storage.query("SELECT count(*) AS n FROM batch_runs", []) == [{"n": 2 * ROUNDS}]
    assert storage.query("SELECT count(*) AS n FROM recipe_latest", []) == [{"n": 300}]
