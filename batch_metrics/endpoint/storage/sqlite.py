"""SQLite, the embedded default: one file, WAL, one writer at a time, and never "database is locked".

The files are watched, not trusted: once the database or its WAL is deleted or replaced under the
server, a write would go to a file nobody can open again, so every write transaction first checks
that the files are still the ones opened (`Unavailable`: the upload is answered 503 and retried).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from batch_metrics.endpoint.storage.base import SQLStorage
from batch_metrics.endpoint.storage.health import (
    DISK_FULL,
    GONE,
    IO_ERROR,
    LOCKED,
    MIN_FREE_BYTES,
    PROBE_SECONDS,
    READ_ONLY,
    UNREACHABLE,
    ProbeBusy,
    Unavailable,
)

# SQLite's primary result codes that mean "nothing can be stored now", whatever the batch.
_UNAVAILABLE = {
    sqlite3.SQLITE_FULL: DISK_FULL,
    sqlite3.SQLITE_READONLY: READ_ONLY,
    sqlite3.SQLITE_IOERR: IO_ERROR,
    sqlite3.SQLITE_CANTOPEN: UNREACHABLE,
    sqlite3.SQLITE_BUSY: LOCKED,
}


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_dev, found.st_ino


class SQLiteStorage(SQLStorage):
    """One connection per thread; writers serialised by a lock and BEGIN IMMEDIATE, so never 'locked'.

    The lock orders this process's writers; BEGIN IMMEDIATE plus the busy timeout
    orders them against other processes sharing the file (WAL lets readers go on).
    """

    dialect = "sqlite"
    mark = "?"
    writers = 1  # one writer at a time on the file, whatever the server does
    errors = (sqlite3.Error,)

    def __init__(self, path: str, *, busy_timeout_seconds: float = 60.0) -> None:
        self.path = path
        self.busy_timeout_seconds = busy_timeout_seconds
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        # The (device, inode) of the database and its WAL once opened: what later writes must still find.
        self._files = (Path(path), Path(f"{path}-wal"))
        self._opened: list[tuple[int, int] | None] = [None, None]
        self._start_background()

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=self.busy_timeout_seconds
            )
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_seconds * 1000)}")
            connection.execute("PRAGMA foreign_keys=ON")
            # With WAL, NORMAL survives a crashed process (kill -9); a power cut may lose the last commits.
            connection.execute("PRAGMA synchronous=NORMAL")
            # Checkpoints are the background thread's (`_checkpoint`), not a commit's.
            connection.execute("PRAGMA wal_autocheckpoint=0")
            self._local.connection = connection
            with self._connections_lock:
                self._connections.append(connection)
        return connection

    def _moved(self) -> bool:
        """Whether the database or its WAL is no longer the file this storage opened (deleted, replaced)."""
        self._connection()
        for index, path in enumerate(self._files):
            now = _identity(path)
            opened = self._opened[index]
            if opened is None:  # the first look (the WAL appears with the first connection)
                self._opened[index] = now
            elif now != opened:
                return True
        return False

    def _file_problem(self) -> str | None:
        """GONE once the files are not the ones opened; DISK_FULL below MIN_FREE_BYTES free on their disk."""
        if self._moved():
            return GONE
        try:
            disk = os.statvfs(self._files[0].parent)
        except OSError:
            return None
        return DISK_FULL if disk.f_bavail * disk.f_frsize < MIN_FREE_BYTES else None

    def _begin(self, connection: sqlite3.Connection) -> None:
        if self._moved():
            raise Unavailable(GONE)
        connection.execute("BEGIN IMMEDIATE")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        connection = self._connection()
        with self._write_lock:
            self._begin(connection)
            with self._ending(connection):
                yield connection

    @contextmanager
    def _probing(self) -> Iterator[sqlite3.Connection]:
        """A transaction on this thread's connection that waits PROBE_SECONDS at most, then checkpoints,
        so the probes themselves never grow the WAL."""
        connection = self._connection()
        if not self._write_lock.acquire(timeout=PROBE_SECONDS):
            raise ProbeBusy
        try:
            connection.execute(f"PRAGMA busy_timeout={int(PROBE_SECONDS * 1000)}")
            try:
                connection.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as error:
                if error.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY:
                    raise ProbeBusy from error
                raise
            finally:
                connection.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_seconds * 1000)}")
            with self._ending(connection):
                yield connection
        finally:
            self._write_lock.release()
        self._checkpoint()

    @staticmethod
    @contextmanager
    def _ending(connection: sqlite3.Connection) -> Iterator[None]:
        """COMMIT, or ROLLBACK on an exception, a failed COMMIT included (a full disk fails it)."""
        try:
            yield
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    def _unavailable(self, error: Exception) -> str | None:
        code = getattr(error, "sqlite_errorcode", None)
        return None if code is None else _UNAVAILABLE.get(code & 0xFF)

    @contextmanager
    def _reader(self, wait: float | None = None) -> Iterator[sqlite3.Connection]:
        """This thread's connection: in WAL mode a read never waits."""
        yield self._connection()

    def _exclusive(self, db: sqlite3.Connection, lock: int) -> None:
        """BEGIN IMMEDIATE, which every write transaction starts with, already excludes other writers."""

    def _checkpoint(self) -> None:
        # PASSIVE: never waits for readers or writers; what it cannot copy now, the next one does.
        self._connection().execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _has_table(self, db: sqlite3.Connection, name: str) -> bool:
        return (
            db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()
            is not None
        )

    def _insert_results(
        self, db: sqlite3.Connection, columns: tuple[str, ...], rows: Iterator[tuple[Any, ...]]
    ) -> None:
        db.executemany(
            f"INSERT INTO recipe_results ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            rows,
        )

    def close(self) -> None:
        self._background.stop()
        with self._connections_lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
