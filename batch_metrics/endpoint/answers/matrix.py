"""Where: the failing recipes x their platforms, for one run and over a window, and the platform-only ones.

A recipe is in a run's matrix when one of its platform validations failed there; each cell is its
result on that platform (`run_failure_cells`). It fails *only on some platforms* when it also
passed on another in the same run ("passes on glibc, fails only on musl arm64"). Over a window a
cell counts, per platform, the runs in which the recipe failed somewhere: how often it failed,
passed or was skipped on that platform then. Read from the roll-ups (storage/answer_rollups.py).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from batch_metrics.endpoint.answers.dashboard import Window
from batch_metrics.endpoint.storage import SQLStorage

MAX_RUN_RECIPES = 500
TOP = 25
_OUTCOMES = ("failed", "passed", "skipped")


def run_matrix(storage: SQLStorage, run_id: int) -> dict[str, Any]:
    """The run's failing recipes (the first MAX_RUN_RECIPES by ecosystem and name), each on every platform."""
    recipes = storage.query(
        "SELECT ecosystem, recipe_name, failed_on, passed_on FROM run_failure_spread"
        " WHERE batch_run_id = {mark}"
        f" ORDER BY ecosystem, recipe_name LIMIT {MAX_RUN_RECIPES + 1}",
        [run_id],
    )
    truncated = len(recipes) > MAX_RUN_RECIPES
    recipes = recipes[:MAX_RUN_RECIPES]
    cells: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    if recipes:
        last = recipes[-1]
        rows = storage.query(
            "SELECT ecosystem, recipe_name, platform, result FROM run_failure_cells"
            " WHERE batch_run_id = {mark}"
            " AND (ecosystem < {mark} OR (ecosystem = {mark} AND recipe_name <= {mark}))",
            [run_id, last["ecosystem"], last["ecosystem"], last["recipe_name"]],
        )
        for row in rows:
            cells[row["ecosystem"], row["recipe_name"]][row["platform"]] = row["result"]
    platforms = sorted({platform for found in cells.values() for platform in found})
    return {
        "run_id": run_id, "platforms": platforms, "truncated": truncated,
        "recipes": [
            {"ecosystem": row["ecosystem"], "recipe_name": row["recipe_name"],
             "platform_only": int(row["passed_on"]) > 0,
             "cells": [{"platform": platform, "result": result}
                       for platform, result in sorted(cells[row["ecosystem"], row["recipe_name"]].items())]}
            for row in recipes
        ],
    }  # fmt: skip


def _recipes(storage: SQLStorage, window: Window, platform_only: bool, limit: int) -> list[dict[str, Any]]:
    """The window's failing recipes with their failing runs, the most failures first; with `platform_only`,
    those that passed on another platform in a run where they failed, the most such runs first."""
    where, params = window.runs("s.ecosystem")
    partial = "sum(CASE WHEN s.passed_on > 0 THEN 1 ELSE 0 END)"
    having, order = ("", "failures DESC")
    if platform_only:
        having, order = f"HAVING {partial} > 0", "platform_only_runs DESC, failures DESC"
    return storage.query(
        "SELECT s.ecosystem, s.recipe_name, count(*) AS failing_runs, sum(s.failed_on) AS failures,"
        f" {partial} AS platform_only_runs, max(s.batch_run_id) AS last_run_id,"
        " max(r.started_at) AS last_failed_at"
        f" FROM run_failure_spread s JOIN batch_runs r ON r.id = s.batch_run_id WHERE {where}"
        f" GROUP BY s.ecosystem, s.recipe_name {having} ORDER BY {order}, s.ecosystem, s.recipe_name"
        " LIMIT {mark}",
        [*params, limit],
    )


def _cells(storage: SQLStorage, window: Window, recipes: list[tuple[str, str]]) -> dict[tuple[str, str], Any]:
    """Per recipe, per platform: how many of the window's runs in which it failed somewhere it failed,
    passed and was skipped on that platform."""
    found: dict[tuple[str, str], dict[str, dict[str, int]]] = defaultdict(dict)
    if not recipes:
        return found
    where, params = window.runs("c.ecosystem")
    which = " OR ".join(["(c.ecosystem = {mark} AND c.recipe_name = {mark})"] * len(recipes))
    rows = storage.query(
        "SELECT c.ecosystem, c.recipe_name, c.platform,"
        + ", ".join(f" sum(CASE WHEN c.result = '{name}' THEN 1 ELSE 0 END) AS {name}" for name in _OUTCOMES)
        + f" FROM run_failure_cells c JOIN batch_runs r ON r.id = c.batch_run_id WHERE ({which}) AND {where}"
        " GROUP BY c.ecosystem, c.recipe_name, c.platform",
        [*(value for recipe in recipes for value in recipe), *params],
    )
    for row in rows:
        found[row["ecosystem"], row["recipe_name"]][row["platform"]] = {
            name: int(row[name]) for name in _OUTCOMES
        }
    return found


def window_matrix(storage: SQLStorage, window: Window, limit: int = TOP) -> dict[str, Any]:
    """The window's most failing recipes and its platform-only failures, each with its cells per platform."""
    failing = _recipes(storage, window, False, limit)
    only = _recipes(storage, window, True, limit)
    cells = _cells(
        storage, window, list(dict.fromkeys((row["ecosystem"], row["recipe_name"]) for row in failing + only))
    )

    def entry(row: dict[str, Any]) -> dict[str, Any]:
        found = cells.get((row["ecosystem"], row["recipe_name"]), {})
        return {
            "ecosystem": row["ecosystem"], "recipe_name": row["recipe_name"],
            "failing_runs": int(row["failing_runs"]), "failures": int(row["failures"]),
            "platform_only_runs": int(row["platform_only_runs"]), "last_run_id": int(row["last_run_id"]),
            "last_failed_at": row["last_failed_at"],
            "failed_on": sorted(platform for platform, counts in found.items() if counts["failed"]),
            "passed_on": sorted(platform for platform, counts in found.items() if counts["passed"]),
            "cells": [{"platform": platform, **counts} for platform, counts in sorted(found.items())],
        }  # fmt: skip

    return {
        "days": window.days,
        "platforms": sorted({platform for found in cells.values() for platform in found}),
        "recipes": [entry(row) for row in failing],
        "platform_only": [entry(row) for row in only],
    }
