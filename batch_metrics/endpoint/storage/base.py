"""What both databases share: migrations, the atomic idempotent insert, the roll-up queue, the reads.

A batch is stored in one transaction (the run row and every result row, or nothing), and an
`Idempotency-Key` seen before returns the stored run instead of a new one (a UNIQUE index
decides, so two racing deliveries still store one run). The dialects (sqlite.py, postgres.py)
differ only in how a transaction is opened and how result rows are bulk-loaded.

The dashboard's roll-ups are not made in the upload's transaction, which only queues the
batch: a background thread adds queued batches to them soon after the commit, and any read of
them (`query`) first adds whatever is still queued, so the dashboard never shows less than
what is stored. A batch whose roll-up fails is set aside and the queue goes on (queue.py); a
read whose catch-up cannot write answers from what is rolled up. On SQLite that thread also
checkpoints the WAL, which would otherwise be copied back into the database file by whichever
commit crossed the threshold.

When the database cannot be written (a full disk, a deleted file, no answer: health.py), an
upload raises `Unavailable`, which the route answers with 503 or 507 for the client to retry.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from batch_metrics.endpoint.storage import queue
from batch_metrics.endpoint.storage.changes import Heads, compare_run, stored_changes
from batch_metrics.endpoint.storage.health import (
    CANNOT_WRITE,
    PROBE_SECONDS,
    PROBE_WRITE,
    UNREACHABLE,
    Checkup,
    HealthReport,
    ProbeBusy,
    Unavailable,
)
from batch_metrics.endpoint.storage.migrations import DIALECT_TYPES, MIGRATION_STEPS, MIGRATIONS
from batch_metrics.endpoint.storage.queue import Background as _Background
from batch_metrics.endpoint.storage.rollups import roll_up_run
from batch_metrics.endpoint.storage.statements import (
    BASIC_RESULT_COLUMNS,
    KEYED_RUN,
    RESULT_PAGE,
    RUN_INSERT,
    RUN_SELECT,
    UNLISTED_INSERT,
    UNLISTED_SELECT,
    RunFilter,
    filter_sql,
    result_columns,
    result_rows,
    run_values,
    stored_json,
)
from batch_metrics.endpoint.storage.uploaders import (
    UPLOADER_INSERT,
    Uploader,
    nest_uploader,
)
from batch_metrics.models import BatchPayload, rfc3339

# Advisory lock numbers (any constants): one migrator, one roll-up writer, one comparison, at a time.
_MIGRATION_LOCK = 727270
_ROLLUP_LOCK = 727271
_CHANGES_LOCK = 727272
_MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
)
RESULTS_PAGE = 1000  # the default and the largest page of `GET /batch-runs/{id}`
# After a read's catch-up could not write, reads answer from the roll-ups without trying for this long.
_CATCH_UP_PAUSE_SECONDS = 5.0


@dataclass(frozen=True)
class Stored:
    """An upload's run id, whether its key was stored before, and its changes (None: not compared)."""

    run_id: int
    duplicate: bool
    changes: list[dict[str, Any]] | None


log = logging.getLogger("batch_metrics.storage")


def _statements(script: str) -> list[str]:
    return [statement.strip() for statement in script.split(";") if statement.strip()]


