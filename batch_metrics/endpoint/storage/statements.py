"""How a batch becomes rows and a read becomes SQL: the columns, the statements, the values in order.

The same text runs on both databases; `{mark}` is each driver's placeholder. Values always go
through placeholders, never into the text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from batch_metrics.endpoint.storage.uploaders import UPLOADER_COLUMNS, UPLOADER_JOIN
from batch_metrics.models import BatchPayload

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
EXTENSIONS = frozenset(RESULT_COLUMNS[8:])
UNLISTED_COLUMNS = ("batch_run_id", "platform", "ecosystem", "passed", "failed", "skipped")
RUN_INSERT = (
    f"INSERT INTO batch_runs ({', '.join(RUN_COLUMNS)}, idempotency_key, received_at, run_summary) "
    f"VALUES ({', '.join(['{mark}'] * (len(RUN_COLUMNS) + 3))}) "
    "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id"
)
KEYED_RUN = "SELECT id FROM batch_runs WHERE idempotency_key = {mark}"  # the run a re-delivery finds
UNLISTED_INSERT = (
    f"INSERT INTO run_unlisted ({', '.join(UNLISTED_COLUMNS)}) "
    f"VALUES ({', '.join(['{mark}'] * len(UNLISTED_COLUMNS))})"
)
RUN_SELECT = (
    f"SELECT id, {', '.join(RUN_COLUMNS)}, received_at, {UPLOADER_COLUMNS} FROM batch_runs {UPLOADER_JOIN}"
)
UNLISTED_SELECT = (
    "SELECT platform, ecosystem, passed, failed, skipped FROM run_unlisted WHERE batch_run_id = {mark}"
    " ORDER BY platform, ecosystem"
)
# One page of a run's results (index (batch_run_id, id), migration 6): memory bounded by the page.
RESULT_PAGE = (
    f"SELECT id, {', '.join(RESULT_COLUMNS[1:])} FROM recipe_results "
    "WHERE batch_run_id = {mark} AND id > {mark} ORDER BY id LIMIT {mark}"
)


def run_values(payload: BatchPayload, idempotency_key: str | None, received_at: str) -> tuple[Any, ...]:
    """Run columns in order; a number left out or null is stored as 0, as the Worker does."""
    numbers = (payload.get(key) or 0 for key in RUN_COLUMNS[4:])  # total_recipes .. linux_minutes
    summary = payload.get("run_summary")
    return (
        payload["batch_id"], payload["ecosystem"], payload["started_at"], payload.get("completed_at"),
        *numbers, idempotency_key, received_at, None if summary is None else json.dumps(summary),
    )  # fmt: skip


def result_columns(payload: BatchPayload) -> tuple[str, ...]:
    """The columns the batch's rows fill: the basic ones unless a row carries a field migration 7
    added (one pass at C speed; a batch without them writes no column of NULLs)."""
    return BASIC_RESULT_COLUMNS if all(map(EXTENSIONS.isdisjoint, payload["results"])) else RESULT_COLUMNS


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


def stored_json(text: str | None) -> Any:
    """A JSON column as stored by this endpoint (a summary, a list of names), or None."""
    return None if text is None else json.loads(text)


@dataclass(frozen=True)
class RunFilter:
    """Filters of `GET /batch-runs`; `since`/`until` compare with `started_at` as RFC 3339 text."""

    batch_id: str | None = None
    ecosystem: str | None = None
    since: str | None = None
    until: str | None = None
    before_id: int | None = None
    limit: int = 50


def filter_sql(query: RunFilter, mark: str) -> tuple[str, list[Any]]:
    """The WHERE clause of `GET /batch-runs` and its values."""
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
