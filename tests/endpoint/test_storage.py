"""Storage on real databases: the same tests on a SQLite file and on a PostgreSQL server."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from batch_metrics.endpoint.app import migrate
from batch_metrics.endpoint.storage import MIGRATIONS, RunFilter, SQLiteStorage, open_storage
from batch_metrics.models import PAYLOAD_ADAPTER, BatchPayload
from tests.live import Storage, batch, count_rows, execute_directly, poison_results

pytest_plugins = ["tests.live"]

D1_SCHEMA = MIGRATIONS[0][1]
VERSIONS = [version for version, _ in MIGRATIONS]


def payload(count: int = 2, **fields: object) -> BatchPayload:
    return PAYLOAD_ADAPTER.validate_python(batch(count, **fields))


def test_migrate_creates_the_d1_schema_then_has_nothing_left_to_do(database: str) -> None:
    assert migrate(database) == VERSIONS
    assert migrate(database) == []
    opened = open_storage(database)
    try:
        assert opened.health().ok
        run_id, _ = opened.insert_batch(payload(1), None)
        stored = opened.get_run(run_id)
    finally:
        opened.close()
    assert stored is not None
    assert set(stored) == {
        "id", "batch_id", "ecosystem", "started_at", "completed_at", "total_recipes", "passed", "failed",
        "skipped", "success_rate", "macos_minutes", "linux_minutes", "received_at", "uploader", "run_url",
        "results", "next_cursor", "run_summary", "unlisted",
    }  # fmt: skip


def test_a_database_made_by_the_workers_d1_migration_is_adopted_with_its_rows(database: str) -> None:
    dialect = "postgresql" if database.startswith("postgresql") else "sqlite"
    types = {
        "sqlite": {"pk": "INTEGER PRIMARY KEY AUTOINCREMENT", "fk": "INTEGER", "real": "REAL"},
        "postgresql": {"pk": "SERIAL PRIMARY KEY", "fk": "INTEGER", "real": "REAL"},
    }[dialect]
    statements = [part for part in D1_SCHEMA.format(**types).split(";") if part.strip()]
    execute_directly(
        database,
        *statements,
        "INSERT INTO batch_runs (batch_id, ecosystem, started_at, total_recipes) "
        "VALUES ('from-d1', 'npm', '2026-01-01T00:00:00Z', 1)",
        "INSERT INTO recipe_results (batch_run_id, recipe_name, ecosystem, result) "
        "VALUES (1, 'x', 'npm', 'failed')",
    )
    assert migrate(database) == VERSIONS[1:]
    opened = open_storage(database)
    try:
        runs, _ = opened.list_runs(RunFilter())
        stored = opened.get_run(runs[0]["id"])
    finally:
        opened.close()
    assert stored is not None
    assert (stored["batch_id"], stored["received_at"]) == ("from-d1", None)
    assert [(r["recipe_name"], r["result"], r["platform"]) for r in stored["results"]] == [
        ("x", "failed", None)
    ]


def test_a_batch_is_stored_with_every_field(storage: Storage) -> None:
    sent = payload(
        2,
        results=[
            {"recipe_name": "a", "ecosystem": "npm", "result": "failed", "error_category": "network",
             "error_message": "timeout\nline 2", "duration_seconds": 3.5, "platform": "darwin-arm64"},
            {"recipe_name": "b", "ecosystem": "npm", "result": "passed"},
        ],
    )  # fmt: skip
    run_id, duplicate = storage.insert_batch(sent, "key-1")
    stored = storage.get_run(run_id)
    assert duplicate is False
    assert stored is not None
    expected_run = {key: value for key, value in sent.items() if key != "results"}
    assert {key: stored[key] for key in expected_run} == expected_run
    assert stored["received_at"].endswith("Z")
    unset = {"error_subcategory": None, "blocked_by": None, "attempts": None, "stage": None}
    assert [{key: value for key, value in row.items() if key != "id"} for row in stored["results"]] == [
        {"recipe_name": "a", "ecosystem": "npm", "result": "failed", "error_category": "network",
         "error_message": "timeout\nline 2", "duration_seconds": 3.5, "platform": "darwin-arm64", **unset},
        {"recipe_name": "b", "ecosystem": "npm", "result": "passed", "error_category": None,
         "error_message": None, "duration_seconds": 0.0, "platform": None, **unset},
    ]  # fmt: skip


def test_the_same_idempotency_key_returns_the_stored_run_and_writes_nothing(
    storage: Storage, database: str
) -> None:
    first, _ = storage.insert_batch(payload(3), "same-key")
    again, duplicate = storage.insert_batch(payload(5, batch_id="other"), "same-key")
    assert (again, duplicate) == (first, True)
    assert count_rows(database, "batch_runs") == 1
    assert count_rows(database, "recipe_results") == 3


def test_different_keys_or_no_key_store_separate_runs_of_one_batch(storage: Storage, database: str) -> None:
    ids = {
        storage.insert_batch(payload(1), "attempt-1")[0],
        storage.insert_batch(payload(1), "attempt-2")[0],
        storage.insert_batch(payload(1), None)[0],
        storage.insert_batch(payload(1), None)[0],
    }
    assert len(ids) == 4
    assert count_rows(database, "batch_runs") == 4


def test_racing_deliveries_of_one_key_store_one_run(database: str, storage: Storage) -> None:
    """Eight threads, each with its own storage object (own connections, own SQLite lock), one key."""
    storages = [open_storage(database) for _ in range(8)]
    results: list[tuple[int, bool]] = []
    barrier = threading.Barrier(len(storages))

    def deliver(own: Storage) -> None:
        barrier.wait()
        results.append(own.insert_batch(payload(50), "raced-key"))

    threads = [threading.Thread(target=deliver, args=(own,)) for own in storages]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for own in storages:
        own.close()
    assert len({run_id for run_id, _ in results}) == 1
    assert sorted(duplicate for _, duplicate in results) == [False] + [True] * 7
    assert count_rows(database, "recipe_results") == 50


def test_a_failing_result_row_leaves_no_run_behind(storage: Storage, database: str) -> None:
    storage.insert_batch(payload(2, batch_id="before"), None)
    poison_results(database)
    rows = batch(1000)["results"]
    rows[500]["recipe_name"] = "poison"
    with pytest.raises(Exception, match="poisoned row"):
        storage.insert_batch(payload(results=rows, batch_id="doomed"), "doomed-key")
    assert count_rows(database, "batch_runs") == 1
    assert count_rows(database, "recipe_results") == 2
    # The key was not kept either: a corrected re-delivery is a new run, and the storage still works.
    rows[500]["recipe_name"] = "fixed"
    run_id, duplicate = storage.insert_batch(payload(results=rows, batch_id="doomed"), "doomed-key")
    assert duplicate is False
    stored = storage.get_run(run_id)
    assert stored is not None
    assert len(stored["results"]) == 1000


def test_list_runs_filters_and_pages_newest_first(storage: Storage) -> None:
    made = [
        storage.insert_batch(
            payload(0, batch_id=f"b{n % 2}", ecosystem=eco, started_at=f"2026-03-0{n + 1}T00:00:00Z"), None
        )[0]
        for n, eco in enumerate(["npm", "npm", "cargo", "npm", "cargo"])
    ]
    everything, cursor = storage.list_runs(RunFilter())
    assert [run["id"] for run in everything] == made[::-1]
    assert cursor is None
    npm, _ = storage.list_runs(RunFilter(ecosystem="npm"))
    assert [run["id"] for run in npm] == [made[3], made[1], made[0]]
    b0, _ = storage.list_runs(RunFilter(batch_id="b0"))
    assert [run["id"] for run in b0] == [made[4], made[2], made[0]]
    window, _ = storage.list_runs(RunFilter(since="2026-03-02T00", until="2026-03-04T00"))
    assert [run["id"] for run in window] == [made[2], made[1]]
    pages: list[int] = []
    before: int | None = None
    while True:
        page, before = storage.list_runs(RunFilter(limit=2, before_id=before))
        pages += [run["id"] for run in page]
        if before is None:
            break
    assert pages == made[::-1]


def test_get_run_of_an_unknown_id_is_none(storage: Storage) -> None:
    assert storage.get_run(424242) is None


def test_a_database_that_cannot_be_opened_is_not_healthy(tmp_path: Path) -> None:
    missing = SQLiteStorage(str(tmp_path / "no" / "such" / "dir.db"))
    assert missing.health().ok is False
    migrated_elsewhere = SQLiteStorage(str(tmp_path / "never-migrated.db"))
    assert migrated_elsewhere.health().ok is False