def now() -> str:
    """This moment as stored in `received_at` and `applied_at`: RFC 3339 UTC, milliseconds."""
    return rfc3339(datetime.now(UTC), milliseconds=True)


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
    def _reader(self, wait: float | None = None) -> AbstractContextManager[Any]:
        """A connection for reading; `wait`: how long to wait for one, where the dialect waits at all."""

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

    @abstractmethod
    def _unavailable(self, error: Exception) -> str | None:
        """Why the database cannot store anything now, if `error` says so (health.py's reasons); else None."""

    @abstractmethod
    def _file_problem(self) -> str | None:
        """What is wrong with the database's files (deleted, disk full) if the dialect can tell."""

    @abstractmethod
    def _probing(self) -> AbstractContextManager[Any]:
        """A write transaction whose waits last health.PROBE_SECONDS at most (then ProbeBusy)."""

    def _start_background(self) -> None:
        """The roll-up thread (started on the first wake), the health probe and the reads' catch-up state."""
        self._background = _Background(self._catch_up)
        self._checkup = Checkup(self._probe)
        self._reads_catch_up_after = 0.0
        self._heads = Heads()  # the comparisons' last heads, by ecosystem (changes.py)

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
                    if version in MIGRATION_STEPS:
                        MIGRATION_STEPS[version](db, self.mark)
                    applied.append(version)
                db.execute(
                    self._sql("INSERT INTO schema_migrations VALUES ({mark}, {mark})"), (version, now())
                )
        return applied

    @contextmanager
    def _storing(self) -> Iterator[None]:
        """Driver errors that say the database cannot store anything now, as `Unavailable`."""
        try:
            yield
        except self.errors as error:
            reason = self._unavailable(error)
            if reason is None:
                raise
            raise Unavailable(reason) from error

    def insert_batch(
        self, payload: BatchPayload, key: str | None, who: Uploader | None = None
    ) -> tuple[int, bool]:
        """`store_batch`'s run id, and True when the key was already stored."""
        stored = self.store_batch(payload, key, who)
        return stored.run_id, stored.duplicate

    def store_batch(
        self, payload: BatchPayload, idempotency_key: str | None, uploader: Uploader | None = None,
        *, compare: bool = True,
    ) -> Stored:  # fmt: skip
        """Store the run, who sent it and its results together, compared with each of its ecosystems'
        previous run (changes.py); a key already stored answers that run and its comparison.
        `compare=False` only measures what the comparison costs (bench/ingest.py): the runs stored so
        are left out of every later comparison. Raises `Unavailable` when the database cannot store now.
        """
        try:
            stored = self._store(payload, idempotency_key, uploader, compare)
        except BaseException:
            self._heads.forget()  # rolled back with the batch: the heads it moved are not the database's
            raise
        self._background.wake()
        return stored

    def _store(self, payload: BatchPayload, key: str | None, who: Uploader | None, compare: bool) -> Stored:
        with self._storing(), self._transaction() as db:
            row = db.execute(self._sql(RUN_INSERT), run_values(payload, key, now())).fetchone()
            if row is None:
                existing = db.execute(self._sql(KEYED_RUN), (key,)).fetchone()
                run_id = int(existing[0])
                return Stored(run_id, True, stored_changes(db, self.mark, run_id) if compare else None)
            run_id = int(row[0])
            if who is not None:
                db.execute(self._sql(UPLOADER_INSERT), who.values(run_id, payload.get("run_url")))
            columns = result_columns(payload)
            if payload["results"]:
                self._insert_results(db, columns, result_rows(run_id, payload, columns))
            unlisted = payload.get("unlisted")
            if unlisted:
                db.cursor().executemany(self._sql(UNLISTED_INSERT), [
                    (run_id, entry["platform"], entry.get("ecosystem"), entry.get("passed") or 0,
                     entry.get("failed") or 0, entry.get("skipped") or 0)
                    for entry in unlisted
                ])  # fmt: skip
            changes = None
            if compare:
                self._exclusive(db, _CHANGES_LOCK)  # uploads take turns: each compares with the one before
                staged = columns != BASIC_RESULT_COLUMNS  # else no row names a stage
                changes = compare_run(
                    db, self.mark, run_id, payload["results"], staged=staged, heads=self._heads
                )
            self._queue_for_rollups(db, run_id)  # a batch of no rows has its counts to roll up too
        return Stored(run_id, False, changes)

    def roll_up(self) -> int:
        """Add every queued batch that is due to the dashboard's roll-ups, oldest first, each in its own
        transaction; a batch whose roll-up fails is set aside (queue.py) and the next one follows.

        The number of batches added. Runs by any number of threads and processes at once: the lock
        makes them take turns, and a batch is added exactly once because leaving the queue commits
        with its roll-ups. Once `close` has begun, no further batch is started: the rest stay queued.
        Raises the driver's error when the database cannot be written at all.
        """
        added = 0
        while not self._background.stopping and (outcome := self._roll_up_next()) is not None:
            added += outcome
        return added

    def _roll_up_next(self) -> bool | None:
        """Roll up the oldest due batch: True; False when it failed (set aside); None when none is due."""
        due = now()
        with self._reader() as db:  # the usual answer, "none", without waiting for the write lock
            if db.execute(self._sql(queue.ANY_DUE), (due,)).fetchone() is None:
                return None
        run_id: int | None = None
        try:
            with self._transaction() as db:
                self._exclusive(db, _ROLLUP_LOCK)
                queued = db.execute(self._sql(queue.NEXT_DUE), (due,)).fetchone()
                if queued is None:  # another thread or process added the last one meanwhile
                    return None
                run_id = int(queued[0])
                roll_up_run(db, self.mark, run_id, queued[1])
                db.execute(self._sql(queue.DONE), (run_id,))
        except Exception as error:
            if run_id is None or (isinstance(error, self.errors) and self._unavailable(error)):
                raise  # the database failed (no batch taken, a full disk...), not this batch
            self._set_aside(run_id, error)
            return False
        return True

    def _set_aside(self, run_id: int, error: Exception) -> None:
        """Count the failure and put the batch off; raises when even that cannot be written."""
        log.warning("the roll-up of batch run %d failed; set aside, retried later", run_id, exc_info=error)
        with self._transaction() as db:
            row = db.execute(self._sql(queue.ATTEMPTS), (run_id,)).fetchone()
            if row is None:  # another process added it meanwhile
                return
            attempts = int(row[0]) + 1
            retry = queue.retry_at(attempts, datetime.now(UTC))
            db.execute(self._sql(queue.SET_ASIDE), (attempts, retry, queue.short_error(error), run_id))

    def _catch_up_for_a_read(self) -> None:
        """Add what is queued before a read, unless that cannot write now: then the read answers from
        what is rolled up, and reads leave the queue to the background thread for a few seconds."""
        if time.monotonic() < self._reads_catch_up_after:
            return
        try:
            self.roll_up()
        except Exception:
            self._reads_catch_up_after = time.monotonic() + _CATCH_UP_PAUSE_SECONDS
            log.warning("reads answer without the batches still queued: the roll-ups cannot be written now",
                        exc_info=True)  # fmt: skip

    def _queue_for_rollups(self, db: Any, run_id: int) -> None:
        db.execute(self._sql("INSERT INTO rollup_queue (batch_run_id) VALUES ({mark})"), (run_id,))

    def list_runs(self, query: RunFilter) -> tuple[list[dict[str, Any]], int | None]:
        """Up to `limit` runs, newest first, and the cursor of the next page (None on the last)."""
        where, params = filter_sql(query, self.mark)
        with self._reader() as db:
            runs = _dicts(db.execute(f"{RUN_SELECT}{where} ORDER BY id DESC LIMIT {self.mark}",
                                     (*params, query.limit + 1)))  # fmt: skip
        runs = [nest_uploader(run) for run in runs]
        if len(runs) > query.limit:
            return runs[: query.limit], int(runs[query.limit - 1]["id"])
        return runs, None

    def query(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        """The rows of one read statement written with `{mark}` placeholders (the dashboard's queries).

        Batches still queued are added to the roll-ups first: a batch is on the dashboard as soon as
        its upload is answered.
        """
        self._catch_up_for_a_read()
        with self._reader() as db:
            return _dicts(db.execute(self._sql(sql), params))

    def get_run(self, run_id: int, *, after: int = 0, limit: int = RESULTS_PAGE) -> dict[str, Any] | None:
        """The run and up to `limit` of its results with ids above `after`, in the order they were stored;
        `next_cursor` is the `after` of the next page (None on the last)."""
        with self._reader() as db:
            runs = _dicts(db.execute(self._sql(f"{RUN_SELECT} WHERE id = {{mark}}"), (run_id,)))
            if not runs:
                return None
            run = nest_uploader(runs[0])
            results = _dicts(db.execute(self._sql(RESULT_PAGE), (run_id, after, limit + 1)))
            summary = db.execute(self._sql("SELECT run_summary FROM batch_runs WHERE id = {mark}"), (run_id,))
            run["run_summary"] = stored_json(summary.fetchone()[0])
            run["unlisted"] = _dicts(db.execute(self._sql(UNLISTED_SELECT), (run_id,)))
        more = len(results) > limit
        run["results"] = results[:limit]
        run["next_cursor"] = str(results[limit - 1]["id"]) if more else None
        for result in run["results"]:
            result["blocked_by"] = stored_json(result["blocked_by"])
        return run

    def backlog(self, wait: float | None = None) -> tuple[int, int]:
        """Stored batches not yet in the roll-ups, and how many of them are set aside after failing."""
        with self._reader(wait) as db:
            queued, set_aside = db.execute(queue.BACKLOG).fetchone()
        return int(queued), int(set_aside)

    def health(self) -> HealthReport:
        """Whether the database can be written now (a write probe, bounded in time); the roll-up backlog."""
        return self._checkup.report()

    def _probe(self, latest: HealthReport) -> HealthReport:
        try:
            reason = self._write_probe()
        except ProbeBusy:  # every writer's turn or connection is taken: the last verdict stands
            return latest
        report = HealthReport(reason)
        if reason != UNREACHABLE:
            try:
                report = HealthReport(reason, *self.backlog(PROBE_SECONDS))
            except self.errors as error:
                report = HealthReport(reason or self._why_not(error))
        if report.reason != latest.reason:
            log.warning("GET /health: %s", report.reason or "the database can be written again")
        return report

    def _write_probe(self) -> str | None:
        """None when the files are in place and one row could be written and committed; else why not."""
        try:
            reason = self._file_problem()
            if reason is None:
                with self._probing() as db:
                    db.execute(self._sql(PROBE_WRITE), (now(),))
        except ProbeBusy:
            raise
        except Exception as error:
            return self._why_not(error)
        return reason

    def _why_not(self, error: Exception) -> str:
        reason = self._unavailable(error) if isinstance(error, self.errors) else None
        log.debug("GET /health: %s", reason or CANNOT_WRITE, exc_info=error)
        return reason or CANNOT_WRITE
