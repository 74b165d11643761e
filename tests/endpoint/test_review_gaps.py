"""Behaviours a design review's mutation spot-check found no test for: each is stated in the docs, and
each of these tests fails when its rule is changed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from batch_metrics.endpoint.answers import dashboard
from batch_metrics.endpoint.answers.dashboard import MIN_GAP_SECONDS, STALE_FACTOR, Window
from batch_metrics.models import rfc3339
from tests.live import Live, Storage, batch

pytest_plugins = ["tests.live"]

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def store_runs(storage: Storage, starts: list[datetime]) -> None:
    for number, start in enumerate(starts):
        storage.insert_batch(batch(1, batch_id=f"run-{number}", started_at=rfc3339(start)), None)  # type: ignore[arg-type]


def staleness(storage: Storage, now: datetime) -> tuple[bool, float | None]:
    [status] = dashboard.ecosystems(storage, Window(days=30, now=now))
    return status["stale"], status["stale_after_seconds"]


def test_uploads_minutes_apart_do_not_make_an_ecosystem_stale_within_the_hour(storage: Storage) -> None:
    """Several uploads of one nightly, a minute apart: the usual interval is at least an hour."""
    last = NOW - timedelta(minutes=30)
    store_runs(storage, [last - timedelta(minutes=minutes) for minutes in (4, 3, 2, 1, 0)])
    assert staleness(storage, NOW) == (False, STALE_FACTOR * MIN_GAP_SECONDS)
    later = last + timedelta(seconds=STALE_FACTOR * MIN_GAP_SECONDS + 60)
    assert staleness(storage, later) == (True, STALE_FACTOR * MIN_GAP_SECONDS)


def test_a_blank_idempotency_key_is_no_key(live: Live) -> None:
    """Absent or empty (HTTP strips the blanks around a value): each delivery is stored anew."""
    answers = [
        live.post(batch(1), headers={"Idempotency-Key": key} if key is not None else None)
        for key in (None, "", None, "")
    ]
    assert [answer.status_code for answer in answers] == [201, 201, 201, 201]
    assert len({answer.json()["batch_run_id"] for answer in answers}) == 4
    assert all("duplicate" not in answer.json() for answer in answers)


@pytest.mark.parametrize("key", ["k", "k\t"])
def test_a_key_is_compared_without_its_surrounding_blanks(live: Live, key: str) -> None:
    first = live.post(batch(1), headers={"Idempotency-Key": "k"}).json()
    again = live.post(batch(1), headers={"Idempotency-Key": key}).json()
    assert again == {**first, "duplicate": True}
