"""The queries behind the dashboard at `/`, its JSON endpoints and `/metrics`; the same SQL on both databases.

A year of nightly batches for 10 ecosystems is ~6M `recipe_results` rows, so no query
here scans that table in full. Migration 4 (`ROLLUP_MIGRATION`) adds what they read instead.
A batch's insert transaction only queues the batch (`rollup_queue`, migration 5); `roll_up_run`
adds it to the roll-ups afterwards, off the upload's path, in a transaction of its own that also
takes it off the queue (see `SQLStorage.roll_up`):

- `run_platforms`: per run and platform, the passed/failed/skipped counts and seconds;
- `recipe_latest`: per ecosystem, recipe and platform, its last passed/failed result;
- `recipe_flips`: one row each time that result changed (passed <-> failed), for flaky recipes;
- `run_recipe_failures`, `run_category_failures`: per run, failed rows by recipe and by error category;
- a partial index on the failed rows, for a run's failures.

"Consecutive runs" are runs in the order they were added to the roll-ups: the order they were
stored (two stored at the same moment on PostgreSQL may come in either order). A window is the last N days
before `now`, compared with `started_at` as RFC 3339 text, like `GET /batch-runs`.
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from batch_metrics.storage import SQLStorage

WINDOWS = (7, 30, 90)
MAX_DAYS = 366
TOP = 10
STALE_FACTOR = 2  # stale after this many times an ecosystem's median gap between its recent runs
STALE_GAPS = 10  # gaps between the latest runs that set the usual interval
MIN_GAP_SECONDS = 3600  # runs minutes apart (several uploads of one nightly) would make anything stale
MAX_HISTORY = 2000
MAX_FAILURES = 500
_LATEST_COLUMNS = ("id", "started_at", "success_rate", "passed", "failed", "skipped", "total_recipes")

# One platform name for rows that give none, so the keys of the roll-ups are never NULL.
_PLATFORM = "coalesce(platform, '')"
_F_PLATFORM = "coalesce(f.platform, '')"
_ROLLUP_TABLES = """
CREATE TABLE run_platforms (
    batch_run_id {fk} NOT NULL REFERENCES batch_runs(id),
    platform TEXT NOT NULL,
    passed INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    skipped INTEGER NOT NULL,
    seconds {real} NOT NULL,
    PRIMARY KEY (batch_run_id, platform)
);
CREATE TABLE run_recipe_failures (
    batch_run_id {fk} NOT NULL REFERENCES batch_runs(id),
    recipe_name TEXT NOT NULL,
    failures INTEGER NOT NULL,
    PRIMARY KEY (batch_run_id, recipe_name)
);
CREATE TABLE run_category_failures (
    batch_run_id {fk} NOT NULL REFERENCES batch_runs(id),
    error_category TEXT NOT NULL,
    failures INTEGER NOT NULL,
    PRIMARY KEY (batch_run_id, error_category)
);
CREATE TABLE recipe_latest (
    ecosystem TEXT NOT NULL,
    recipe_name TEXT NOT NULL,
    platform TEXT NOT NULL,
    result TEXT NOT NULL,
    PRIMARY KEY (ecosystem, recipe_name, platform)
);
CREATE TABLE recipe_flips (
    batch_run_id {fk} NOT NULL REFERENCES batch_runs(id),
    recipe_name TEXT NOT NULL,
    platform TEXT NOT NULL,
    result TEXT NOT NULL
);
CREATE INDEX idx_recipe_latest_covering ON recipe_latest(ecosystem, recipe_name, platform, result);
CREATE INDEX idx_recipe_flips_batch_run_id ON recipe_flips(batch_run_id);
CREATE INDEX idx_batch_runs_started_at ON batch_runs(started_at);
CREATE INDEX idx_recipe_results_failed ON recipe_results(batch_run_id) WHERE result = 'failed';
"""
_RUN_COUNTS = {  # roll-up table: what it counts per run, from recipe_results
    "run_platforms": f"SELECT batch_run_id, {_PLATFORM}, sum(CASE WHEN result = 'passed' THEN 1 ELSE 0 END),"
    " sum(CASE WHEN result = 'failed' THEN 1 ELSE 0 END),"
    " sum(CASE WHEN result = 'skipped' THEN 1 ELSE 0 END), "
    f"sum(duration_seconds) FROM recipe_results WHERE {{run}} GROUP BY batch_run_id, {_PLATFORM}",
    "run_recipe_failures": "SELECT batch_run_id, recipe_name, count(*) FROM recipe_results "
    "WHERE {run} AND result = 'failed' GROUP BY batch_run_id, recipe_name",
    "run_category_failures": "SELECT batch_run_id, coalesce(error_category, ''), count(*)"
    " FROM recipe_results WHERE {run} AND result = 'failed'"
    " GROUP BY batch_run_id, coalesce(error_category, '')",
}
# Existing batches, replayed in the order they were stored: the same rows the insert path would have made.
_BACKFILL = "".join(
    f"INSERT INTO {table} {select.format(run='true')};\n" for table, select in _RUN_COUNTS.items()
) + (
    "INSERT INTO recipe_flips SELECT batch_run_id, recipe_name, platform, result FROM ("
    " SELECT f.batch_run_id, f.recipe_name, f.platform, f.result, lag(f.result) OVER ("
    "  PARTITION BY r.ecosystem, f.recipe_name, f.platform ORDER BY f.batch_run_id) AS previous"
    f" FROM (SELECT batch_run_id, recipe_name, {_PLATFORM} AS platform, min(result) AS result"
    "  FROM recipe_results WHERE result IN ('passed', 'failed')"
    f"  GROUP BY batch_run_id, recipe_name, {_PLATFORM}) f"
    " JOIN batch_runs r ON r.id = f.batch_run_id) changes WHERE previous <> result;\n"
    "INSERT INTO recipe_latest SELECT ecosystem, recipe_name, platform, result FROM ("
    f" SELECT r.ecosystem, f.recipe_name, {_F_PLATFORM} AS platform, min(f.result) AS result,"
    f"  row_number() OVER (PARTITION BY r.ecosystem, f.recipe_name, {_F_PLATFORM}"
    "   ORDER BY f.batch_run_id DESC) AS n"
    " FROM recipe_results f JOIN batch_runs r ON r.id = f.batch_run_id"
    " WHERE f.result IN ('passed', 'failed')"
    f" GROUP BY r.ecosystem, f.recipe_name, {_F_PLATFORM}, f.batch_run_id"
    ") latest WHERE n = 1"
)
ROLLUP_MIGRATION = _ROLLUP_TABLES + _BACKFILL
# Table for a queue of stored batches whose roll-ups are still to be made (migration 5).
QUEUE_MIGRATION = "CREATE TABLE rollup_queue (batch_run_id {fk} PRIMARY KEY REFERENCES batch_runs(id))"
_RUN_ROLLUPS = tuple(
    f"INSERT INTO {table} {select.format(run='batch_run_id = {mark}')}"
    for table, select in _RUN_COUNTS.items()
)
# One run's passed/failed result per recipe and platform; listed twice, failed wins ('failed' < 'passed').
_RUN_RESULTS = (
    f"SELECT recipe_name, {_PLATFORM} AS platform, min(result) AS result FROM recipe_results"
    " WHERE batch_run_id = {mark} AND result IN ('passed', 'failed')"
    f" GROUP BY recipe_name, {_PLATFORM}"
)
_FLIPS = (  # params: run id, run id, ecosystem
    "INSERT INTO recipe_flips (batch_run_id, recipe_name, platform, result)"
    " SELECT {mark}, this.recipe_name, this.platform, this.result"
    f" FROM ({_RUN_RESULTS}) this JOIN recipe_latest latest"
    " ON latest.ecosystem = {mark} AND latest.recipe_name = this.recipe_name"
    " AND latest.platform = this.platform WHERE latest.result <> this.result"
)
_LATEST = (  # params: ecosystem, run id. `WHERE true` keeps SQLite from reading ON CONFLICT as a join.
    f"INSERT INTO recipe_latest (ecosystem, recipe_name, platform, result) SELECT {{mark}}, * FROM"
    f" ({_RUN_RESULTS}) this WHERE true"
    " ON CONFLICT (ecosystem, recipe_name, platform) DO UPDATE SET result = excluded.result"
    " WHERE recipe_latest.result <> excluded.result"
)


def roll_up_run(db: Any, mark: str, run_id: int, ecosystem: str) -> None:
    """Add one stored batch to the roll-ups, in SQL from its stored rows (inside the caller's transaction).

    Result changes are found against `recipe_latest` before it is updated, and only changed
    results are written there, so a batch like the one before writes almost nothing to it.
    """
    for statement in _RUN_ROLLUPS:
        db.execute(statement.format(mark=mark), (run_id,))
    db.execute(_FLIPS.format(mark=mark), (run_id, run_id, ecosystem))
    db.execute(_LATEST.format(mark=mark), (ecosystem, run_id))


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
        return _stamp(self.now - timedelta(days=self.days))

    @property
    def middle(self) -> str:
        """Where the window's earlier half ends: a trend compares the two halves."""
        return _stamp(self.now - timedelta(days=self.days / 2))

    def runs(self, alias: str = "r") -> tuple[str, list[Any]]:
        """The WHERE clause selecting the window's runs, and its parameters.

        The upper bound leaves out stored text that sorts after any real time (`started_at` is
        whatever the client sent), while a clock a little ahead still counts.
        """
        where = f"{alias}.started_at >= {{mark}} AND {alias}.started_at < {{mark}}"
        params: list[Any] = [self.since, _stamp(self.now + timedelta(days=1))]
        if self.ecosystem is not None:
            where += f" AND {alias}.ecosystem = {{mark}}"
            params.append(self.ecosystem)
        return where, params


def _rate(passed: int, failed: int) -> float:
    """passed / (passed + failed), as the batch's own success_rate; 0 when nothing ran."""
    return round(passed / (passed + failed), 4) if passed + failed else 0.0


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
    """Per ecosystem (all time, not just the window): the latest run, runs since a green run, staleness.

    A green run is one with nothing failed. An ecosystem that stopped sending stays listed, flagged stale.
    """
    only, params = ("WHERE ecosystem = {mark}", [window.ecosystem]) if window.ecosystem else ("", [])
    recent = storage.query(
        "SELECT id, ecosystem, started_at, success_rate, passed, failed, skipped, total_recipes FROM ("
        " SELECT *, row_number() OVER (PARTITION BY ecosystem ORDER BY started_at DESC, id DESC) AS n"
        f" FROM batch_runs {only}) latest WHERE n <= {STALE_GAPS + 1} ORDER BY ecosystem, n",
        params,
    )
    red = storage.query(
        "SELECT e.ecosystem, count(r.id) AS runs, max(e.last_green) AS last_green FROM ("
        " SELECT ecosystem, max(CASE WHEN failed = 0 THEN started_at END) AS last_green"
        f" FROM batch_runs {only} GROUP BY ecosystem) e"
        " LEFT JOIN batch_runs r ON r.ecosystem = e.ecosystem AND r.started_at > coalesce(e.last_green, '')"
        " GROUP BY e.ecosystem",
        params,
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
            "latest_run": {key: latest[key] for key in _LATEST_COLUMNS},
            "runs_since_green": int(since_green[name]["runs"]),
            "last_green_at": since_green[name]["last_green"],
            "stale": stale,
            "stale_after_seconds": limit,
        })  # fmt: skip
    return answer


