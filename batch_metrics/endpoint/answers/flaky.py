"""Flaky, by two definitions shown apart: across runs, and within a run (docs/dashboard.md#flaky).

- **Across runs**: a recipe whose result on a platform changed between passed and failed at least
  twice in the window, run after run (`recipe_flips`). One change is a break or a fix, not
  flakiness. The count **resets** once the result has held for RESET_RUNS runs of its ecosystem:
  changes before such a stable stretch no longer count, and a recipe stable for that long now is
  not flaky, whatever it did earlier in the window.
- **Within a run**: a validation that passed after retries (`attempts > 1`: validation results'
  attempts, JUnit's `flakyFailure`/`flakyError` and repeated testcases; `run_retried`).

The rates per ecosystem put both beside the failure rate: failed and passed-after-retries over the
window's platform validations.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from batch_metrics.endpoint.answers.dashboard import TOP, Window
from batch_metrics.endpoint.storage import SQLStorage
from batch_metrics.endpoint.storage.answer_rollups import RESET_RUNS, RUNS_BETWEEN

_PAIR = "{a}.ecosystem = {b}.ecosystem AND {a}.recipe_name = {b}.recipe_name AND {a}.platform = {b}.platform"
# The changes of the pair's current episode: at or after its last change that ended a stable stretch
# (the predicate is the partial index's, idx_recipe_flips_reset, so each pair's is one seek).
_EPISODE = (
    "x.batch_run_id >= coalesce((SELECT max(y.batch_run_id) FROM recipe_flips y WHERE "
    + _PAIR.format(a="y", b="x")
    + f" AND y.stable_runs >= {RESET_RUNS}), 0)"
)
# Whether the pair's current result has held for RESET_RUNS runs: then the episode is over.
_STABLE_NOW = RUNS_BETWEEN.format(
    ecosystem="l.ecosystem", since="coalesce(l.since_run_id, 0)", until="{mark}"
)


def _pairs(storage: SQLStorage, window: Window) -> list[dict[str, Any]]:
    """Per ecosystem, recipe and platform: its changes in the window within its current episode."""
    where, params = window.runs("x.ecosystem")
    return storage.query(
        "SELECT f.* FROM (SELECT x.ecosystem, x.recipe_name, x.platform, count(*) AS flips,"
        " max(r.started_at) AS last_flip_at FROM recipe_flips x JOIN batch_runs r ON r.id = x.batch_run_id"
        f" WHERE {where} AND {_EPISODE} GROUP BY x.ecosystem, x.recipe_name, x.platform) f"
        f" JOIN recipe_latest l ON {_PAIR.format(a='l', b='f')} WHERE ({_STABLE_NOW}) < {RESET_RUNS}",
        [*params, 2**62],
    )


def across_runs(storage: SQLStorage, window: Window, limit: int = TOP) -> list[dict[str, Any]]:
    """Recipes with at least two changes between passed and failed in the window since their last reset,
    the most changes first: their platforms, and when they last changed."""
    recipes: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for pair in _pairs(storage, window):
        recipes[pair["ecosystem"], pair["recipe_name"]].append(pair)
    found = [
        {"ecosystem": ecosystem, "recipe_name": recipe, "flips": sum(int(pair["flips"]) for pair in pairs),
         "platforms": len(pairs), "last_flip_at": max(pair["last_flip_at"] for pair in pairs),
         "platform_names": sorted(pair["platform"] for pair in pairs)}
        for (ecosystem, recipe), pairs in recipes.items()
    ]  # fmt: skip
    found = [entry for entry in found if entry["flips"] >= 2]
    found.sort(key=lambda entry: (-entry["flips"], entry["ecosystem"], entry["recipe_name"]))
    return found[:limit]


def within_run(storage: SQLStorage, window: Window, limit: int = TOP) -> list[dict[str, Any]]:
    """Recipes that passed after retries in the window's runs, the most such results first."""
    where, params = window.runs("x.ecosystem")
    rows = storage.query(
        "SELECT x.ecosystem, x.recipe_name, count(*) AS retried_passes,"
        " count(DISTINCT x.batch_run_id) AS runs,"
        " count(DISTINCT x.platform) AS platforms, max(x.attempts) AS most_attempts,"
        " max(r.started_at) AS last_seen_at, max(x.batch_run_id) AS last_run_id"
        " FROM run_retried x JOIN batch_runs r ON r.id = x.batch_run_id"
        f" WHERE {where} AND x.result = 'passed' GROUP BY x.ecosystem, x.recipe_name"
        " ORDER BY retried_passes DESC, x.ecosystem, x.recipe_name LIMIT {mark}",
        [*params, limit],
    )
    return [
        {**row, **{name: int(row[name]) for name in ("retried_passes", "runs", "platforms", "most_attempts",
                                                     "last_run_id")}}
        for row in rows
    ]  # fmt: skip


def rates(storage: SQLStorage, window: Window) -> list[dict[str, Any]]:
    """Per ecosystem over the window: platform validations, failed ones, passed after retries, and both
    as rates of the validations."""
    where, params = window.runs("e.ecosystem")
    validated = storage.query(
        "SELECT e.ecosystem, sum(e.passed + e.failed) AS validations, sum(e.failed) AS failed"
        f" FROM run_ecosystems e JOIN batch_runs r ON r.id = e.batch_run_id WHERE {where}"
        " GROUP BY e.ecosystem ORDER BY e.ecosystem",
        params,
    )
    where, params = window.runs("x.ecosystem")
    retried = {
        row["ecosystem"]: int(row["passes"])
        for row in storage.query(
            "SELECT x.ecosystem, count(*) AS passes FROM run_retried x"
            " JOIN batch_runs r ON r.id = x.batch_run_id"
            f" WHERE {where} AND x.result = 'passed' GROUP BY x.ecosystem",
            params,
        )
    }
    answer = []
    for row in validated:
        total, failed, passes = int(row["validations"]), int(row["failed"]), retried.get(row["ecosystem"], 0)
        answer.append({
            "ecosystem": row["ecosystem"], "validations": total, "failed": failed,
            "passed_after_retries": passes,
            "failure_rate": round(failed / total, 4) if total else 0.0,
            "flake_rate": round(passes / total, 4) if total else 0.0,
        })  # fmt: skip
    return answer
