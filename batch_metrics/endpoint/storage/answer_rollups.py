"""The roll-ups behind the questions a pipeline's owner asks (migration 9): where, why, how slow, how flaky.

Like rollups.py's, each is made per run by `roll_up_answers`, off the upload's path, from that
run's rows only, and keyed by the rows' ecosystems:

- `run_failure_cells`: for each recipe that failed a platform validation in the run, its result on
  every platform it ran on: the recipe x platform matrix;
- `run_failure_spread`: per run and failing recipe, on how many platforms it failed and passed (a
  recipe that fails on some and passes on others fails *only* on some: a platform-only failure);
- `run_failure_reasons`: failed rows (both stages) per error category and subcategory, how many
  recipes, and the id of the first such row (its message is the group's example);
- `run_slowest`: per run, ecosystem and platform, its SLOWEST validations by duration;
- `run_retried`: validations that ran more than once (`attempts > 1`): passed after retries is
  flaky within a run, failed after them is a failure all the same;
- on `recipe_latest`, `since_run_id` (the run where the current result began) and on `recipe_flips`,
  `stable_runs` (how many runs of its ecosystem the result had lasted when it changed): the reset
  of flaky across runs (answers/flaky.py).

Migration 9 fills them for the runs already rolled up; queued runs get them when they are added.
"""

from __future__ import annotations

from typing import Any