def daily(storage: SQLStorage, window: Window) -> list[dict[str, Any]]:
    """Per ecosystem and UTC day in the window: runs, passed, failed, success rate, runner minutes."""
    where, params = window.runs()
    rows = storage.query(
        "SELECT r.ecosystem, substr(r.started_at, 1, 10) AS day, count(*) AS runs, sum(r.passed) AS passed,"
        " sum(r.failed) AS failed, sum(r.macos_minutes) AS macos_minutes,"
        " sum(r.linux_minutes) AS linux_minutes"
        f" FROM batch_runs r WHERE {where} GROUP BY r.ecosystem, substr(r.started_at, 1, 10)"
        " ORDER BY r.ecosystem, day",
        params,
    )
    return [
        {**row, "success_rate": _rate(row["passed"], row["failed"]),
         "macos_minutes": round(row["macos_minutes"], 2), "linux_minutes": round(row["linux_minutes"], 2)}
        for row in rows
    ]  # fmt: skip


def platforms(storage: SQLStorage, window: Window) -> list[dict[str, Any]]:
    """Per ecosystem and platform over the window: counts, success rate, runner minutes (from durations)."""
    where, params = window.runs()
    rows = storage.query(
        "SELECT r.ecosystem, p.platform, count(*) AS runs, sum(p.passed) AS passed, sum(p.failed) AS failed,"
        " sum(p.skipped) AS skipped, sum(p.seconds) AS seconds"
        f" FROM batch_runs r JOIN run_platforms p ON p.batch_run_id = r.id WHERE {where}"
        " GROUP BY r.ecosystem, p.platform ORDER BY r.ecosystem, p.platform",
        params,
    )
    return [
        {"ecosystem": row["ecosystem"], "platform": row["platform"], "runs": row["runs"],
         "passed": row["passed"], "failed": row["failed"], "skipped": row["skipped"],
         "success_rate": _rate(row["passed"], row["failed"]), "minutes": round(row["seconds"] / 60, 2)}
        for row in rows
    ]  # fmt: skip


