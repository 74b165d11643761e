"""The answers to a pipeline owner's questions, on tests/answers_history.py's seeded history (every figure
known in advance), on SQLite and PostgreSQL: queries, routes over real HTTP, shapes, and `/metrics`."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from batch_metrics.endpoint.answers import changes, flaky, matrix, metrics, reasons, speed
from batch_metrics.endpoint.answers.answer_shapes import (
    Flaky,
    LatestChanges,
    Reasons,
    RunChangesAnswer,
    RunMatrix,
    RunReasons,
    Speed,
    WindowMatrix,
)
from batch_metrics.endpoint.answers.dashboard import Window
from batch_metrics.endpoint.answers.targets import targets_from
from batch_metrics.endpoint.storage.answer_rollups import MIGRATION
from tests.answers_history import BUDGET, LONG_LOG, MUSL_LOG, NIGHTS, RUN_URL, batches, seed
from tests.live import Live, Storage, execute_directly, running

pytest_plugins = ["tests.live"]

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
WINDOW = Window(days=30, now=NOW)
MUSL = "linux-alpine-musl-arm64"
PLATFORMS = ["darwin-arm64", MUSL, "linux-alpine-musl-x86_64", "linux-debian-glibc-arm64",
             "linux-debian-glibc-x86_64"]  # fmt: skip


@pytest.fixture
def seeded(storage: Storage) -> Storage:
    seed(storage, NOW)
    return storage


def by(rows: list[dict[str, Any]], *keys: str) -> dict[Any, dict[str, Any]]:
    return {tuple(row[key] for key in keys) if len(keys) > 1 else row[keys[0]]: row for row in rows}


def test_the_latest_changes_name_the_regression_the_fixes_and_what_still_fails(seeded: Storage) -> None:
    homebrew, pypi = changes.latest_changes(seeded, WINDOW)
    assert (homebrew["ecosystem"], homebrew["started_at"]) == ("homebrew", "2026-11-29T01:00:00Z")
    assert homebrew["previous_started_at"] == "2026-11-28T01:00:00Z"
    assert homebrew["counts"] == {"new_failures": 2, "fixed": 2, "still_failing": 1, "new_recipes": 1,
                                  "gone_recipes": 1}  # fmt: skip
    new = homebrew["new_failures"]
    assert [(entry["recipe_name"], entry["platform"], entry["new_recipe"]) for entry in new] == [
        ("new-tool", "darwin-arm64", True), ("ripgrep", "linux-debian-glibc-x86_64", False),
    ]  # fmt: skip
    assert [(entry["recipe_name"], entry["failed_runs"]) for entry in homebrew["fixed"]] == [
        ("bat", NIGHTS - 1), ("flaky-net", 1),
    ]  # fmt: skip
    [still] = homebrew["still_failing"]
    assert (still["recipe_name"], still["platform"], still["failed_runs"]) == ("zstd", MUSL, NIGHTS)
    assert (homebrew["new_recipes"], homebrew["gone_recipes"]) == (["new-tool"], ["old-tool"])
    assert (pypi["ecosystem"], pypi["counts"]["still_failing"], pypi["still_failing"][0]["failed_runs"]) == (
        "pypi", 1, 5,
    )  # fmt: skip
    only = changes.latest_changes(seeded, Window(days=7, ecosystem="pypi", now=NOW))
    assert [entry["ecosystem"] for entry in only] == ["pypi"]
    assert changes.run_changes(seeded, homebrew["run_id"]) == [homebrew]  # all its lists: short enough here


def test_the_matrix_shows_a_failure_only_on_musl_arm64(seeded: Storage) -> None:
    found = matrix.window_matrix(seeded, WINDOW)
    assert found["platforms"] == PLATFORMS
    zstd = by(found["recipes"], "recipe_name")["zstd"]
    assert (zstd["failing_runs"], zstd["failed_on"], zstd["platform_only_runs"]) == (NIGHTS, [MUSL], NIGHTS)
    assert zstd["passed_on"] == [name for name in PLATFORMS if name != MUSL]  # passes on glibc (and the rest)
    assert by(zstd["cells"], "platform")[MUSL] == {
        "platform": MUSL,
        "failed": NIGHTS,
        "passed": 0,
        "skipped": 0,
    }
    assert [entry["recipe_name"] for entry in found["recipes"]] == [
        "zstd",
        "bat",
        "flaky-net",
        "numpy",
        "new-tool",
        "ripgrep",
    ]  # by failures, then ecosystem and name
    assert [entry["recipe_name"] for entry in found["platform_only"]][:2] == ["zstd", "bat"]
    last = changes.latest_changes(seeded, WINDOW)[0]["run_id"]
    run = matrix.run_matrix(seeded, last)
    assert (run["platforms"], run["truncated"]) == (PLATFORMS, False)
    cells = {entry["recipe_name"]: {cell["platform"]: cell["result"] for cell in entry["cells"]}
             for entry in run["recipes"]}  # fmt: skip
    assert set(cells) == {"new-tool", "ripgrep", "zstd"}
    assert cells["ripgrep"] == {name: "failed" if name == "linux-debian-glibc-x86_64" else "passed"
                                for name in PLATFORMS}  # fmt: skip
    assert all(entry["platform_only"] for entry in run["recipes"])


def test_failure_reasons_group_by_subcategory_with_an_example_and_its_ci_run(seeded: Storage) -> None:
    found = reasons.failure_reasons(seeded, WINDOW)
    groups = by(found, "error_category", "error_subcategory")
    musl = groups["install_failed", "musl_link"]
    assert (musl["failures"], musl["runs"], musl["first_seen_at"]) == (NIGHTS, NIGHTS, "2026-11-16T01:00:00Z")
    assert musl["last_seen_at"] == "2026-11-29T01:00:00Z"
    assert musl["example"] == {
        "recipe_name": "zstd", "platform": MUSL, "stage": None, "message_head": MUSL_LOG, "message_tail": "",
        "run_url": RUN_URL.format(night=1000 + NIGHTS - 1),
    }  # fmt: skip
    verify = groups["install_failed", "verify_failed"]
    assert (verify["failures"], verify["first_seen_at"]) == (1, "2026-11-29T01:00:00Z")
    assert verify["example"]["message_head"] == LONG_LOG[:240]
    assert verify["example"]["message_tail"] == LONG_LOG[-240:]  # the log's end: why it failed
    assert [(group["error_category"], group["failures"]) for group in found][:3] == [
        ("install_failed", NIGHTS), ("checksum", NIGHTS - 1), ("network_error", 7),
    ]  # fmt: skip
    last = changes.latest_changes(seeded, WINDOW)[0]["run_id"]
    in_run = reasons.run_reasons(seeded, last)
    assert {(group["error_category"], group["error_subcategory"]) for group in in_run} == {
        ("install_failed", "verify_failed"), ("install_failed", "musl_link"), ("new_failed", ""),
    }  # fmt: skip


def test_the_slowest_recipes_durations_and_minutes_against_the_budget(seeded: Storage) -> None:
    slow = by(speed.slowest(seeded, WINDOW), "ecosystem", "platform")
    darwin = slow["homebrew", "darwin-arm64"]["recipes"]
    assert (darwin[0]["recipe_name"], darwin[0]["mean_seconds"], darwin[0]["runs"]) == (
        "llvm",
        1500.0,
        NIGHTS,
    )
    assert slow["homebrew", MUSL]["recipes"][0]["mean_seconds"] == 900.0
    days = speed.durations(seeded, Window(days=7, ecosystem="homebrew", now=NOW))
    assert {day["line"] for day in days} == set(PLATFORMS)
    darwin_last = by([day for day in days if day["day"] == "2026-11-29"], "line")["darwin-arm64"]
    assert darwin_last["results"] == 8 and darwin_last["mean_seconds"] == round((1500 + 7 * 30) / 8, 2)
    minutes = speed.minutes(seeded, WINDOW, targets_from(BUDGET, None))
    assert minutes["days"] == 7
    systems = by(minutes["systems"], "os")
    # The last 7 days (from 11-23 12:00): 6 nights x 40 macOS minutes (homebrew) + 5 x 2 (pypi); budget 200.
    assert systems["macos"] == {"os": "macos", "minutes": 250.0, "budget": 200.0, "over": True}
    assert systems["linux"] == {"os": "linux", "minutes": 370.0, "budget": 5000.0, "over": False}
    assert by(minutes["ecosystems"], "ecosystem")["homebrew"]["macos_minutes"] == 240.0
    assert speed.minutes(seeded, WINDOW, targets_from(None, None))["systems"][0]["budget"] is None


def test_flaky_by_each_definition_apart(seeded: Storage) -> None:
    [across] = flaky.across_runs(seeded, WINDOW)
    assert (across["recipe_name"], across["flips"], across["platform_names"]) == (
        "flaky-net", NIGHTS - 1, ["linux-debian-glibc-arm64"],
    )  # fmt: skip
    [within] = flaky.within_run(seeded, WINDOW)
    assert (within["recipe_name"], within["retried_passes"], within["most_attempts"]) == ("retry-me", 4, 3)
    rates = by(flaky.rates(seeded, WINDOW), "ecosystem")
    assert rates["homebrew"]["validations"] == NIGHTS * 40
    assert rates["homebrew"]["passed_after_retries"] == 4 and rates["pypi"]["flake_rate"] == 0.0


def test_flaky_across_runs_resets_after_a_stable_stretch(storage: Storage) -> None:
    """Changes before the result held for RESET_RUNS runs no longer count; stable now is not flaky."""
    start = NOW - timedelta(days=40)

    def night(number: int, result: str) -> None:
        started = (start + timedelta(days=number)).strftime("%Y-%m-%dT%H:%M:%SZ")
        rows = [{"recipe_name": "wobbly", "ecosystem": "brew", "result": result, "platform": "linux"}]
        storage.insert_batch({"batch_id": f"n{number}", "ecosystem": "brew", "started_at": started,
                              "results": rows}, None)  # type: ignore[arg-type]  # fmt: skip

    results = ["passed", "failed"] * 3 + ["passed"] * flaky.RESET_RUNS + ["failed", "passed"]
    for number, result in enumerate(results):
        night(number, result)
    window = Window(days=60, now=NOW)
    [found] = flaky.across_runs(storage, window)
    assert found["flips"] == 2  # the last two; the five before the stable stretch reset
    for number in range(flaky.RESET_RUNS):
        night(len(results) + number, "passed")
    assert flaky.across_runs(storage, window) == []  # stable again for RESET_RUNS runs: no longer flaky


@pytest.fixture
def live_answers(storage: Storage) -> Iterator[Live]:
    """The endpoint over the history up to last night, with the budget and targets it is served with."""
    seed(storage, datetime.now(UTC))
    token = secrets.token_urlsafe(24)
    with running(storage, [token], targets=targets_from(BUDGET, "0.9,pypi=0.95")) as url:
        yield Live(url, token, storage)


def test_every_answer_over_http_keeps_to_its_shape(live_answers: Live) -> None:
    last = changes.latest_changes(live_answers.storage, Window())[0]["run_id"]
    days = 30
    for path, shape in (
        (f"/api/dashboard/changes?days={days}", LatestChanges),
        (f"/api/dashboard/matrix?days={days}", WindowMatrix),
        (f"/api/dashboard/reasons?days={days}", Reasons), (f"/api/dashboard/speed?days={days}", Speed),
        (f"/api/dashboard/flaky?days={days}&ecosystem=homebrew", Flaky),
        (f"/api/dashboard/runs/{last}/changes", RunChangesAnswer),
        (f"/api/dashboard/runs/{last}/matrix", RunMatrix),
        (f"/api/dashboard/runs/{last}/reasons", RunReasons),
    ):  # fmt: skip
        answer = live_answers.get(path)
        assert answer.status_code == 200, (path, answer.text)
        assert answer.headers["Cache-Control"] == "no-store"
        shape.model_validate(answer.json())
    assert live_answers.get("/api/dashboard/runs/999999/matrix").status_code == 404
    assert live_answers.get(f"/api/dashboard/runs/{2**63}/changes").status_code == 404
    assert live_answers.get("/api/dashboard/matrix?days=0").status_code == 400
    assert live_answers.get("/api/dashboard/flaky?window=3").status_code == 400  # a misspelt parameter
    assert live_answers.get("/api/dashboard/speed", headers={}).status_code == 401


def test_metrics_export_what_the_alerts_compare_with_bounded_labels(seeded: Storage) -> None:
    body, _ = metrics.exposition(seeded, None, None, targets_from(BUDGET, "0.9,pypi=0.95"))
    families = {family.name: family for family in text_string_to_metric_families(body.decode())}
    values = {
        (family.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families.values()
        for sample in family.samples
    }
    assert values["batch_metrics_last_batch_new_failures", (("ecosystem", "homebrew"),)] == 2
    assert values["batch_metrics_last_batch_fixed", (("ecosystem", "homebrew"),)] == 2
    assert values["batch_metrics_success_rate_target", (("ecosystem", "pypi"),)] == 0.95
    assert values["batch_metrics_success_rate_target", (("ecosystem", "homebrew"),)] == 0.9
    assert values["batch_metrics_runner_weekly_budget_seconds", (("os", "macos"),)] == 200 * 60
    # Every label is an ecosystem, an operating system, a result or a definition: never a recipe.
    labels = {name for family in families.values() for sample in family.samples for name in sample.labels}
    assert labels <= {"ecosystem", "os", "result", "definition"}


def test_metrics_count_the_last_7_days_minutes_and_flaky_recipes(storage: Storage) -> None:
    now = datetime.now(UTC)
    seed(storage, now)  # the history up to last night
    since = Window(days=7, now=now).since
    nights = sum(sent["ecosystem"] == "homebrew" and sent["started_at"] >= since for sent in batches(now))
    body, _ = metrics.exposition(storage, None, None, targets_from(BUDGET, None))
    values = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }
    spent = "batch_metrics_runner_time_7d_seconds"  # minutes x 60: Prometheus' base unit
    assert values[spent, (("ecosystem", "homebrew"), ("os", "macos"))] == nights * 40 * 60
    assert values[spent, (("ecosystem", "pypi"), ("os", "linux"))] == 5 * 2 * 60
    budget = "batch_metrics_runner_weekly_budget_seconds"
    assert (values[budget, (("os", "linux"),)], values[budget, (("os", "macos"),)]) == (5000 * 60, 200 * 60)
    assert (
        values["batch_metrics_flaky_recipes", (("definition", "across_runs"), ("ecosystem", "homebrew"))] == 1
    )
    assert (
        values["batch_metrics_flaky_recipes", (("definition", "within_run"), ("ecosystem", "homebrew"))] == 1
    )


def test_the_migration_fills_these_rollups_as_the_upload_path_does(database: str, storage: Storage) -> None:
    """Emptied, then refilled by migration 9's own statements: the same rows as each run's roll-up made."""
    seed(storage, NOW)
    tables = {  # each table, in a stable order
        "run_failure_cells": "batch_run_id, ecosystem, recipe_name, platform",
        "run_failure_spread": "batch_run_id, ecosystem, recipe_name",
        "run_failure_reasons": "batch_run_id, ecosystem, error_category, error_subcategory",
        "run_slowest": "batch_run_id, ecosystem, platform, recipe_name",
        "run_retried": "batch_run_id, ecosystem, recipe_name, platform",
    }

    def read(table: str) -> list[dict[str, Any]]:
        return storage.query(f"SELECT * FROM {table} ORDER BY {tables[table]}", [])  # noqa: S608

    made = {table: read(table) for table in tables}
    flips = storage.query("SELECT * FROM recipe_flips ORDER BY batch_run_id, recipe_name, platform", [])
    latest = storage.query("SELECT * FROM recipe_latest ORDER BY ecosystem, recipe_name, platform", [])
    fills = [statement for statement in MIGRATION.split(";\n") if statement.startswith(("INSERT", "UPDATE"))]
    assert len(fills) == 7
    execute_directly(
        database, *(f"DELETE FROM {table}" for table in tables),  # noqa: S608
        "UPDATE recipe_flips SET stable_runs = NULL", "UPDATE recipe_latest SET since_run_id = NULL", *fills,
    )  # fmt: skip
    for table in tables:
        assert read(table) == made[table], table
    assert (
        storage.query("SELECT * FROM recipe_flips ORDER BY batch_run_id, recipe_name, platform", []) == flips
    )
    # A result that never changed began, as far as the migration can tell, in its ecosystem's first run:
    # only new-tool, first seen last night, is off (it cannot be flaky: it never changed).
    for pair in latest:
        if pair["recipe_name"] == "new-tool":
            pair["since_run_id"] = 1
    assert (
        storage.query("SELECT * FROM recipe_latest ORDER BY ecosystem, recipe_name, platform", []) == latest
    )
