"""What changed since an ecosystem's previous run: worked out by the upload, answered in its 201, stored for
a re-delivery and the dashboard, on SQLite and PostgreSQL, whatever the roll-ups are doing."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from batch_metrics.endpoint.storage import (
    MIGRATIONS,
    RESULT_COLUMNS,
    RUN_COLUMNS,
    is_postgres_url,
    open_storage,
)
from batch_metrics.endpoint.storage import base as storage_module
from batch_metrics.models import BatchCreated
from tests.answers_history import NIGHTS, batches
from tests.live import Live, Storage, execute_directly

pytest_plugins = ["tests.live"]

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def row(recipe: str, platform: str, result: str, ecosystem: str = "homebrew", **extra: Any) -> dict[str, Any]:
    return {"recipe_name": recipe, "ecosystem": ecosystem, "result": result, "platform": platform, **extra}


def payload(number: int, rows: list[dict[str, Any]], ecosystem: str = "homebrew") -> dict[str, Any]:
    started = (NOW - timedelta(days=30 - number)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"batch_id": f"b{number}", "ecosystem": ecosystem, "started_at": started, "results": rows}


def pairs(entries: list[dict[str, Any]], *fields: str) -> list[tuple[Any, ...]]:
    return [(entry["recipe_name"], entry["platform"], *(entry[name] for name in fields)) for entry in entries]


def refuse_inserts(database: str, table: str) -> None:
    """A trigger (named `refuse`) that makes every insert into `table` fail with 'no'."""
    if is_postgres_url(database):
        execute_directly(
            database,
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql"
            " AS $$ BEGIN RAISE EXCEPTION 'no'; END $$",
            f"CREATE TRIGGER refuse BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION refuse()",
        )
    else:
        execute_directly(
            database, f"CREATE TRIGGER refuse BEFORE INSERT ON {table} BEGIN SELECT RAISE(ABORT, 'no'); END"
        )


def test_the_upload_answers_what_broke_what_was_fixed_and_what_still_fails(live: Live) -> None:
    first = live.post(payload(1, [
        row("git", "linux", "passed"), row("git", "musl-arm64", "passed"),
        row("bat", "darwin", "failed", error_category="checksum"),
        row("zstd", "musl-arm64", "failed"), row("zstd", "glibc", "passed"), row("old", "linux", "passed"),
    ]))  # fmt: skip
    assert first.status_code == 201
    [nothing] = first.json()["changes"]
    assert (nothing["ecosystem"], nothing["previous_run_id"]) == ("homebrew", None)  # the first run
    assert set(nothing["counts"].values()) == {0}
    second = live.post(payload(2, [
        row("git", "linux", "passed"), row("git", "musl-arm64", "failed", error_category="install_failed",
                                           error_subcategory="verify_failed"),
        row("bat", "darwin", "passed"), row("zstd", "musl-arm64", "failed"), row("zstd", "glibc", "passed"),
        row("new", "linux", "failed"),
    ]))  # fmt: skip
    assert second.status_code == 201
    answer = second.json()
    BatchCreated.model_validate(answer)  # the wire contract's shape, which the client reads
    [changes] = answer["changes"]
    assert changes["previous_run_id"] == first.json()["batch_run_id"]
    assert changes["counts"] == {"new_failures": 2, "fixed": 1, "still_failing": 1, "new_recipes": 1,
                                 "gone_recipes": 1}  # fmt: skip
    assert pairs(changes["new_failures"], "error_category", "error_subcategory", "new_recipe") == [
        ("git", "musl-arm64", "install_failed", "verify_failed", False),  # the regression
        ("new", "linux", None, None, True),
    ]
    assert pairs(changes["fixed"], "failed_runs") == [("bat", "darwin", 1)]
    assert pairs(changes["still_failing"], "failed_runs", "since_run_id") == [
        ("zstd", "musl-arm64", 2, first.json()["batch_run_id"])
    ]
    assert (changes["new_recipes"], changes["gone_recipes"]) == (["new"], ["old"])
    assert [(entry["platform"], entry["new_failures"], entry["fixed"], entry["still_failing"])
            for entry in changes["platforms"]] == [
        ("darwin", 0, 1, 0), ("linux", 1, 0, 0), ("musl-arm64", 1, 0, 1),
    ]  # fmt: skip
    # A re-delivery answers the same comparison, and compares nothing again.
    key = {"Idempotency-Key": "k3"}
    third = live.post(payload(3, [row("git", "linux", "passed")]), headers=key)
    repeated = live.post(payload(3, [row("git", "linux", "passed")]), headers=key)
    assert repeated.status_code == 200 and repeated.json() == {**third.json(), "duplicate": True}
    left = third.json()["changes"][0]  # failures not run again are not fixed: their recipes are gone
    assert (left["counts"]["fixed"], left["gone_recipes"]) == (0, ["bat", "new", "zstd"])
    empty = live.post(payload(4, []))
    assert empty.status_code == 201 and empty.json()["changes"] == []  # nothing validated: nothing compared


def test_the_upload_answer_stays_small_whatever_the_batch_and_the_client_reads_it(live: Live) -> None:
    """800 failures in each of 3 ecosystems, failing again: the 201 lists 1,000 of each kind over all of
    them, the counts stay whole, and the client still reads its run id and changes from it."""
    from batch_metrics.client.upload import upload

    def failing(number: int) -> dict[str, Any]:
        rows = [row(f"r{index:03d}", "linux", "failed", ecosystem) for ecosystem in ("a", "b", "c")
                for index in range(800)]  # fmt: skip
        return payload(number, rows, "mixed")

    live.post(failing(1))
    answer = live.post(failing(2)).json()
    assert [entry["counts"]["still_failing"] for entry in answer["changes"]] == [800, 800, 800]
    assert [len(entry["still_failing"]) for entry in answer["changes"]] == [800, 200, 0]
    assert [len(entry["platforms"]) for entry in answer["changes"]] == [1, 1, 1]
    run = live.get(f"/api/dashboard/runs/{answer['batch_run_id']}/changes").json()
    assert [len(entry["still_failing"]) for entry in run["ecosystems"]] == [800, 800, 800]  # as stored
    sent = upload(json.dumps(failing(3)).encode(), endpoint=live.url, token=live.token, retries=0)
    assert sent.batch_run_id == answer["batch_run_id"] + 1
    assert sent.changes is not None
    assert [entry["counts"]["still_failing"] for entry in sent.changes] == [800, 800, 800]


def test_a_failure_counts_its_runs_and_only_a_pass_fixes_it(storage: Storage) -> None:
    def store(number: int, result: str | None) -> dict[str, Any]:
        rows = [row("git", "linux", "passed")] + ([row("zstd", "musl", result)] if result else [])
        stored = storage.store_batch(payload(number, rows), None)  # type: ignore[arg-type]
        assert stored.changes is not None
        return stored.changes[0]

    store(1, "failed")
    assert pairs(store(2, "failed")["still_failing"], "failed_runs") == [("zstd", "musl", 2)]
    assert pairs(store(3, "failed")["still_failing"], "failed_runs") == [("zstd", "musl", 3)]
    skipped = store(4, "skipped")  # not run: neither fixed nor still failing, and the count starts again
    assert (skipped["fixed"], skipped["still_failing"], skipped["new_failures"]) == ([], [], [])
    assert pairs(store(5, "failed")["new_failures"], "new_recipe") == [("zstd", "musl", False)]
    store(6, "failed")
    assert pairs(store(7, "passed")["fixed"], "failed_runs") == [("zstd", "musl", 2)]
    gone = store(8, None)
    assert (gone["gone_recipes"], gone["fixed"]) == (["zstd"], [])


def test_each_ecosystem_is_compared_with_its_own_previous_run_and_generation_does_not_count(
    storage: Storage,
) -> None:
    storage.insert_batch(payload(1, [row("a", "linux", "passed", "npm"), row("b", "linux", "passed", "pypi")],
                                 "mixed"), None)  # type: ignore[arg-type]  # fmt: skip
    storage.insert_batch(payload(2, [row("a", "linux", "failed", "npm")], "npm"), None)  # type: ignore[arg-type]
    stored = storage.store_batch(payload(3, [
        row("a", "linux", "failed", "npm"), row("b", "linux", "failed", "pypi"),
        row("gen", "linux-glibc-x86_64", "failed", "pypi", stage="generation"),
    ], "mixed"), None)  # type: ignore[arg-type]  # fmt: skip
    assert stored.changes is not None
    npm, pypi = stored.changes
    assert (npm["ecosystem"], npm["previous_run_id"], npm["counts"]["still_failing"]) == ("npm", 2, 1)
    assert (pypi["ecosystem"], pypi["previous_run_id"]) == ("pypi", 1)  # npm's batch 2 had no pypi
    assert pairs(pypi["new_failures"], "new_recipe") == [("b", "linux", False)]  # not the generation failure
    assert pypi["new_recipes"] == []


def test_the_comparison_needs_no_rollup_even_when_every_rollup_fails(database: str, storage: Storage) -> None:
    """The previous run's roll-up set aside (a trigger makes every roll-up fail): the answer is unchanged."""
    refuse_inserts(database, "run_platforms")
    storage.insert_batch(payload(1, [row("a", "linux", "failed")]), None)  # type: ignore[arg-type]
    storage.roll_up()
    assert storage.backlog() == (1, 1)  # stored, its roll-up set aside
    stored = storage.store_batch(payload(2, [row("a", "linux", "passed")]), None)  # type: ignore[arg-type]
    assert stored.changes is not None and pairs(stored.changes[0]["fixed"], "failed_runs") == [
        ("a", "linux", 1)
    ]


