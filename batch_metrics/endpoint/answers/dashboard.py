"""The dashboard's questions, answered from the roll-ups: the same SQL on both databases.

Every function takes the storage and a `Window` (the last N days before `now`, compared with
`started_at` as RFC 3339 text, like `GET /batch-runs`) and reads the roll-up tables
(storage/rollups.py), never a scan of `recipe_results`. They group by the rows' ecosystems, so a
batch covering several counts under each; counts are platform validations (rows plus the results
a run summary counts beyond them), generation failures apart. `views/dashboard.py` serves them as
JSON, `answers/metrics.py` as Prometheus metrics.

The endpoint refuses times and numbers outside the contract (models.py), but a database may hold
older batches stored before it did: a `started_at` more than a day ahead (or text that sorts after
any time) is in no window and never an ecosystem's latest run, and a figure beyond what a batch can
hold adds nothing to a sum, so every answer stays finite.
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from batch_metrics.endpoint.storage import SQLStorage
from batch_metrics.endpoint.storage.statements import stored_json
from batch_metrics.endpoint.storage.uploaders import UPLOADER_COLUMNS, UPLOADER_JOIN, nest_uploader
from batch_metrics.models import CLOCK_SKEW, MAX_MINUTES, rfc3339, success_rate

WINDOWS = (7, 30, 90)
MAX_DAYS = 366
TOP = 10
STALE_FACTOR = 2  # stale after this many times an ecosystem's median gap between its recent runs
STALE_GAPS = 10  # gaps between the latest runs that set the usual interval
MIN_GAP_SECONDS = 3600  # runs minutes apart (several uploads of one nightly) would make anything stale
MAX_HISTORY = 2000
MAX_FAILURES = 500
# A run of an ecosystem, with its rate worked out: an ecosystem's own counts in that run.
_RUN_OF = (
    "SELECT e.batch_run_id AS id, e.ecosystem, r.started_at, e.passed, e.failed, e.skipped,"
    " e.generation_failed FROM run_ecosystems e JOIN batch_runs r ON r.id = e.batch_run_id"
)
# Green: platform validations ran, and none failed. A run that validated nothing is neither.
_GREEN = "e.failed = 0 AND e.passed > 0"
_VALIDATED = "e.passed + e.failed > 0"
# The most runner time one batch can report (models.MAX_MINUTES), in seconds: no stored figure beyond it is
# a batch's, so sums leave it out (it could only come from a database filled before the limits).
MAX_SECONDS = MAX_MINUTES * 60


def within(column: str, limit: float) -> str:
    """`column` where it is at most `limit`, else 0 (NaN and infinities too): a term every sum can take."""
    return f"CASE WHEN {column} <= {limit!r} THEN {column} ELSE 0 END"


def parse_time(text: str | None) -> datetime | None:
    """A stored RFC 3339 time, or None when it is not one (stored text is whatever was sent)."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Window:
    """The last `days` days before `now`, for one ecosystem or (None) all of them."""

    days: int = 30
    ecosystem: str | None = None
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def since(self) -> str:
        return rfc3339(self.now - timedelta(days=self.days))

    @property
    def middle(self) -> str:
        """Where the window's earlier half ends: a trend compares the two halves."""
        return rfc3339(self.now - timedelta(days=self.days / 2))

    @property
    def latest(self) -> str:
        """What every `started_at` must sort below: a clock a little ahead counts, text after any time not."""
        return rfc3339(self.now + CLOCK_SKEW)

    def runs(self, ecosystem: str) -> tuple[str, list[Any]]:
        """The WHERE clause selecting the window's runs (`r`), its ecosystem in column `ecosystem` of the
        roll-up read, and its parameters.

        The upper bound leaves out stored text that sorts after any real time (`started_at` is
        whatever the client sent), while a clock a little ahead still counts.
        """
        where = "r.started_at >= {mark} AND r.started_at < {mark}"
        params: list[Any] = [self.since, self.latest]
        if self.ecosystem is not None:
            where += f" AND {ecosystem} = {{mark}}"
            params.append(self.ecosystem)
        return where, params


def _stale(times: list[datetime], now: datetime, stale_after: timedelta | None) -> tuple[bool, float | None]:
    """Whether the newest of `times` (newest first) is older than the threshold, and that threshold (s).

    The threshold is `stale_after` when configured, else twice the median gap between the
    latest runs; with fewer than two runs there is no usual interval and nothing is stale.
    """
    if stale_after is None:
        gaps = [(newer - older).total_seconds() for newer, older in itertools.pairwise(times)]
        if not gaps:
            return False, None
        limit = STALE_FACTOR * max(statistics.median(gaps), MIN_GAP_SECONDS)
    else:
        limit = stale_after.total_seconds()
    return (now - times[0]).total_seconds() > limit, limit


