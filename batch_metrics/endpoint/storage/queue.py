"""The roll-up queue: stored batches waiting to join the dashboard's roll-ups, and the thread that adds them.

A batch leaves the queue in the transaction that adds it to the roll-ups, so it is added exactly
once whoever races for it. A batch whose roll-up fails is **set aside**: it stays stored and queued,
its failed attempts are counted, and it is not tried again before `retry_at` (a minute after the
first failure, doubling up to an hour), so the batches behind it go on joining the roll-ups and
one bad batch never holds up the dashboard. Migration 6 adds the columns that say so.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from batch_metrics.models import rfc3339

log = logging.getLogger("batch_metrics.storage")

SET_ASIDE_MIGRATION = (
    "ALTER TABLE rollup_queue ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;\n"
    "ALTER TABLE rollup_queue ADD COLUMN retry_at TEXT;\n"
    "ALTER TABLE rollup_queue ADD COLUMN last_error TEXT;\n"
)
FIRST_RETRY = timedelta(minutes=1)
LAST_RETRY = timedelta(hours=1)
# A batch is due unless set aside until later; `retry_at` and the parameter are RFC 3339 UTC text.
_DUE = "(retry_at IS NULL OR retry_at <= {mark})"
ANY_DUE = f"SELECT 1 FROM rollup_queue WHERE {_DUE} LIMIT 1"
NEXT_DUE = (
    "SELECT q.batch_run_id, r.ecosystem FROM rollup_queue q JOIN batch_runs r ON r.id = q.batch_run_id"
    f" WHERE {_DUE.replace('retry_at', 'q.retry_at')} ORDER BY q.batch_run_id LIMIT 1"
)
ATTEMPTS = "SELECT attempts FROM rollup_queue WHERE batch_run_id = {mark}"
SET_ASIDE = (
    "UPDATE rollup_queue SET attempts = {mark}, retry_at = {mark}, last_error = {mark}"
    " WHERE batch_run_id = {mark}"
)
DONE = "DELETE FROM rollup_queue WHERE batch_run_id = {mark}"
BACKLOG = (
    "SELECT count(*) AS queued, coalesce(sum(CASE WHEN attempts > 0 THEN 1 ELSE 0 END), 0) AS set_aside"
    " FROM rollup_queue"
)


def retry_at(attempts: int, now: datetime) -> str:
    """When a batch that has failed `attempts` times is tried again: a minute, doubling, at most an hour."""
    wait = min(FIRST_RETRY * 2 ** min(attempts - 1, 16), LAST_RETRY)
    return rfc3339(now + wait, milliseconds=True)


def short_error(error: BaseException) -> str:
    """What a failed roll-up is recorded with (the server's log has the traceback)."""
    return f"{type(error).__name__}: {error}"[:500]


class Background:
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
            except Exception:  # the database cannot be written now: the next wake, or a read, tries again
                log.exception("bringing the dashboard's roll-ups up to date failed")
