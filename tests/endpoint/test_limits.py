"""One contract for sizes, numbers and times, kept alike on SQLite and PostgreSQL (issue 19, items 1-3, 5).

Values that each used to pass validation and then broke the store: the sums they made overflowed, the
roll-up keys outgrew PostgreSQL's 2,704-byte btree row, a time in year 9999 stayed the latest run. Each
is now refused with a 400 naming the field, and what lies at every limit is stored, rolled up and shown.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from batch_metrics.client.collect import collect
from batch_metrics.client.payload import build_payload, payload_bytes
from batch_metrics.models import (
    MAX_BATCH_ID,
    MAX_DURATION_SECONDS,
    MAX_ECOSYSTEM,
    MAX_ERROR_CATEGORY,
    MAX_ERROR_MESSAGE,
    MAX_MINUTES,
    MAX_PLATFORM,
    MAX_RECIPE_NAME,
    MAX_RESULT,
    rfc3339,
)
from tests.client.test_limits import junit_of_long_values
from tests.live import Live, Storage, batch, count_rows

pytest_plugins = ["tests.live"]


def hours_ago(hours: float) -> str:
    return rfc3339(datetime.now(UTC) - timedelta(hours=hours))


def wide(length: int, seed: int) -> str:
    """`length` characters of 4 bytes each in UTF-8 (CJK Extension B), in no order that compresses."""
    chosen = random.Random(seed)  # noqa: S311 - test data, reproducible
    return "".join(chr(chosen.randrange(0x20000, 0x2A6DF)) for _ in range(length))


def every_read_answers(live: Live) -> dict[str, Any]:
    """Every window of the dashboard, /metrics and /health answer 200; the 366-day summary."""
    for days in (7, 30, 90):
        assert live.get(f"/api/dashboard?days={days}").status_code == 200
    assert live.get("/metrics").status_code == 200
    health = requests.get(f"{live.url}/health", timeout=30)
    assert health.status_code == 200, health.text
    summary = live.get("/api/dashboard?days=366")
    assert summary.status_code == 200, summary.text
    body: dict[str, Any] = summary.json()
    return body


def test_two_results_of_1e308_seconds_are_refused_and_every_read_answers(live: Live, database: str) -> None:
    """Their sum overflowed: PostgreSQL's roll-up failed at every retry (a stuck queue); SQLite made inf."""
    body = batch(2, started_at=hours_ago(1))
    for row in body["results"]:
        row["duration_seconds"] = 1e308
    answer = live.post(body)
    limit = f"{MAX_DURATION_SECONDS:.0f}"
    assert (answer.status_code, answer.text) == (
        400, f"Bad request: results[0].duration_seconds: Input should be less than or equal to {limit}"
    )  # fmt: skip
    assert count_rows(database, "batch_runs") == 0
    every_read_answers(live)


def test_same_day_batches_of_1e308_minutes_are_refused_and_every_read_answers(live: Live) -> None:
    for number in range(2):
        answer = live.post(batch(1, batch_id=f"b{number}", started_at=hours_ago(1), macos_minutes=1e308))
        assert (answer.status_code, answer.text) == (
            400, f"Bad request: macos_minutes: Input should be less than or equal to {MAX_MINUTES:.0f}"
        )  # fmt: skip
    every_read_answers(live)


