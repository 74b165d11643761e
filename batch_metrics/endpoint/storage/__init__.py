"""Storage for the endpoint: SQLite (embedded default) or PostgreSQL, same schema, same SQL, same behaviour.

`open_storage` picks the dialect from the target; base.py holds what both share, migrations.py
the schema, rollups.py the tables the dashboard reads. PostgreSQL's driver is imported only
when a `postgresql://` URL is opened.
"""

from __future__ import annotations

from batch_metrics.endpoint.storage.base import RESULTS_PAGE, SQLStorage, Stored
from batch_metrics.endpoint.storage.health import HealthReport, Unavailable
from batch_metrics.endpoint.storage.migrations import MIGRATIONS
from batch_metrics.endpoint.storage.postgres import PostgresStorage
from batch_metrics.endpoint.storage.sqlite import SQLiteStorage
from batch_metrics.endpoint.storage.statements import RESULT_COLUMNS, RUN_COLUMNS, RunFilter

__all__ = [
    "MIGRATIONS",
    "RESULTS_PAGE",
    "RESULT_COLUMNS",
    "RUN_COLUMNS",
    "HealthReport",
    "PostgresStorage",
    "RunFilter",
    "SQLStorage",
    "SQLiteStorage",
    "Stored",
    "Unavailable",
    "is_postgres_url",
    "open_storage",
]


def is_postgres_url(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))


def open_storage(target: str, *, pool_size: int = 8) -> SQLStorage:
    """A SQLite file path (or `sqlite:///path`) or a `postgresql://` URL."""
    if is_postgres_url(target):
        return PostgresStorage(target, pool_size=pool_size)
    return SQLiteStorage(target.removeprefix("sqlite:///"))