def platform_days(storage: SQLStorage, window: Window) -> list[dict[str, Any]]:
    """Per platform and UTC day in the window: the success rate over time, platform by platform."""
    where, params = window.runs()
    rows = storage.query(
        "SELECT r.ecosystem, p.platform, substr(r.started_at, 1, 10) AS day, sum(p.passed) AS passed,"
        " sum(p.failed) AS failed FROM batch_runs r JOIN run_platforms p ON p.batch_run_id = r.id"
        f" WHERE {where} GROUP BY r.ecosystem, p.platform, substr(r.started_at, 1, 10)"
        " ORDER BY r.ecosystem, p.platform, day",
        params,
    )
    return [{**row, "success_rate": _rate(row["passed"], row["failed"])} for row in rows]


def _top_failures(
    storage: SQLStorage, window: Window, table: str, column: str, limit: int
) -> list[dict[str, Any]]:
    """A failure roll-up over the window's runs, largest first, with the two halves for the trend."""
    where, params = window.runs()
    rows = storage.query(
        f"SELECT r.ecosystem, x.{column} AS name, sum(x.failures) AS failures,"
        " sum(CASE WHEN r.started_at >= {mark} THEN x.failures ELSE 0 END) AS recent,"
        " max(r.id) AS last_run_id"
        f" FROM batch_runs r JOIN {table} x ON x.batch_run_id = r.id"
        f" WHERE {where} GROUP BY r.ecosystem, x.{column}"
        " ORDER BY failures DESC, r.ecosystem, name LIMIT {mark}",
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


def flaky_recipes(storage: SQLStorage, window: Window, limit: int = TOP) -> list[dict[str, Any]]:
    """Recipes whose result flipped between passed and failed on one platform at least twice in the window.

    One flip is a change (a break or a fix); flaky is back and forth. Ranked by flips.
    """
    where, params = window.runs()
    rows = storage.query(
        "SELECT r.ecosystem, x.recipe_name, count(*) AS flips, count(DISTINCT x.platform) AS platforms,"
        " max(r.started_at) AS last_flip_at FROM recipe_flips x JOIN batch_runs r ON r.id = x.batch_run_id"
        f" WHERE {where} GROUP BY r.ecosystem, x.recipe_name HAVING count(*) >= 2"
        " ORDER BY flips DESC, r.ecosystem, x.recipe_name LIMIT {mark}",
        [*params, limit],
    )
    return [{**row, "flips": int(row["flips"]), "platforms": int(row["platforms"])} for row in rows]


def recipe_history(storage: SQLStorage, window: Window, recipe: str) -> list[dict[str, Any]]:
    """One recipe's latest MAX_HISTORY rows in the window's runs, oldest first: its pass/fail strips."""
    where, params = window.runs()
    newest_first = storage.query(
        "SELECT r.id AS batch_run_id, r.ecosystem, r.started_at, coalesce(f.platform, '') AS platform,"
        " f.result, f.error_category FROM recipe_results f JOIN batch_runs r ON r.id = f.batch_run_id"
        f" WHERE f.recipe_name = {{mark}} AND {where}"
        f" ORDER BY r.started_at DESC, r.id DESC, platform DESC LIMIT {MAX_HISTORY}",
        [recipe, *params],
    )
    return newest_first[::-1]


def run_failures(storage: SQLStorage, run_id: int) -> dict[str, Any] | None:
    """A run's counts and its failed rows with their messages (the first MAX_FAILURES by name)."""
    runs = storage.query(
        "SELECT id, batch_id, ecosystem, started_at, success_rate, passed, failed, skipped FROM batch_runs"
        " WHERE id = {mark}",
        [run_id],
    )
    if not runs:
        return None
    failures = storage.query(
        "SELECT recipe_name, coalesce(platform, '') AS platform, error_category, error_message"
        " FROM recipe_results WHERE batch_run_id = {mark} AND result = 'failed'"
        f" ORDER BY recipe_name, platform LIMIT {MAX_FAILURES}",
        [run_id],
    )
    return {**runs[0], "failures": failures, "truncated": len(failures) == MAX_FAILURES}
