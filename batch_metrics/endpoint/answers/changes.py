"""What changed since the previous run: a run's own comparison, and each ecosystem's latest one.

The upload works these out and stores them (storage/changes.py, `run_changes`); here they are only
read back, with the times of the run and of the one it was compared with. Runs stored before
migration 9 have none.
"""

from __future__ import annotations

import json
from typing import Any

from batch_metrics.endpoint.answers.dashboard import Window
from batch_metrics.endpoint.storage import SQLStorage
from batch_metrics.endpoint.storage.changes import COUNTS

SHOWN = 20  # entries per list in the latest changes (the page's first screen); a run's answer has them all
_SELECT = (
    "SELECT c.batch_run_id AS run_id, c.ecosystem, c.previous_run_id,"
    f" {', '.join(f'c.{name}' for name in COUNTS)},"
    " c.detail, r.started_at, p.started_at AS previous_started_at FROM run_changes c"
    " JOIN batch_runs r ON r.id = c.batch_run_id LEFT JOIN batch_runs p ON p.id = c.previous_run_id"
)


def _answer(row: dict[str, Any], shown: int | None) -> dict[str, Any]:
    detail = json.loads(row["detail"])
    if shown is not None:
        for name in ("new_failures", "fixed", "still_failing", "new_recipes", "gone_recipes"):
            detail[name] = detail[name][:shown]
    return {
        "run_id": int(row["run_id"]), "ecosystem": row["ecosystem"], "started_at": row["started_at"],
        "previous_run_id": None if row["previous_run_id"] is None else int(row["previous_run_id"]),
        "previous_started_at": row["previous_started_at"],
        "counts": {name: int(row[name]) for name in COUNTS}, **detail,
    }  # fmt: skip


def run_changes(storage: SQLStorage, run_id: int) -> list[dict[str, Any]]:
    """The run's comparison, one entry per ecosystem it validated, every list as stored (1,000 at most)."""
    rows = storage.query(f"{_SELECT} WHERE c.batch_run_id = {{mark}} ORDER BY c.ecosystem", [run_id])
    return [_answer(row, None) for row in rows]


def latest_changes(storage: SQLStorage, window: Window) -> list[dict[str, Any]]:
    """Each ecosystem's latest comparison (whatever the window's days; its ecosystem narrows it), with the
    first SHOWN entries of each list and the whole counts."""
    only, params = ("WHERE ecosystem = {mark}", [window.ecosystem]) if window.ecosystem else ("", [])
    rows = storage.query(
        f"{_SELECT} JOIN (SELECT ecosystem, max(batch_run_id) AS latest FROM run_changes {only}"
        " GROUP BY ecosystem) l ON l.ecosystem = c.ecosystem AND l.latest = c.batch_run_id"
        " ORDER BY c.ecosystem",
        params,
    )
    return [_answer(row, SHOWN) for row in rows]


def latest_counts(storage: SQLStorage) -> list[dict[str, Any]]:
    """Each ecosystem's latest comparison's counts (what `/metrics` exports)."""
    return storage.query(
        f"SELECT c.ecosystem, {', '.join(f'c.{name}' for name in COUNTS)} FROM run_changes c"
        " JOIN (SELECT ecosystem, max(batch_run_id) AS latest FROM run_changes GROUP BY ecosystem) l"
        " ON l.ecosystem = c.ecosystem AND l.latest = c.batch_run_id ORDER BY c.ecosystem",
        [],
    )