SLOWEST = 10  # the slowest validations kept per run, ecosystem and platform
RESET_RUNS = 10  # a result that held this many runs of its ecosystem ends an episode of flakiness
_VALIDATION = "(stage IS NULL OR stage <> 'generation')"
_PLATFORM = "coalesce(platform, '')"
_TABLES = (
    """
CREATE TABLE run_failure_cells (
    batch_run_id {fk} NOT NULL REFERENCES batch_runs(id),
    ecosystem TEXT NOT NULL,
    recipe_name TEXT NOT NULL,
    platform TEXT NOT NULL,
    result TEXT NOT NULL,
    PRIMARY KEY (batch_run_id, ecosystem, recipe_name, platform)
);
CREATE INDEX idx_run_failure_cells_recipe ON run_failure_cells(ecosystem, recipe_name, batch_run_id);
CREATE TABLE run_failure_spread (
    batch_run_id {fk} NOT NULL REFERENCES batch_runs(id),
    ecosystem TEXT NOT NULL,
    recipe_name TEXT NOT NULL,
    failed_on INTEGER NOT NULL,
    passed_on INTEGER NOT NULL,
    PRIMARY KEY (batch_run_id, ecosystem, recipe_name)
);
CREATE TABLE run_failure_reasons (
    batch_run_id {fk} NOT NULL REFERENCES batch_runs(id),
    ecosystem TEXT NOT NULL,
    error_category TEXT NOT NULL,
    error_subcategory TEXT NOT NULL,
    failures INTEGER NOT NULL,
    recipes INTEGER NOT NULL,
    example_id {fk} NOT NULL,
    PRIMARY KEY (batch_run_id, ecosystem, error_category, error_subcategory)
);
CREATE INDEX idx_run_failure_reasons_group
    ON run_failure_reasons(ecosystem, error_category, error_subcategory, batch_run_id);
CREATE TABLE run_slowest (
    batch_run_id {fk} NOT NULL REFERENCES batch_runs(id),
    ecosystem TEXT NOT NULL,
    platform TEXT NOT NULL,
    recipe_name TEXT NOT NULL,
    seconds {real} NOT NULL,
    PRIMARY KEY (batch_run_id, ecosystem, platform, recipe_name)
);
CREATE TABLE run_retried (
    batch_run_id {fk} NOT NULL REFERENCES batch_runs(id),
    ecosystem TEXT NOT NULL,
    recipe_name TEXT NOT NULL,
    platform TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    result TEXT NOT NULL,
    PRIMARY KEY (batch_run_id, ecosystem, recipe_name, platform)
);
ALTER TABLE recipe_latest ADD COLUMN since_run_id {fk};
ALTER TABLE recipe_flips ADD COLUMN stable_runs INTEGER;
CREATE INDEX idx_recipe_flips_pair ON recipe_flips(ecosystem, recipe_name, platform, batch_run_id);
"""
    + (
        # The changes that ended a stable stretch: a pair's last one is one seek (answers/flaky.py).
        "CREATE INDEX idx_recipe_flips_reset ON recipe_flips(ecosystem, recipe_name, platform, batch_run_id)"
        f" WHERE stable_runs >= {RESET_RUNS};\n"
    )
)
# Per roll-up table: how a run's rows (those matching `{run}`) fill it. `{run}` is `batch_run_id =
# {mark}` for a run being added, or "every run already rolled up" in the migration.
_FILL = {
    # Each recipe's result per platform (failed before passed before skipped), kept for the recipes with a
    # failure: one pass and a sort, whatever the planner knows of the tables (no join it could misjudge).
    "run_failure_cells": (
        "INSERT INTO run_failure_cells (batch_run_id, ecosystem, recipe_name, platform, result)"
        " SELECT batch_run_id, ecosystem, recipe_name, platform, result FROM ("
        f"  SELECT batch_run_id, ecosystem, recipe_name, {_PLATFORM} AS platform, min(result) AS result,"
        "   min(min(result)) OVER (PARTITION BY batch_run_id, ecosystem, recipe_name) AS worst"
        " FROM recipe_results"
        f"  WHERE {{run}} AND result IN ('failed', 'passed', 'skipped') AND {_VALIDATION}"
        f"  GROUP BY batch_run_id, ecosystem, recipe_name, {_PLATFORM}) cells WHERE worst = 'failed'"
    ),
    "run_failure_spread": (
        "INSERT INTO run_failure_spread (batch_run_id, ecosystem, recipe_name, failed_on, passed_on)"
        " SELECT batch_run_id, ecosystem, recipe_name, sum(CASE WHEN result = 'failed' THEN 1 ELSE 0 END),"
        " sum(CASE WHEN result = 'passed' THEN 1 ELSE 0 END) FROM run_failure_cells"
        " WHERE {run} GROUP BY batch_run_id, ecosystem, recipe_name"
    ),
    "run_failure_reasons": (
        "INSERT INTO run_failure_reasons (batch_run_id, ecosystem, error_category, error_subcategory,"
        " failures, recipes, example_id) SELECT batch_run_id, ecosystem, coalesce(error_category, ''),"
        " coalesce(error_subcategory, ''), count(*), count(DISTINCT recipe_name), min(id) FROM recipe_results"
        " WHERE {run} AND result = 'failed'"
        " GROUP BY batch_run_id, ecosystem, coalesce(error_category, ''), coalesce(error_subcategory, '')"
    ),
    # Durations past the contract's limit (only an older database holds them) are no one's real time.
    "run_slowest": (
        "INSERT INTO run_slowest (batch_run_id, ecosystem, platform, recipe_name, seconds)"
        " SELECT batch_run_id, ecosystem, platform, recipe_name, seconds FROM ("
        "  SELECT batch_run_id, ecosystem, platform, recipe_name, seconds, row_number() OVER ("
        "   PARTITION BY batch_run_id, ecosystem, platform ORDER BY seconds DESC, recipe_name) AS n FROM ("
        f"   SELECT batch_run_id, ecosystem, {_PLATFORM} AS platform, recipe_name,"
        f"    max(duration_seconds) AS seconds FROM recipe_results WHERE {{run}} AND {_VALIDATION}"
        "    AND duration_seconds > 0 AND duration_seconds <= 1e7"
        f"    GROUP BY batch_run_id, ecosystem, {_PLATFORM}, recipe_name) longest"
        f" ) ranked WHERE n <= {SLOWEST}"
    ),
    "run_retried": (
        "INSERT INTO run_retried (batch_run_id, ecosystem, recipe_name, platform, attempts, result)"
        f" SELECT batch_run_id, ecosystem, recipe_name, {_PLATFORM}, max(attempts), min(result)"
        f" FROM recipe_results WHERE {{run}} AND attempts > 1 AND result IN ('failed', 'passed')"
        f" AND {_VALIDATION} GROUP BY batch_run_id, ecosystem, recipe_name, {_PLATFORM}"
    ),
}
_ROLLED_UP = "batch_run_id NOT IN (SELECT batch_run_id FROM rollup_queue)"
# The runs of an ecosystem from one run (included) to another (excluded), in the order they were rolled up.
RUNS_BETWEEN = (
    "SELECT count(*) FROM run_ecosystems e WHERE e.ecosystem = {ecosystem}"
    " AND e.batch_run_id >= {since} AND e.batch_run_id < {until}"
)
# For the results rolled up before migration 9: when the current result began (the last change, else
# the ecosystem's first run), and how long each earlier result had lasted when it changed.
_RESET_BACKFILL = (
    "UPDATE recipe_latest SET since_run_id = coalesce("
    " (SELECT max(f.batch_run_id) FROM recipe_flips f WHERE f.ecosystem = recipe_latest.ecosystem"
    "  AND f.recipe_name = recipe_latest.recipe_name AND f.platform = recipe_latest.platform),"
    " (SELECT min(e.batch_run_id) FROM run_ecosystems e WHERE e.ecosystem = recipe_latest.ecosystem), 0);\n"
    "UPDATE recipe_flips SET stable_runs = ("
    + RUNS_BETWEEN.format(
        ecosystem="recipe_flips.ecosystem",
        until="recipe_flips.batch_run_id",
        since="coalesce((SELECT max(p.batch_run_id) FROM recipe_flips p"
        " WHERE p.ecosystem = recipe_flips.ecosystem AND p.recipe_name = recipe_flips.recipe_name"
        " AND p.platform = recipe_flips.platform"
        " AND p.batch_run_id < recipe_flips.batch_run_id), 0)",
    )
    + ")"
)
MIGRATION = (
    _TABLES
    + "".join(f"{statement.replace('{run}', _ROLLED_UP)};\n" for statement in _FILL.values())
    + _RESET_BACKFILL
)


def roll_up_answers(db: Any, mark: str, run_id: int) -> None:
    """Add one run to these roll-ups (inside the caller's transaction, after rollups.py's own)."""
    one_run = f"batch_run_id = {mark}"
    for statement in _FILL.values():
        sql = statement.replace("{run}", one_run)
        db.execute(sql, (run_id,) * sql.count(mark))
