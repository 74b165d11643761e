"""The dashboard's roll-ups: the tables its queries read instead of `recipe_results`, and how a batch joins.

A year of nightly batches for 10 ecosystems is ~6M `recipe_results` rows, so no dashboard
query scans that table in full. Migration 4 (`ROLLUP_MIGRATION`) adds these tables and fills them
from the batches already stored; a new batch is only queued by its upload (`rollup_queue`,
migration 5) and added by `roll_up_run` afterwards, off the upload's path (`SQLStorage.roll_up`):

- `run_platforms`: per run and platform, the passed/failed/skipped counts and seconds;
- `recipe_latest`: per ecosystem, recipe and platform, its last passed/failed result;
- `recipe_flips`: one row each time that result changed (passed <-> failed), for flaky recipes;
- `run_recipe_failures`, `run_category_failures`: per run, failed rows by recipe and by error category;
- a partial index on the failed rows, for a run's failures.

"Consecutive runs" are runs in the order they were added to the roll-ups: the order they were
stored (two stored at the same moment on PostgreSQL may come in either order).
"""

from __future__ import annotations

from typing import Any

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
