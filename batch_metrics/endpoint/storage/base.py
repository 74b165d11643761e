"""What both databases share: migrations, the atomic idempotent insert, the roll-up queue, the reads.

A batch is stored in one transaction (the run row and every result row, or nothing), and an
`Idempotency-Key` seen before returns the stored run instead of a new one (a UNIQUE index
decides, so two racing deliveries still store one run). The dialects (sqlite.py, postgres.py)
differ only in how a transaction is opened and how result rows are bulk-loaded.

The dashboard's roll-ups are not made in the upload's transaction, which only queues the
batch: a background thread adds queued batches to them soon after the commit, and any read of
them (`query`) first adds whatever is still queued, so the dashboard never shows less than
what is stored. On SQLite that thread also checkpoints the WAL, which would otherwise be
copied back into the database file by whichever commit crossed the threshold.
"""

from __future__ import annotations

import json
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from batch_metrics.endpoint.storage.migrations import DIALECT_TYPES, MIGRATIONS
from batch_metrics.endpoint.storage.rollups import roll_up_run
from batch_metrics.models import BatchPayload, rfc3339

RUN_COLUMNS = (
    "batch_id", "ecosystem", "started_at", "completed_at", "total_recipes", "passed", "failed", "skipped",
    "success_rate", "macos_minutes", "linux_minutes",
)  # fmt: skip
RESULT_COLUMNS = (
    "batch_run_id", "recipe_name", "ecosystem", "result", "error_category", "error_message",
    "duration_seconds", "platform", "error_subcategory", "blocked_by", "attempts", "stage",
)  # fmt: skip
# The Worker's columns and `platform`: all that a batch whose rows carry nothing more fills.
BASIC_RESULT_COLUMNS = RESULT_COLUMNS[:8]
_EXTENSIONS = frozenset(RESULT_COLUMNS[8:])
_UNLISTED_COLUMNS = ("batch_run_id", "platform", "ecosystem", "passed", "failed", "skipped")
# Advisory lock numbers (any constants): one migrator, and one roll-up writer, at a time.
_MIGRATION_LOCK = 727270
_ROLLUP_LOCK = 727271
_MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
)
_RUN_INSERT = (
    f"INSERT INTO batch_runs ({', '.join(RUN_COLUMNS)}, idempotency_key, received_at, run_summary) "
    f"VALUES ({', '.join(['{mark}'] * (len(RUN_COLUMNS) + 3))}) "
    "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id"
)
_UNLISTED_INSERT = (
    f"INSERT INTO run_unlisted ({', '.join(_UNLISTED_COLUMNS)}) "
    f"VALUES ({', '.join(['{mark}'] * len(_UNLISTED_COLUMNS))})"
)
_RUN_SELECT = f"SELECT id, {', '.join(RUN_COLUMNS)}, received_at FROM batch_runs"
_NEXT_QUEUED = (
    "SELECT q.batch_run_id, r.ecosystem FROM rollup_queue q JOIN batch_runs r ON r.id = q.batch_run_id"
    " ORDER BY q.batch_run_id LIMIT 1"
)
_UNLISTED_SELECT = (
    "SELECT platform, ecosystem, passed, failed, skipped FROM run_unlisted WHERE batch_run_id = {mark}"
    " ORDER BY platform, ecosystem"
)
_RESULT_SELECT = (
    f"SELECT id, {', '.join(RESULT_COLUMNS[1:])} FROM recipe_results "
    "WHERE batch_run_id = {mark} ORDER BY id"
)


@dataclass(frozen=True)
class RunFilter:
    """Filters of `GET /batch-runs`; `since`/`until` compare with `started_at` as RFC 3339 text."""

    batch_id: str | None = None
    ecosystem: str | None = None
    since: str | None = None
    until: str | None = None
    before_id: int | None = None
    limit: int = 50


log = logging.getLogger("batch_metrics.storage")