def test_concurrent_uploads_of_one_ecosystem_compare_in_turn(database: str, storage: Storage) -> None:
    """Eight uploads at once: each compares with exactly the one stored before it, in one chain."""
    stored: dict[int, Any] = {}

    def upload(number: int) -> None:
        opened = open_storage(database)
        try:
            stored[number] = opened.store_batch(payload(number, [row(f"r{number}", "linux", "failed")]), None)  # type: ignore[arg-type]
        finally:
            opened.close()

    threads = [threading.Thread(target=upload, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    number_of = {answer.run_id: number for number, answer in stored.items()}
    previous = {number: answer.changes[0]["previous_run_id"] for number, answer in stored.items()}
    assert sorted(previous.values(), key=str).count(None) == 1
    assert len(set(previous.values())) == 8  # no two compared with the same run
    for number, answer in stored.items():
        changes = answer.changes[0]
        if previous[number] is not None:  # its one recipe replaced the previous run's
            assert changes["new_recipes"] == [f"r{number}"]
            assert changes["gone_recipes"] == [f"r{number_of[previous[number]]}"]


def send(storage: Any, number: int, rows: list[dict[str, Any]]) -> Any:
    """Store batch `number` of `rows`: what became of it (base.Stored)."""
    return storage.store_batch(payload(number, rows), None)


def test_an_upload_rolled_back_after_its_comparison_leaves_the_next_one_comparing_with_the_stored_run(
    database: str, storage: Storage
) -> None:
    """The queue refuses run 2 after it was compared: run 3 (which SQLite may give run 2's id) compares
    with run 1, as the database holds it, not with the run this process compared and lost."""
    first = send(storage, 1, [row("a", "linux", "failed")])
    refuse_inserts(database, "rollup_queue")
    with pytest.raises(Exception, match="no"):
        send(storage, 2, [row("a", "linux", "passed"), row("b", "linux", "failed")])
    execute_directly(
        database, "DROP TRIGGER refuse" + (" ON rollup_queue" if is_postgres_url(database) else "")
    )
    third = send(storage, 3, [row("a", "linux", "failed"), row("c", "linux", "passed")])
    assert third.changes is not None
    changes = third.changes[0]
    assert changes["previous_run_id"] == first.run_id
    assert pairs(changes["still_failing"], "failed_runs") == [("a", "linux", 2)]
    assert (changes["new_recipes"], changes["new_failures"], changes["fixed"]) == (["c"], [], [])


def test_a_run_stored_by_another_process_is_the_previous_run_of_the_next_upload(
    database: str, storage: Storage
) -> None:
    """This process compared run 1, another stored run 2: run 3 compares with run 2, as stored."""
    send(storage, 1, [row("a", "linux", "failed"), row("b", "linux", "passed")])
    other = open_storage(database)
    try:
        second = send(other, 2, [row("a", "linux", "passed"), row("b", "linux", "failed")])
    finally:
        other.close()
    third = send(storage, 3, [row("a", "linux", "passed"), row("b", "linux", "passed")])
    assert third.changes is not None
    changes = third.changes[0]
    assert changes["previous_run_id"] == second.run_id
    assert pairs(changes["fixed"], "failed_runs") == [("b", "linux", 1)]  # not a, which run 2 fixed
    assert (changes["still_failing"], changes["new_failures"], changes["gone_recipes"]) == ([], [], [])


def _store_as_before_migration_9(database: str, payloads: list[dict[str, Any]]) -> None:
    """Batches as the code before migration 9 stored them: every column, no comparison."""
    runs = f"INSERT INTO batch_runs ({', '.join(RUN_COLUMNS)}) VALUES ({{}}) RETURNING id"  # noqa: S608
    results = f"INSERT INTO recipe_results ({', '.join(RESULT_COLUMNS)}) VALUES ({{}})"  # noqa: S608
    mark = "%s" if database.startswith("postgresql") else "?"
    statements = []
    for sent in payloads:
        values = [sent.get(column) or (0 if column not in ("batch_id", "ecosystem", "started_at") else None)
                  for column in RUN_COLUMNS]  # fmt: skip
        statements.append((values, [
            (r["recipe_name"], r["ecosystem"], r["result"], r.get("error_category"), r.get("error_message"),
             r.get("duration_seconds", 0.0), r.get("platform"), r.get("error_subcategory"),
             json.dumps(r["blocked_by"]) if r.get("blocked_by") else None, r.get("attempts"), r.get("stage"))
            for r in sent["results"]
        ]))  # fmt: skip
    if database.startswith("postgresql"):
        import psycopg

        with psycopg.connect(database) as db:
            for values, rows in statements:
                found = db.execute(runs.format(", ".join([mark] * len(values))).encode(), values).fetchone()
                assert found is not None
                db.cursor().executemany(results.format(", ".join([mark] * 12)).encode(),
                                        [(found[0], *entry) for entry in rows])  # fmt: skip
        return
    import sqlite3

    with sqlite3.connect(database) as db:
        for values, rows in statements:
            (run_id,) = db.execute(runs.format(", ".join([mark] * len(values))), values).fetchone()
            db.executemany(results.format(", ".join([mark] * 12)), [(run_id, *entry) for entry in rows])


def test_an_upgraded_database_compares_the_next_upload_with_the_runs_stored_before_it(
    database: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migration 9 makes each ecosystem's head from the stored batches: the next upload's answer is the one a
    database that compared every batch gives, failures' run counts included."""
    *earlier, homebrew_last, pypi_last = batches(NOW)
    reference = open_storage(str(tmp_path / "reference.db"))
    try:
        reference.migrate()
        for sent in earlier:
            reference.insert_batch(sent, None)  # type: ignore[arg-type]
        expected = [reference.store_batch(sent, None).changes for sent in (homebrew_last, pypi_last)]  # type: ignore[arg-type]
    finally:
        reference.close()
    with monkeypatch.context() as before:
        before.setattr(storage_module, "MIGRATIONS", MIGRATIONS[:8])
        old = open_storage(database)
        assert old.migrate() == list(range(1, 9))
        old.close()
    _store_as_before_migration_9(database, earlier)
    upgraded = open_storage(database)
    try:
        assert upgraded.migrate() == [9]
        found = [upgraded.store_batch(sent, None).changes for sent in (homebrew_last, pypi_last)]  # type: ignore[arg-type]
    finally:
        upgraded.close()
    assert found == expected
    [homebrew] = found[0] or []
    assert pairs(homebrew["still_failing"], "failed_runs") == [("zstd", "linux-alpine-musl-arm64", NIGHTS)]
