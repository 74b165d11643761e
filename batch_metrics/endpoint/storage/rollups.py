"""The dashboard's roll-ups: the tables its queries read instead of `recipe_results`, and how a batch joins.

A year of nightly batches for 10 ecosystems is ~6M `recipe_results` rows, so no dashboard
query scans that table in full. A new batch is only queued by its upload (`rollup_queue`,
migration 5) and added by `roll_up_run` afterwards, off the upload's path (`SQLStorage.roll_up`).
Every roll-up is keyed by the **rows'** ecosystem, not the batch's label: a batch covering six
ecosystems counts under each of the six (migration 7, `ECOSYSTEM_MIGRATION`, rebuilt them so):

- `run_ecosystems`: per run and ecosystem, platform validations passed/failed/skipped,
  generation failures and runner minutes: what the ecosystems' lines, the daily chart and
  `/metrics` read;
- `run_platforms`: per run, ecosystem and platform, the validations and seconds;
- `recipe_latest`: per ecosystem, recipe and platform, its last passed/failed validation;
- `recipe_flips`: one row each time that result changed (passed <-> failed), for flaky recipes;
- the roll-ups of answer_rollups.py (migration 9), added to each run after these;
- `run_recipe_failures`, `run_category_failures`: per run and ecosystem, failed rows (of both
  stages) by recipe and by error category;
- a partial index on the failed rows, for a run's failures.

Counts are platform validations: rows of the generation stage (`stage = 'generation'`) count as
generation failures only, and the results a run summary counts beyond the rows (`run_unlisted`,
stored with the batch) are added where they belong. A batch whose rows name one ecosystem (or
none) keeps its own header counts and minutes, as the Worker stores them; a batch of several is
counted from its rows and unlisted results, its minutes from the rows' durations.

"Consecutive runs" are runs in the order they were added to the roll-ups: the order they were
stored (two stored at the same moment on PostgreSQL may come in either order).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from batch_metrics.endpoint.storage.answer_rollups import RUNS_BETWEEN, roll_up_answers

GENERATION = "generation"
_MACOS_PREFIXES = ("darwin", "macos", "osx")
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
# Migration 4, as applied: the tables keyed by the batch, filled from the batches stored before it
# (replayed in the order they were stored). Migration 7 replaces them.
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
_VALIDATION = "(stage IS NULL OR stage <> 'generation')"
# Migration 7: what the rows say beyond the Worker's columns, the results with no row, and the roll-ups
# keyed by the rows' ecosystems, rebuilt for every stored batch by queueing them all again.
ECOSYSTEM_MIGRATION = """
ALTER TABLE recipe_results ADD COLUMN error_subcategory TEXT;
ALTER TABLE recipe_results ADD COLUMN blocked_by TEXT;
ALTER TABLE recipe_results ADD COLUMN attempts INTEGER;
ALTER TABLE recipe_results ADD COLUMN stage TEXT;
ALTER TABLE batch_runs ADD COLUMN run_summary TEXT;
CREATE TABLE run_unlisted (
    batch_run_id {fk} NOT NULL REFERENCES batch_runs(id),
    platform TEXT NOT NULL,
    ecosystem TEXT,
    passed INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    skipped INTEGER NOT NULL
);
CREATE INDEX idx_run_unlisted_batch_run_id ON run_unlisted(batch_run_id);
DROP TABLE run_platforms;
DROP TABLE run_recipe_failures;
DROP TABLE run_category_failures;
DROP TABLE recipe_flips;
DELETE FROM recipe_latest;
CREATE TABLE run_ecosystems (
    batch_run_id {fk} NOT NULL REFERENCES batch_runs(id),
    ecosystem TEXT NOT NULL,
    passed INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    skipped INTEGER NOT NULL,
    generation_failed INTEGER NOT NULL,
    macos_minutes {real} NOT NULL,
    linux_minutes {real} NOT NULL,
    PRIMARY KEY (batch_run_id, ecosystem)
);
CREATE INDEX idx_run_ecosystems_ecosystem ON run_ecosystems(ecosystem, batch_run_id);
CREATE TABLE run_platforms (
    batch_run_id {fk} NOT NULL REFERENCES batch_runs(id),
    ecosystem TEXT NOT NULL,
    platform TEXT NOT NULL,
    passed INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    skipped INTEGER NOT NULL,
    seconds {real} NOT NULL,
    PRIMARY KEY (batch_run_id, ecosystem, platform)
);
CREATE TABLE run_recipe_failures (
    batch_run_id {fk} NOT NULL REFERENCES batch_runs(id),
    ecosystem TEXT NOT NULL,
    recipe_name TEXT NOT NULL,
    failures INTEGER NOT NULL,
    PRIMARY KEY (batch_run_id, ecosystem, recipe_name)
);
CREATE TABLE run_category_failures (
    batch_run_id {fk} NOT NULL REFERENCES batch_runs(id),
    ecosystem TEXT NOT NULL,
    error_category TEXT NOT NULL,
    failures INTEGER NOT NULL,
    PRIMARY KEY (batch_run_id, ecosystem, error_category)
);
CREATE TABLE recipe_flips (
    batch_run_id {fk} NOT NULL REFERENCES batch_runs(id),
    ecosystem TEXT NOT NULL,
    recipe_name TEXT NOT NULL,
    platform TEXT NOT NULL,
    result TEXT NOT NULL
);
CREATE INDEX idx_recipe_flips_batch_run_id ON recipe_flips(batch_run_id);
DELETE FROM rollup_queue;
INSERT INTO rollup_queue (batch_run_id) SELECT id FROM batch_runs
"""
_FAILURES = (  # per run and ecosystem, failed rows of both stages by recipe and by category
    "INSERT INTO run_recipe_failures (batch_run_id, ecosystem, recipe_name, failures)"
    " SELECT batch_run_id, ecosystem, recipe_name, count(*) FROM recipe_results"
    " WHERE batch_run_id = {mark} AND result = 'failed' GROUP BY batch_run_id, ecosystem, recipe_name",
    "INSERT INTO run_category_failures (batch_run_id, ecosystem, error_category, failures)"
    " SELECT batch_run_id, ecosystem, coalesce(error_category, ''), count(*) FROM recipe_results"
    " WHERE batch_run_id = {mark} AND result = 'failed'"
    " GROUP BY batch_run_id, ecosystem, coalesce(error_category, '')",
)
_COUNTS = (  # one run's rows by ecosystem, platform, result and stage: a few dozen groups
    f"SELECT ecosystem, {_PLATFORM} AS platform, result, coalesce(stage, '') AS stage, count(*) AS n,"
    " sum(duration_seconds) AS seconds FROM recipe_results WHERE batch_run_id = {mark}"
    f" GROUP BY ecosystem, {_PLATFORM}, result, coalesce(stage, '')"
)
_HEADER = "SELECT passed, failed, skipped, macos_minutes, linux_minutes FROM batch_runs WHERE id = {mark}"
_UNLISTED = (
    "SELECT platform, coalesce(ecosystem, ''), passed, failed, skipped FROM run_unlisted"
    " WHERE batch_run_id = {mark}"
)
# One run's passed/failed validation per ecosystem, recipe and platform; listed twice, failed wins.
_RUN_RESULTS = (
    f"SELECT ecosystem, recipe_name, {_PLATFORM} AS platform, min(result) AS result FROM recipe_results"
    f" WHERE batch_run_id = {{mark}} AND result IN ('passed', 'failed') AND {_VALIDATION}"
    f" GROUP BY ecosystem, recipe_name, {_PLATFORM}"
)
# Each change, with how many runs of its ecosystem the result it ends had lasted (answer_rollups.py).
_FLIPS = (  # params: run id, three times
    "INSERT INTO recipe_flips (batch_run_id, ecosystem, recipe_name, platform, result, stable_runs)"
    " SELECT {mark}, this.ecosystem, this.recipe_name, this.platform, this.result, ("
    + RUNS_BETWEEN.format(
        ecosystem="this.ecosystem", since="coalesce(latest.since_run_id, 0)", until="{mark}"
    )
    + f") FROM ({_RUN_RESULTS}) this JOIN recipe_latest latest"
    " ON latest.ecosystem = this.ecosystem AND latest.recipe_name = this.recipe_name"
    " AND latest.platform = this.platform WHERE latest.result <> this.result"
)
_LATEST = (  # params: run id, twice. `WHERE true` keeps SQLite from reading ON CONFLICT as a join.
    "INSERT INTO recipe_latest (ecosystem, recipe_name, platform, result, since_run_id)"
    " SELECT this.ecosystem, this.recipe_name, this.platform, this.result, {mark}"
    f" FROM ({_RUN_RESULTS}) this WHERE true"
    " ON CONFLICT (ecosystem, recipe_name, platform) DO UPDATE SET result = excluded.result,"
    " since_run_id = excluded.since_run_id WHERE recipe_latest.result <> excluded.result"
)
_INSERT_ECOSYSTEM = (
    "INSERT INTO run_ecosystems (batch_run_id, ecosystem, passed, failed, skipped, generation_failed,"
    " macos_minutes, linux_minutes) VALUES ({mark}, {mark}, {mark}, {mark}, {mark}, {mark}, {mark}, {mark})"
)
_INSERT_PLATFORM = (
    "INSERT INTO run_platforms (batch_run_id, ecosystem, platform, passed, failed, skipped, seconds)"
    " VALUES ({mark}, {mark}, {mark}, {mark}, {mark}, {mark}, {mark})"
)
_OUTCOMES = ("passed", "failed", "skipped")


def roll_up_run(db: Any, mark: str, run_id: int, ecosystem: str) -> None:
    """Add one stored batch to the roll-ups (inside the caller's transaction); `ecosystem` is its label.

    Result changes are found against `recipe_latest` before it is updated, and only changed
    results are written there, so a batch like the one before writes almost nothing to it.
    """
    for statement in _FAILURES:
        db.execute(statement.format(mark=mark), (run_id,))
    platforms, ecosystems = _tally(db, mark, run_id, ecosystem)
    if platforms:
        db.cursor().executemany(_INSERT_PLATFORM.format(mark=mark), platforms)
    db.cursor().executemany(_INSERT_ECOSYSTEM.format(mark=mark), ecosystems)
    db.execute(_FLIPS.format(mark=mark), (run_id,) * 3)
    db.execute(_LATEST.format(mark=mark), (run_id, run_id))
    roll_up_answers(db, mark, run_id)


Rows = list[tuple[Any, ...]]


def _job_of(platforms: set[str]) -> dict[tuple[str, str], str]:
    """(operating system, architecture) -> a run summary's platform job (`linux-x86_64`)."""
    return {(name.split("-")[0], name.split("-")[-1]): name for name in platforms}


def _tally(db: Any, mark: str, run_id: int, label: str) -> tuple[Rows, Rows]:
    """The run's run_platforms and run_ecosystems rows, from its rows' counts and its unlisted results.

    Where a run summary added unlisted results on a platform job (`linux-x86_64`), the passes of its
    fine platforms (`linux-alpine-musl-x86_64`) are not known, only the job's: the rows of those
    platforms count under the job there, so no fine platform shows a rate made of its failures alone.
    """
    unlisted = db.execute(_UNLISTED.format(mark=mark), (run_id,)).fetchall()
    jobs = _job_of({row[0] for row in unlisted})
    # Per ecosystem and platform: passed, failed, skipped, seconds.
    cells: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0, 0, 0.0])
    generation: dict[str, int] = defaultdict(int)
    named: set[str] = set()
    for row in db.execute(_COUNTS.format(mark=mark), (run_id,)).fetchall():
        eco, platform, result, stage, count, seconds = row
        named.add(eco)
        if stage == GENERATION:
            generation[eco] += count if result == "failed" else 0
            continue
        parts = platform.split("-")
        cell = cells[eco, jobs.get((parts[0], parts[-1]), platform) if jobs and platform else platform]
        if result in _OUTCOMES:
            cell[_OUTCOMES.index(result)] += count
        cell[3] += seconds or 0.0
    for platform, named_eco, *counts in unlisted:
        eco = named_eco or label
        named.add(eco)
        cell = cells[eco, platform]
        for position, count in enumerate(counts):
            cell[position] += count
    platforms = [(run_id, eco, platform, *cell) for (eco, platform), cell in cells.items()]
    header = db.execute(_HEADER.format(mark=mark), (run_id,)).fetchone()
    if len(named) <= 1:  # one ecosystem: the batch's own account, as the Worker stores it
        eco = named.pop() if named else label
        return platforms, [(run_id, eco, *header[:3], generation[eco], header[3], header[4])]
    totals: dict[str, list[float]] = {eco: [0, 0, 0, 0.0, 0.0] for eco in named}
    for (eco, platform), cell in cells.items():
        total = totals[eco]
        for position in range(3):
            total[position] += cell[position]
        lowered = platform.lower()
        if lowered.startswith(_MACOS_PREFIXES):
            total[3] += cell[3] / 60
        elif lowered.startswith("linux"):
            total[4] += cell[3] / 60
    ecosystems = [
        (run_id, eco, *map(int, total[:3]), generation[eco], round(total[3], 4), round(total[4], 4))
        for eco, total in totals.items()
    ]
    return platforms, ecosystems