@pytest.mark.parametrize(
    ("where", "limit"),
    [
        ("batch_id", MAX_BATCH_ID),
        ("ecosystem", MAX_ECOSYSTEM),
        ("results[0].recipe_name", MAX_RECIPE_NAME),
        ("results[0].ecosystem", MAX_ECOSYSTEM),
        ("results[0].result", MAX_RESULT),
        ("results[0].error_category", MAX_ERROR_CATEGORY),
        ("results[0].error_message", MAX_ERROR_MESSAGE),
        ("results[0].platform", MAX_PLATFORM),
    ],
)
def test_a_text_over_its_limit_is_refused_naming_the_field(
    live: Live, database: str, where: str, limit: int
) -> None:
    """4,000 characters of a JUnit name, type or platform broke PostgreSQL's index rows (a 500 or a stuck
    queue) while SQLite stored them; both now answer the same 400."""
    body = batch(1, started_at=hours_ago(1))
    field = where.rsplit(".", 1)[-1]
    (body["results"][0] if where.startswith("results") else body)[field] = wide(limit + 1, seed=limit)
    answer = live.post(body)
    assert (answer.status_code, answer.text) == (
        400, f"Bad request: {where}: String should have at most {limit} characters"
    )  # fmt: skip
    assert count_rows(database, "batch_runs") == 0
    every_read_answers(live)


def test_every_text_at_its_limit_in_4_byte_characters_is_stored_and_on_the_dashboard(live: Live) -> None:
    """The widest roll-up keys there can be fit PostgreSQL's index rows: stored, rolled up, shown."""
    ecosystem, name, category, platform = (wide(limit, seed) for seed, limit in enumerate(
        (MAX_ECOSYSTEM, MAX_RECIPE_NAME, MAX_ERROR_CATEGORY, MAX_PLATFORM)))  # fmt: skip
    message = wide(MAX_ERROR_MESSAGE, seed=9)
    failed = {"recipe_name": name, "ecosystem": ecosystem, "result": "failed", "error_category": category,
              "error_message": message, "platform": platform,
              "duration_seconds": MAX_DURATION_SECONDS}  # fmt: skip
    odd = {**failed, "result": wide(MAX_RESULT, seed=10), "recipe_name": wide(MAX_RECIPE_NAME, seed=11)}
    body = batch(0, batch_id=wide(MAX_BATCH_ID, seed=12), ecosystem=ecosystem, started_at=hours_ago(1),
                 total_recipes=2, passed=0, failed=1, success_rate=0.0, results=[failed, odd])  # fmt: skip
    answer = live.post(body)
    assert answer.status_code == 201, answer.text
    run_id = answer.json()["batch_run_id"]
    summary = live.get("/api/dashboard", params={"ecosystem": ecosystem, "days": "7"}).json()
    assert [row["latest_run"]["id"] for row in summary["ecosystems"]] == [run_id]
    assert [(row["platform"], row["failed"]) for row in summary["platforms"]] == [(platform, 1)]
    assert [row["name"] for row in summary["failing_recipes"]] == [name]
    assert [row["name"] for row in summary["error_categories"]] == [category]
    failures = live.get(f"/api/dashboard/runs/{run_id}").json()["failures"]
    assert failures == [
        {"recipe_name": name, "platform": platform, "error_category": category, "error_message": message,
         "error_subcategory": None, "blocked_by": None, "stage": None}
    ]  # fmt: skip
    health = requests.get(f"{live.url}/health", timeout=30).json()
    assert (health["rollups_queued"], health["rollups_set_aside"]) == (0, 0)
    stored = live.get(f"/batch-runs/{run_id}").json()
    assert stored["batch_id"] == body["batch_id"] and {row["result"] for row in stored["results"]} == {
        "failed", odd["result"]
    }  # fmt: skip


