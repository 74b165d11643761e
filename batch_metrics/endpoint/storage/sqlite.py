"""SQLite, the embedded default: one file, WAL, one writer at a time, and never "database is locked"."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from batch_metrics.endpoint.storage.base import SQLStorage


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

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        connection = self._connection()
        with self._write_lock:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
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