def ecosystems(
    storage: SQLStorage, window: Window, stale_after: timedelta | None = None
) -> list[dict[str, Any]]:
    """Per ecosystem (all time, not just the window): its latest run, runs since a green run, staleness.

    An ecosystem's runs are the runs with rows (or unlisted results) of it. A green run validated
    something and nothing failed; runs since green count the runs that validated something. An
    ecosystem that stopped sending stays listed, flagged stale. Runs whose `started_at` lies beyond
    `window.latest` are left out (see the module docstring).
    """
    only = "WHERE r.started_at < {mark}" + (" AND e.ecosystem = {mark}" if window.ecosystem else "")
    params = [window.latest, *([window.ecosystem] if window.ecosystem else [])]
    recent = storage.query(
        "SELECT * FROM (SELECT x.*, row_number() OVER (PARTITION BY x.ecosystem ORDER BY x.started_at DESC,"
        f" x.id DESC) AS n FROM ({_RUN_OF} {only}) x) latest WHERE n <= {STALE_GAPS + 1}"
        " ORDER BY ecosystem, n",
        params,
    )
    red = storage.query(
        "SELECT g.ecosystem, count(x.started_at) AS runs, max(g.last_green) AS last_green FROM ("
        f" SELECT e.ecosystem, max(CASE WHEN {_GREEN} THEN r.started_at END) AS last_green"
        f" FROM run_ecosystems e JOIN batch_runs r ON r.id = e.batch_run_id {only} GROUP BY e.ecosystem) g"
        f" LEFT JOIN ({_RUN_OF} WHERE {_VALIDATED} AND r.started_at < {{mark}}) x"
        " ON x.ecosystem = g.ecosystem AND x.started_at > coalesce(g.last_green, '')"
        " GROUP BY g.ecosystem",
        [*params, window.latest],
    )
    since_green = {row["ecosystem"]: row for row in red}
    by_ecosystem: dict[str, list[dict[str, Any]]] = {}
    for row in recent:
        by_ecosystem.setdefault(row["ecosystem"], []).append(row)
    answer = []
    for name, runs in by_ecosystem.items():
        latest = runs[0]
        times = [moment for moment in (parse_time(run["started_at"]) for run in runs) if moment]
        stale, limit = _stale(times, window.now, stale_after) if times else (False, None)
        answer.append({
            "ecosystem": name,
            "latest_run": _latest(latest),
            "runs_since_green": int(since_green[name]["runs"]),
            "last_green_at": since_green[name]["last_green"],
            "stale": stale,
            "stale_after_seconds": limit,
        })  # fmt: skip
    return answer


def _latest(run: dict[str, Any]) -> dict[str, Any]:
    passed, failed, skipped = int(run["passed"]), int(run["failed"]), int(run["skipped"])
    return {
        "id": int(run["id"]), "started_at": run["started_at"], "success_rate": success_rate(passed, failed),
        "passed": passed, "failed": failed, "skipped": skipped, "total_recipes": passed + failed + skipped,
        "generation_failed": int(run["generation_failed"]),
    }  # fmt: skip


def daily(storage: SQLStorage, window: Window) -> list[dict[str, Any]]:
    """Per ecosystem and UTC day in the window: runs, passed, failed, generation failures, success rate,
    runner minutes."""
    where, params = window.runs("e.ecosystem")
    rows = storage.query(
        "SELECT e.ecosystem, substr(r.started_at, 1, 10) AS day, count(*) AS runs, sum(e.passed) AS passed,"
        " sum(e.failed) AS failed, sum(e.generation_failed) AS generation_failed,"
        f" sum({within('e.macos_minutes', MAX_MINUTES)}) AS macos_minutes,"
        f" sum({within('e.linux_minutes', MAX_MINUTES)}) AS linux_minutes"
        f" FROM run_ecosystems e JOIN batch_runs r ON r.id = e.batch_run_id WHERE {where}"
        " GROUP BY e.ecosystem, substr(r.started_at, 1, 10) ORDER BY e.ecosystem, day",
        params,
    )
    return [
        {**row, "success_rate": success_rate(row["passed"], row["failed"]),
         "macos_minutes": round(row["macos_minutes"], 2), "linux_minutes": round(row["linux_minutes"], 2)}
        for row in rows
    ]  # fmt: skip


def platforms(storage: SQLStorage, window: Window) -> list[dict[str, Any]]:
    """Per ecosystem and platform over the window: counts, success rate, runner minutes (from durations)."""
    where, params = window.runs("p.ecosystem")
    rows = storage.query(
        "SELECT p.ecosystem, p.platform, count(*) AS runs, sum(p.passed) AS passed, sum(p.failed) AS failed,"
        f" sum(p.skipped) AS skipped, sum({within('p.seconds', MAX_SECONDS)}) AS seconds"
        f" FROM batch_runs r JOIN run_platforms p ON p.batch_run_id = r.id WHERE {where}"
        " GROUP BY p.ecosystem, p.platform ORDER BY p.ecosystem, p.platform",
        params,
    )
    return [
        {"ecosystem": row["ecosystem"], "platform": row["platform"], "runs": row["runs"],
         "passed": row["passed"], "failed": row["failed"], "skipped": row["skipped"],
         "success_rate": success_rate(row["passed"], row["failed"]), "minutes": round(row["seconds"] / 60, 2)}
        for row in rows
    ]  # fmt: skip