def test_numbers_at_their_limits_add_up_to_finite_sums(live: Live) -> None:
    """Three batches of the same day, each with every minute and every duration at its largest."""
    started = hours_ago(1)
    for number in range(3):
        body = batch(50, batch_id=f"b{number}", started_at=started, macos_minutes=MAX_MINUTES,
                     linux_minutes=MAX_MINUTES)  # fmt: skip
        for row in body["results"]:
            row["duration_seconds"] = MAX_DURATION_SECONDS
        assert live.post(body).status_code == 201
    summary = every_read_answers(live)
    [day] = summary["daily"]
    assert (day["runs"], day["macos_minutes"], day["linux_minutes"]) == (3, 3 * MAX_MINUTES, 3 * MAX_MINUTES)
    [platform] = summary["platforms"]
    assert platform["minutes"] == round(3 * 50 * MAX_DURATION_SECONDS / 60, 2)


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("started_at", "9999-12-31T23:59:59Z", "9999-12-31T23:59:59Z is more than a day in the future"),
        ("started_at", "not a time", "'not a time' is not an RFC 3339 timestamp"),
        ("started_at", "2026-02-30T00:00:00Z", "'2026-02-30T00:00:00Z' is not an RFC 3339 timestamp"),
        ("started_at", "1999-12-31T23:59:59Z", "1999-12-31T23:59:59Z is before 2000-01-01T00:00:00Z"),
        ("completed_at", "in two days", "is more than a day in the future"),
    ],
)
def test_a_batch_time_outside_its_window_is_refused_naming_the_field(
    live: Live, database: str, field: str, value: str, why: str
) -> None:
    if value == "in two days":
        value = rfc3339(datetime.now(UTC) + timedelta(days=2))
    answer = live.post(batch(1, **{field: value}))
    assert answer.status_code == 400 and answer.text.startswith(f"Bad request: {field}: "), answer.text
    assert why in answer.text
    assert count_rows(database, "batch_runs") == 0


def test_a_clock_a_few_hours_ahead_is_tolerated(live: Live) -> None:
    ahead = rfc3339(datetime.now(UTC) + timedelta(hours=12))
    answer = live.post(batch(1, started_at=ahead, completed_at=ahead))
    assert answer.status_code == 201, answer.text
    [status] = every_read_answers(live)["ecosystems"]
    assert status["latest_run"]["started_at"] == ahead


def _samples(text: str) -> dict[tuple[str, str], float]:
    return {
        (sample.name, sample.labels.get("ecosystem", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_runs_stored_with_impossible_times_are_never_an_ecosystems_latest(
    storage: Storage, live: Live
) -> None:
    """A database filled before the endpoint checked times (the storage itself stores what it is given):
    a green run "in year 9999" stayed the latest forever, made runs_since_green 0 and /metrics say 2.5e11."""
    red = [hours_ago(30), hours_ago(2)]
    for number, started in enumerate(red):
        storage.insert_batch(batch(1, batch_id=f"red-{number}", started_at=started, passed=0, failed=1),  # type: ignore[arg-type]
                             None)  # fmt: skip
    for number, started in enumerate(("9999-12-31T00:00:00Z", "not a time")):
        storage.insert_batch(batch(1, batch_id=f"odd-{number}", started_at=started), None)  # type: ignore[arg-type]
    [status] = every_read_answers(live)["ecosystems"]
    assert (status["latest_run"]["started_at"], status["runs_since_green"], status["last_green_at"]) == (
        red[-1], 2, None
    )  # fmt: skip
    samples = _samples(live.get("/metrics").text)
    latest = datetime.fromisoformat(red[-1]).timestamp()
    assert samples["batch_metrics_last_batch_timestamp_seconds", "homebrew"] == latest
    assert samples["batch_metrics_runs_since_green", "homebrew"] == 2


def test_what_the_client_makes_of_4000_character_junit_values_is_stored_and_shown(
    live: Live, tmp_path: Path
) -> None:
    """The JUnit collector passed such values through unshortened: no hostile client was needed."""
    junit_of_long_values(tmp_path / "junit.xml")
    collected = collect("junit.xml", tmp_path, ecosystem="junit")
    payload = build_payload(collected, started_at=hours_ago(1))
    answer = live.post(payload_bytes(payload))
    assert answer.status_code == 201, answer.text
    summary = every_read_answers(live)
    assert {row["name"] for row in summary["failing_recipes"]} == {
        row["recipe_name"] for row in payload["results"]
    }
    assert [row["platform"] for row in summary["platforms"]] == [payload["results"][0]["platform"]]
