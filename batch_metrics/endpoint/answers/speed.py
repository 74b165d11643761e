"""How slow and how costly: the slowest recipes per platform, durations over time, and runner minutes
against the operator's weekly budgets (answers/targets.py).

The slowest are read from `run_slowest` (each run's 10 longest validations per ecosystem and
platform): a recipe's mean is over the runs where it was among them. Durations per day are the
mean seconds of a platform validation, from `run_platforms`. Minutes are the batches' own
(`run_ecosystems`: `macos_minutes` and `linux_minutes`, as the minutes chart counts them) over the
last 7 days, whatever the window, since the budgets are weekly; per platform they are the rows'
durations.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from batch_metrics.endpoint.answers.dashboard import MAX_SECONDS, Window, within
from batch_metrics.endpoint.answers.targets import BUDGET_DAYS, SYSTEMS, Targets
from batch_metrics.endpoint.storage import SQLStorage
from batch_metrics.models import MAX_MINUTES

PER_PLATFORM = 5


def _slowest_first(row: dict[str, Any]) -> tuple[float, str]:
    return -row["mean_seconds"], row["recipe_name"]


def slowest(storage: SQLStorage, window: Window, per_platform: int = PER_PLATFORM) -> list[dict[str, Any]]:
    """Per ecosystem and platform, the `per_platform` recipes with the longest mean duration in the window."""
    where, params = window.runs("s.ecosystem")
    rows = storage.query(
        "SELECT s.ecosystem, s.platform, s.recipe_name, count(*) AS runs, avg(s.seconds) AS mean_seconds,"
        " max(s.seconds) AS longest_seconds, max(s.batch_run_id) AS last_run_id"
        f" FROM run_slowest s JOIN batch_runs r ON r.id = s.batch_run_id WHERE {where}"
        " GROUP BY s.ecosystem, s.platform, s.recipe_name",
        params,
    )
    ranked: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        ranked[row["ecosystem"], row["platform"]].append(row)
    return [
        {"ecosystem": ecosystem, "platform": platform, "recipes": [
            {"recipe_name": row["recipe_name"], "runs": int(row["runs"]),
             "mean_seconds": round(row["mean_seconds"], 2),
             "longest_seconds": round(row["longest_seconds"], 2),
             "last_run_id": int(row["last_run_id"])}
            for row in sorted(found, key=_slowest_first)[:per_platform]
        ]}
        for (ecosystem, platform), found in sorted(ranked.items())
    ]  # fmt: skip


def durations(storage: SQLStorage, window: Window) -> list[dict[str, Any]]:
    """Mean seconds per platform validation per UTC day: per ecosystem, or per platform of the window's
    one ecosystem."""
    where, params = window.runs("p.ecosystem")
    line = "p.platform" if window.ecosystem else "p.ecosystem"
    rows = storage.query(
        f"SELECT {line} AS line, substr(r.started_at, 1, 10) AS day, sum(p.passed + p.failed + p.skipped)"
        f" AS results, sum({within('p.seconds', MAX_SECONDS)}) AS seconds FROM batch_runs r"
        f" JOIN run_platforms p ON p.batch_run_id = r.id WHERE {where}"
        f" GROUP BY {line}, substr(r.started_at, 1, 10) ORDER BY line, day",
        params,
    )
    return [
        {"line": row["line"], "day": row["day"], "results": int(row["results"]),
         "mean_seconds": round(row["seconds"] / row["results"], 2) if row["results"] else 0.0}
        for row in rows
    ]  # fmt: skip


def minutes(storage: SQLStorage, window: Window, targets: Targets) -> dict[str, Any]:
    """The last BUDGET_DAYS' runner minutes per ecosystem and operating system and per platform, and each
    operating system's total against its weekly budget (when one is set)."""
    week = Window(days=BUDGET_DAYS, ecosystem=window.ecosystem, now=window.now)
    where, params = week.runs("e.ecosystem")
    per_ecosystem = storage.query(
        f"SELECT e.ecosystem, sum({within('e.macos_minutes', MAX_MINUTES)}) AS macos,"
        f" sum({within('e.linux_minutes', MAX_MINUTES)}) AS linux FROM run_ecosystems e"
        f" JOIN batch_runs r ON r.id = e.batch_run_id WHERE {where}"
        " GROUP BY e.ecosystem ORDER BY e.ecosystem",
        params,
    )
    where, params = week.runs("p.ecosystem")
    per_platform = storage.query(
        f"SELECT p.ecosystem, p.platform, sum({within('p.seconds', MAX_SECONDS)}) AS seconds"
        " FROM run_platforms p"
        f" JOIN batch_runs r ON r.id = p.batch_run_id WHERE {where} GROUP BY p.ecosystem, p.platform"
        " ORDER BY p.ecosystem, p.platform",
        params,
    )
    totals = {system: sum(row[system] for row in per_ecosystem) for system in SYSTEMS}
    return {
        "days": BUDGET_DAYS, "since": week.since,
        "systems": [
            {"os": system, "minutes": round(totals[system], 2), "budget": targets.minutes_budget.get(system),
             "over": system in targets.minutes_budget and totals[system] > targets.minutes_budget[system]}
            for system in SYSTEMS
        ],
        "ecosystems": [
            {"ecosystem": row["ecosystem"], "macos_minutes": round(row["macos"], 2),
             "linux_minutes": round(row["linux"], 2)}
            for row in per_ecosystem
        ],
        "platforms": [
            {"ecosystem": row["ecosystem"], "platform": row["platform"],
             "minutes": round(row["seconds"] / 60, 2)}
            for row in per_platform
        ],
    }  # fmt: skip