class _Background:
    """A daemon thread that runs `work` soon after any `wake()`; wakes while it works run it once more."""

    def __init__(self, work: Callable[[], object]) -> None:
        self._work = work
        self._wanted = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._starting = threading.Lock()

    def wake(self) -> None:
        with self._starting:
            if self._stopping:
                return
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="batch-metrics-rollups", daemon=True)
                self._thread.start()
        self._wanted.set()

    @property
    def stopping(self) -> bool:
        return self._stopping

    def stop(self) -> None:
        """Wait for the work in progress, which checks `stopping` between its transactions."""
        with self._starting:
            self._stopping = True
            thread = self._thread
        self._wanted.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _loop(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            if self._stopping:
                return
            try:
                self._work()
            except Exception:  # the work is retried on the next wake; reads catch up meanwhile
                log.exception("bringing the dashboard's roll-ups up to date failed")


def _statements(script: str) -> list[str]:
    return [statement.strip() for statement in script.split(";") if statement.strip()]


def now() -> str:
    """This moment as stored in `received_at` and `applied_at`: RFC 3339 UTC, milliseconds."""
    return rfc3339(datetime.now(UTC), milliseconds=True)


def _run_values(payload: BatchPayload, idempotency_key: str | None) -> tuple[Any, ...]:
    """Run columns in order; a number left out or null is stored as 0, as the Worker does."""
    numbers = (payload.get(key) or 0 for key in RUN_COLUMNS[4:])  # total_recipes .. linux_minutes
    summary = payload.get("run_summary")
    return (
        payload["batch_id"], payload["ecosystem"], payload["started_at"], payload.get("completed_at"),
        *numbers, idempotency_key, now(), None if summary is None else json.dumps(summary),
    )  # fmt: skip


def result_columns(payload: BatchPayload) -> tuple[str, ...]:
    """The columns the batch's rows fill: the basic ones unless a row carries a field migration 7
    added (one pass at C speed; a batch without them writes no column of NULLs)."""
    return BASIC_RESULT_COLUMNS if all(map(_EXTENSIONS.isdisjoint, payload["results"])) else RESULT_COLUMNS


def result_rows(run_id: int, payload: BatchPayload, columns: tuple[str, ...]) -> Iterator[tuple[Any, ...]]:
    """Rows in `columns` order (`result_columns`), made as the driver takes them (never all at once in
    memory); `blocked_by` as a JSON array."""
    if columns == BASIC_RESULT_COLUMNS:
        return (
            (run_id, r["recipe_name"], r["ecosystem"], r["result"], r.get("error_category"),
             r.get("error_message"), r.get("duration_seconds") or 0.0, r.get("platform"))
            for r in payload["results"]
        )  # fmt: skip
    return (
        (run_id, r["recipe_name"], r["ecosystem"], r["result"], r.get("error_category"),
         r.get("error_message"), r.get("duration_seconds") or 0.0, r.get("platform"),
         r.get("error_subcategory"), json.dumps(blocked) if (blocked := r.get("blocked_by")) else None,
         r.get("attempts"), r.get("stage"))
        for r in payload["results"]
    )  # fmt: skip


def _filter_sql(query: RunFilter, mark: str) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column, operator, value in (
        ("batch_id", "=", query.batch_id),
        ("ecosystem", "=", query.ecosystem),
        ("started_at", ">=", query.since),
        ("started_at", "<", query.until),
        ("id", "<", query.before_id),
    ):
        if value is not None:
            clauses.append(f"{column} {operator} {mark}")
            params.append(value)
    return (f" WHERE {' AND '.join(clauses)}" if clauses else ""), params


def stored_json(text: str | None) -> Any:
    """A JSON column as stored by this endpoint (a summary, a list of names), or None."""
    return None if text is None else json.loads(text)


def _dicts(cursor: Any) -> list[dict[str, Any]]:
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


class SQLStorage(ABC):
    """What both dialects share: migrations, the idempotent insert, and the read queries."""

    dialect: ClassVar[str]
    mark: ClassVar[str]  # the driver's placeholder
    writers: int  # how many batches the server should insert at once
    errors: tuple[type[Exception], ...]  # what the driver raises when the database is unusable
    _background: _Background

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[Any]:
        """A connection inside a write transaction: committed on exit, rolled back on an exception."""

    @abstractmethod
    def _reader(self) -> AbstractContextManager[Any]:
        """A connection for reading."""

    @abstractmethod
    def _insert_results(self, db: Any, columns: tuple[str, ...], rows: Iterator[tuple[Any, ...]]) -> None:
        """Bulk-load result rows (values of `columns`) inside the open transaction."""

    @abstractmethod
    def _has_table(self, db: Any, name: str) -> bool: ...

    @abstractmethod
    def close(self) -> None:
        """Release every connection."""

    @abstractmethod
    def _exclusive(self, db: Any, lock: int) -> None:
        """Hold `lock` until the transaction ends, against every other process and thread."""

    @abstractmethod
    def _checkpoint(self) -> None:
        """Whatever the database does after writes that an upload should not wait for."""

    def _start_background(self) -> None:
        self._background = _Background(self._catch_up)

    def _catch_up(self) -> None:
        self.roll_up()
        self._checkpoint()

    def _sql(self, template: str) -> str:
        return template.format(mark=self.mark)

    def migrate(self) -> list[int]:
        """Apply the migrations this database lacks, in one transaction; their numbers."""
        applied: list[int] = []
        with self._transaction() as db:
            self._exclusive(db, _MIGRATION_LOCK)
            db.execute(_MIGRATIONS_TABLE)
            done = {row[0] for row in db.execute("SELECT version FROM schema_migrations").fetchall()}
            # Tables made by the Worker's own D1 migration (an imported export) are adopted as migration 1.
            adopt_d1 = not done and self._has_table(db, "batch_runs")
            for version, script in MIGRATIONS:
                if version in done:
                    continue
                if not (adopt_d1 and version == 1):
                    for statement in _statements(script.format(**DIALECT_TYPES[self.dialect])):
                        db.execute(statement)
                    applied.append(version)
                db.execute(
                    self._sql("INSERT INTO schema_migrations VALUES ({mark}, {mark})"), (version, now())
                )
        return applied

    def insert_batch(self, payload: BatchPayload, idempotency_key: str | None) -> tuple[int, bool]:
        """Store the run and its results together; (run id, True) when the key was already stored."""
        with self._transaction() as db:
            row = db.execute(self._sql(_RUN_INSERT), _run_values(payload, idempotency_key)).fetchone()
            if row is None:
                existing = db.execute(
                    self._sql("SELECT id FROM batch_runs WHERE idempotency_key = {mark}"), (idempotency_key,)
                ).fetchone()
                return int(existing[0]), True
            run_id = int(row[0])
            if payload["results"]:
                columns = result_columns(payload)
                self._insert_results(db, columns, result_rows(run_id, payload, columns))
            unlisted = payload.get("unlisted")
            if unlisted:
                db.cursor().executemany(self._sql(_UNLISTED_INSERT), [
                    (run_id, entry["platform"], entry.get("ecosystem"), entry.get("passed") or 0,
                     entry.get("failed") or 0, entry.get("skipped") or 0)
                    for entry in unlisted
                ])  # fmt: skip
            self._queue_for_rollups(db, run_id)  # a batch of no rows has its counts to roll up too
        self._background.wake()
        return run_id, False

    def roll_up(self) -> int:
        """Add every queued batch to the dashboard's roll-ups, oldest first, each in its own transaction.

        The number of batches added. Runs by any number of threads and processes at once: the lock
        makes them take turns, and a batch is added exactly once because leaving the queue commits
        with its roll-ups. Once `close` has begun, no further batch is started: the rest stay queued.
        """
        added = 0
        while not self._background.stopping and self._roll_up_next():
            added += 1
        return added

    def _roll_up_next(self) -> bool:
        """Add the oldest queued batch to the roll-ups; False when none is queued."""
        with self._reader() as db:  # the usual answer, "none", without waiting for the write lock
            if db.execute("SELECT 1 FROM rollup_queue LIMIT 1").fetchone() is None:
                return False
        with self._transaction() as db:
            self._exclusive(db, _ROLLUP_LOCK)
            queued = db.execute(_NEXT_QUEUED).fetchone()
            if queued is None:  # another thread or process added the last one meanwhile
                return False
            run_id = int(queued[0])
            roll_up_run(db, self.mark, run_id, queued[1])
            db.execute(self._sql("DELETE FROM rollup_queue WHERE batch_run_id = {mark}"), (run_id,))
        return True

    def _queue_for_rollups(self, db: Any, run_id: int) -> None:
        db.execute(self._sql("INSERT INTO rollup_queue (batch_run_id) VALUES ({mark})"), (run_id,))

    def list_runs(self, query: RunFilter) -> tuple[list[dict[str, Any]], int | None]:
        """Up to `limit` runs, newest first, and the cursor of the next page (None on the last)."""
        where, params = _filter_sql(query, self.mark)
        with self._reader() as db:
            runs = _dicts(db.execute(f"{_RUN_SELECT}{where} ORDER BY id DESC LIMIT {self.mark}",
                                     (*params, query.limit + 1)))  # fmt: skip
        if len(runs) > query.limit:
            return runs[: query.limit], int(runs[query.limit - 1]["id"])
        return runs, None

    def query(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        """The rows of one read statement written with `{mark}` placeholders (the dashboard's queries).

        Batches still queued are added to the roll-ups first: a batch is on the dashboard as soon as
        its upload is answered.
        """
        self.roll_up()
        with self._reader() as db:
            return _dicts(db.execute(self._sql(sql), params))

    def get_run(self, run_id: int) -> dict[str, Any] | None:
        with self._reader() as db:
            runs = _dicts(db.execute(self._sql(f"{_RUN_SELECT} WHERE id = {{mark}}"), (run_id,)))
            if not runs:
                return None
            run = runs[0]
            run["results"] = _dicts(db.execute(self._sql(_RESULT_SELECT), (run_id,)))
            summary = db.execute(self._sql("SELECT run_summary FROM batch_runs WHERE id = {mark}"), (run_id,))
            run["run_summary"] = stored_json(summary.fetchone()[0])
            run["unlisted"] = _dicts(db.execute(self._sql(_UNLISTED_SELECT), (run_id,)))
        for result in run["results"]:
            result["blocked_by"] = stored_json(result["blocked_by"])
        return run

    def healthy(self) -> bool:
        """The database answers and has been migrated."""
        try:
            with self._reader() as db:
                db.execute("SELECT max(version) FROM schema_migrations").fetchone()
        except self.errors:
            return False
        return True
