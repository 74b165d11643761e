"""Whether the database can be written now: what `GET /health` says, and why an upload is answered 503 or 507.

`/health` writes to find out (one row of `health_probe`, migration 6), within `PROBE_SECONDS`, at
most once every `PROBE_INTERVAL` however often it is asked: a database that answers reads but
cannot store a batch (a full disk, a read-only file, the file deleted under the server) is not
healthy. Reasons are fixed sentences, safe to show to anyone: the driver's own words (paths, hosts)
go to the server's log only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PROBE_SECONDS = 2.0
PROBE_INTERVAL = 1.0
# Below this much free space on SQLite's disk the next batch will not fit: said before an upload fails.
MIN_FREE_BYTES = 1024 * 1024
PROBE_TABLE = "CREATE TABLE health_probe (id INTEGER PRIMARY KEY, written_at TEXT NOT NULL)"
PROBE_WRITE = (
    "INSERT INTO health_probe (id, written_at) VALUES (1, {mark})"
    " ON CONFLICT (id) DO UPDATE SET written_at = excluded.written_at"
)

DISK_FULL = "the disk holding the database is full"
READ_ONLY = "the database is read-only"
GONE = "the database file was deleted or replaced while the server runs: restore it, or restart the server"
UNREACHABLE = "the database does not answer"
IO_ERROR = "the database's disk reports I/O errors"
LOCKED = "the database stayed locked by another process"
CANNOT_WRITE = "the database cannot be written (the server's log says why)"


class Unavailable(Exception):
    """The database cannot store anything now: an upload is answered 503 (507 for a full disk) and retried."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    @property
    def status(self) -> int:
        return 507 if self.reason == DISK_FULL else 503


class ProbeBusy(Exception):
    """The write probe could not take the write lock in time: another writer is at work (no verdict)."""


@dataclass(frozen=True)
class HealthReport:
    reason: str | None = None
    queued: int | None = None
    set_aside: int | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None

    def answer(self) -> dict[str, Any]:
        """The body of `GET /health` (models.Health)."""
        body: dict[str, Any] = {"status": "ok" if self.ok else "unavailable"}
        if self.reason:
            body["reason"] = self.reason
        if self.queued is not None:
            body["rollups_queued"] = self.queued
            body["rollups_set_aside"] = self.set_aside
        return body


class Checkup:
    """One probe at a time and at most one per PROBE_INTERVAL; callers meanwhile get the latest report."""

    def __init__(self, probe: Callable[[HealthReport], HealthReport]) -> None:
        self._probe = probe
        self._lock = threading.Lock()
        self._latest = HealthReport()
        self._at = float("-inf")

    def report(self) -> HealthReport:
        if not self._lock.acquire(timeout=PROBE_SECONDS):
            return self._latest
        try:
            if time.monotonic() - self._at >= PROBE_INTERVAL:
                self._latest = self._probe(self._latest)
                self._at = time.monotonic()
            return self._latest
        finally:
            self._lock.release()
