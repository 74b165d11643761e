"""A roll-up that fails never blocks the others (issue 19, item 1): the batch is set aside, kept stored,
counted on /health and /metrics, and retried later; reads answer from what is rolled up.

The failures are real: a trigger that refuses one platform's roll-up row, and on PostgreSQL a batch
stored before the limits whose platform outgrows the btree row of the roll-up's key.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from batch_metrics.endpoint.storage import base as storage_module
from batch_metrics.endpoint.storage import is_postgres_url
from batch_metrics.models import rfc3339
from tests.endpoint.test_limits import every_read_answers, hours_ago, wide
from tests.live import Live, Storage, batch, execute_directly

pytest_plugins = ["tests.live"]

_TRAP_SQLITE = (
    "CREATE TRIGGER refuse BEFORE INSERT ON run_platforms WHEN NEW.platform = 'poison'"
    " BEGIN SELECT RAISE(ABORT, 'roll-up refused'); END"
)
_TRAP_POSTGRES = (
    "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "IF NEW.platform = 'poison' THEN RAISE EXCEPTION 'roll-up refused'; END IF; RETURN NEW; END $$",
    "CREATE TRIGGER refuse BEFORE INSERT ON run_platforms FOR EACH ROW EXECUTE FUNCTION refuse()",
)


def _set_trap(database: str) -> None:
    if is_postgres_url(database):
        execute_directly(database, *_TRAP_POSTGRES)
    else:
        execute_directly(database, _TRAP_SQLITE)


def _health(live: Live, **expected: Any) -> dict[str, Any]:
    """/health once it says `expected` (it probes at most once a second)."""
    deadline = time.monotonic() + 10
    while True:
        body: dict[str, Any] = requests.get(f"{live.url}/health", timeout=30).json()
        if all(body.get(key) == value for key, value in expected.items()) or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


def _backlog_metrics(live: Live) -> tuple[float, float]:
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(live.get("/metrics").text)
        for sample in family.samples
    }
    return samples["batch_metrics_rollups_queued"], samples["batch_metrics_rollups_set_aside"]


def _platforms(summary: dict[str, Any]) -> set[str]:
    return {row["platform"] for row in summary["platforms"]}


def test_a_batch_whose_rollup_fails_is_set_aside_and_the_dashboard_goes_on(
    live: Live, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _set_trap(database)
    poisoned = batch(2, batch_id="poisoned", started_at=hours_ago(2))
    for row in poisoned["results"]:
        row["platform"] = "poison"
    assert live.post(poisoned).status_code == 201
    after = batch(2, batch_id="after", ecosystem="npm", started_at=hours_ago(1))
    for row in after["results"]:
        row["ecosystem"] = "npm"
    assert live.post(after).status_code == 201

    summary = every_read_answers(live)
    assert _platforms(summary) == {"linux-alpine-musl-arm64"}  # the batch after it is on the dashboard
    # The set-aside batch is stored (the backlog below counts it) but not yet rolled up: not shown.
    assert {row["ecosystem"] for row in summary["ecosystems"]} == {"npm"}
    health = _health(live, rollups_set_aside=1)
    assert (health["status"], health["rollups_queued"], health["rollups_set_aside"]) == ("ok", 1, 1)
    assert _backlog_metrics(live) == (1, 1)
    assert live.get("/api/dashboard").status_code == 200  # not retried at every read: still set aside
    assert _backlog_metrics(live) == (1, 1)

    # The cause is fixed, and its retry time comes: the batch joins the roll-ups, once.
    execute_directly(database, "DROP TRIGGER refuse ON run_platforms" if is_postgres_url(database) else
                     "DROP TRIGGER refuse")  # fmt: skip
    later = datetime.now(UTC) + timedelta(minutes=2)
    monkeypatch.setattr(storage_module, "now", lambda: rfc3339(later, milliseconds=True))
    summary = every_read_answers(live)
    assert _platforms(summary) == {"poison", "linux-alpine-musl-arm64"}
    assert {row["ecosystem"] for row in summary["ecosystems"]} == {"homebrew", "npm"}
    assert _backlog_metrics(live) == (0, 0)
    assert _health(live, rollups_set_aside=0)["rollups_queued"] == 0
    platform_rows = live.storage.query(
        "SELECT platform, count(*) AS n FROM run_platforms GROUP BY platform", []
    )
    assert sorted((row["platform"], row["n"]) for row in platform_rows) == [
        ("linux-alpine-musl-arm64", 1), ("poison", 1)
    ]  # fmt: skip


def test_a_batch_stored_before_the_limits_cannot_hold_up_the_batches_after_it(
    storage: Storage, live: Live, database: str
) -> None:
    """Its 3,000-character platform is 12 KB in UTF-8: PostgreSQL cannot index it in the roll-up's key."""
    old = batch(1, batch_id="old", started_at=hours_ago(3))
    old["results"][0]["platform"] = wide(3000, seed=1)
    storage.insert_batch(old, None)  # type: ignore[arg-type]  # what an older endpoint stored
    assert live.post(batch(1, batch_id="new", ecosystem="npm", started_at=hours_ago(1))).status_code == 201
    summary = every_read_answers(live)
    assert "linux-alpine-musl-arm64" in _platforms(summary)
    expected = (1, 1) if is_postgres_url(database) else (0, 0)  # SQLite has no limit on a key's size
    assert _backlog_metrics(live) == expected
    if is_postgres_url(database):
        [reason] = [row["last_error"] for row in storage.query("SELECT last_error FROM rollup_queue", [])]
        assert "index row" in reason
