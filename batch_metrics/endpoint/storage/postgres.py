"""PostgreSQL, for more than one machine: psycopg 3, a small pool checked at checkout, results by COPY."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from batch_metrics.endpoint.storage.base import SQLStorage
from batch_metrics.endpoint.storage.health import (
    DISK_FULL,
    PROBE_SECONDS,
    READ_ONLY,
    UNREACHABLE,
    ProbeBusy,
)
from batch_metrics.endpoint.storage.statements import BASIC_RESULT_COLUMNS, RESULT_COLUMNS

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

_COPY_RESULTS: dict[tuple[str, ...], bytes] = {
    columns: f"COPY recipe_results ({', '.join(columns)}) FROM STDIN".encode()
    for columns in (RESULT_COLUMNS, BASIC_RESULT_COLUMNS)
}
# SQLSTATEs (and their classes) that mean "nothing can be stored now", whatever the batch.
_UNAVAILABLE = {
    "53100": DISK_FULL, "25006": READ_ONLY, "08": UNREACHABLE, "53": UNREACHABLE, "57P": UNREACHABLE,
}  # fmt: skip
_PROBE_LIMITS = (
    f"SET LOCAL lock_timeout = {int(PROBE_SECONDS * 1000)}; "
    f"SET LOCAL statement_timeout = {int(PROBE_SECONDS * 1000)}"
)
_BUSY = ("55P03", "57014")  # lock_not_available, query_canceled (the probe's own timeouts)


class PostgresStorage(SQLStorage):
    """psycopg 3 with a small pool (one connection per server thread); results go in with COPY."""

    dialect = "postgresql"
    mark = "%s"

    def __init__(self, url: str, *, pool_size: int = 8, wait_seconds: float = 30.0) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        self.errors = (psycopg.Error,)  # the pool's timeout is a psycopg.OperationalError too
        self.pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            url, min_size=1, max_size=pool_size, open=True, timeout=wait_seconds, name="batch-metrics",
            # A connection the database dropped (a restart) is found and replaced at checkout, not
            # handed to a request that would fail with it.
            check=ConnectionPool.check_connection,
        )  # fmt: skip
        self.read_wait_seconds = min(wait_seconds, 10.0)
        # COPY rows are built in Python: more writers than this would only queue for the GIL.
        self.writers = max(1, min(pool_size, 4))
        self._start_background()

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[Any]]:
        with self.pool.connection() as db, db.transaction():
            yield db

    @contextmanager
    def _reader(self, wait: float | None = None) -> Iterator[psycopg.Connection[Any]]:
        with self.pool.connection(timeout=self.read_wait_seconds if wait is None else wait) as db:
            yield db

    @contextmanager
    def _probing(self) -> Iterator[psycopg.Connection[Any]]:
        """Busy when the probe's own timeouts run out, or when no connection is free because every one
        is lent to a request (a pool that cannot connect has none to lend: the database is unreachable)."""
        import psycopg
        from psycopg_pool import PoolTimeout

        try:
            with self.pool.connection(timeout=PROBE_SECONDS) as db, db.transaction():
                db.execute(_PROBE_LIMITS)
                yield db
        except PoolTimeout as error:
            stats = self.pool.get_stats()
            if stats.get("pool_size", 0) >= self.pool.max_size and not stats.get("pool_available"):
                raise ProbeBusy from error
            raise
        except psycopg.Error as error:
            if getattr(error, "sqlstate", None) in _BUSY:
                raise ProbeBusy from error
            raise

    def _unavailable(self, error: Exception) -> str | None:
        """By SQLSTATE; an operational error without one (no connection, a pool timeout) is UNREACHABLE."""
        import psycopg

        state = getattr(error, "sqlstate", None)
        if state is None:
            return UNREACHABLE if isinstance(error, psycopg.OperationalError) else None
        return next((_UNAVAILABLE[key] for key in (state, state[:3], state[:2]) if key in _UNAVAILABLE), None)

    def _file_problem(self) -> str | None:
        """The server's files are the server's own business: the write probe finds what matters."""
        return None

    def _exclusive(self, db: psycopg.Connection[Any], lock: int) -> None:
        db.execute("SELECT pg_advisory_xact_lock(%s)", (lock,))

    def _checkpoint(self) -> None:
        """PostgreSQL checkpoints on its own."""

    def _has_table(self, db: psycopg.Connection[Any], name: str) -> bool:
        row = db.execute("SELECT to_regclass(%s)", (name,)).fetchone()
        return row is not None and row[0] is not None

    def _insert_results(
        self, db: psycopg.Connection[Any], columns: tuple[str, ...], rows: Iterator[tuple[Any, ...]]
    ) -> None:
        with db.cursor() as cursor, cursor.copy(_COPY_RESULTS[columns]) as copy:
            for row in rows:
                copy.write_row(row)

    def close(self) -> None:
        self._background.stop()
        self.pool.close()