def platform_days(storage: SQLStorage, window: Window) -> list[dict[str, Any]]:
    """Per platform and UTC day in the window: the success rate over time, platform by platform."""
    where, params = window.runs("p.ecosystem")
    rows = storage.query(
        "SELECT p.ecosystem, p.platform, substr(r.started_at, 1, 10) AS day, sum(p.passed) AS passed,"
        " sum(p.failed) AS failed FROM batch_runs r JOIN run_platforms p ON p.batch_run_id = r.id"
        f" WHERE {where} GROUP BY p.ecosystem, p.platform, substr(r.started_at, 1, 10)"
        " ORDER BY p.ecosystem, p.platform, day",
        params,
    )
    return [{**row, "success_rate": success_rate(row["passed"], row["failed"])} for row in rows]


def _top_failures(
    storage: SQLStorage, window: Window, table: str, column: str, limit: int
) -> list[dict[str, Any]]:
    """A failure roll-up over the window's runs, largest first, with the two halves for the trend."""
    where, params = window.runs("x.ecosystem")
    rows = storage.query(
        f"SELECT x.ecosystem, x.{column} AS name, sum(x.failures) AS failures,"
        " sum(CASE WHEN r.started_at >= {mark} THEN x.failures ELSE 0 END) AS recent,"
        " max(r.id) AS last_run_id"
        f" FROM batch_runs r JOIN {table} x ON x.batch_run_id = r.id"
        f" WHERE {where} GROUP BY x.ecosystem, x.{column}"
        " ORDER BY failures DESC, x.ecosystem, name LIMIT {mark}",
        [window.middle, *params, limit],
    )
    return [
        {"ecosystem": row["ecosystem"], "name": row["name"], "failures": int(row["failures"]),
         "earlier": int(row["failures"] - row["recent"]), "recent": int(row["recent"]),
         "last_run_id": int(row["last_run_id"])}
        for row in rows
    ]  # fmt: skip


def failing_recipes(storage: SQLStorage, window: Window, limit: int = TOP) -> list[dict[str, Any]]:
    """The recipes with the most failed rows in the window; `earlier`/`recent` are the window's halves."""
    return _top_failures(storage, window, "run_recipe_failures", "recipe_name", limit)


def error_categories(storage: SQLStorage, window: Window, limit: int = TOP) -> list[dict[str, Any]]:
    """The error categories with the most failed rows in the window ('' for failures without one)."""
    return _top_failures(storage, window, "run_category_failures", "error_category", limit)


def recipe_history(storage: SQLStorage, window: Window, recipe: str) -> list[dict[str, Any]]:
    """One recipe's latest MAX_HISTORY rows in the window's runs, oldest first: its pass/fail strips."""
    where, params = window.runs("f.ecosystem")
    newest_first = storage.query(
        "SELECT r.id AS batch_run_id, f.ecosystem, r.started_at, coalesce(f.platform, '') AS platform,"
        " f.result, f.error_category, f.error_subcategory, f.stage"
        " FROM recipe_results f JOIN batch_runs r ON r.id = f.batch_run_id"
        f" WHERE f.recipe_name = {{mark}} AND {where}"
        f" ORDER BY r.started_at DESC, r.id DESC, platform DESC LIMIT {MAX_HISTORY}",
        [recipe, *params],
    )
    return newest_first[::-1]


def run_failures(storage: SQLStorage, run_id: int) -> dict[str, Any] | None:
    """A run's counts, its ecosystems' own, what its run summary said, who uploaded it (and its CI run's
    URL), and its failed rows with their messages (the first MAX_FAILURES by name)."""
    runs = storage.query(
        "SELECT id, batch_id, ecosystem, started_at, success_rate, passed, failed, skipped, run_summary, "
        f"{UPLOADER_COLUMNS} FROM batch_runs {UPLOADER_JOIN} WHERE id = {{mark}}",
        [run_id],
    )
    if not runs:
        return None
    failures = storage.query(
        "SELECT recipe_name, coalesce(platform, '') AS platform, error_category, error_subcategory,"
        " blocked_by, stage, error_message FROM recipe_results"
        " WHERE batch_run_id = {mark} AND result = 'failed'"
        f" ORDER BY recipe_name, platform LIMIT {MAX_FAILURES}",
        [run_id],
    )
    for failure in failures:
        failure["blocked_by"] = stored_json(failure["blocked_by"])
    per_ecosystem = storage.query(
        "SELECT ecosystem, passed, failed, skipped, generation_failed FROM run_ecosystems"
        " WHERE batch_run_id = {mark} ORDER BY ecosystem",
        [run_id],
    )
    unlisted = storage.query(
        "SELECT platform, ecosystem, passed, failed, skipped FROM run_unlisted WHERE batch_run_id = {mark}"
        " ORDER BY platform, ecosystem",
        [run_id],
    )
    run = nest_uploader(runs[0])
    run["run_summary"] = stored_json(run["run_summary"])
    return {
        **run, "failures": failures, "truncated": len(failures) == MAX_FAILURES, "unlisted": unlisted,
        "ecosystems": [{**row, "success_rate": success_rate(row["passed"], row["failed"])}
                       for row in per_ecosystem],
    }  # fmt: skip
