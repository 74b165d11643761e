"""`GET /metrics`: each ecosystem's latest batch in the Prometheus text format, via prometheus-client.

Read from the database at every scrape (a few small queries on the roll-ups), so any number of
server processes answer alike and nothing is kept in memory between scrapes. The alert rules of
`deploy/alerts.yml` read it: a success rate under its ecosystem's target, a stale ecosystem, new
failures in the latest batch, runner minutes over the weekly budget, a roll-up set aside.

The roll-up backlog comes from the same scrape: batches stored but not yet on the dashboard, and
those among them whose roll-up failed (set aside, retried later).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from batch_metrics.endpoint.answers import changes, dashboard, flaky, speed
from batch_metrics.endpoint.answers.targets import BUDGET_DAYS, SYSTEMS, Targets
from batch_metrics.endpoint.storage import SQLStorage

_RESULTS = ("passed", "failed", "skipped")
MAX_FLAKY = 100_000  # every flaky recipe counts (the page shows the first few)
_CHANGED = {
    "new_failures": "Recipe x platform results that failed in the ecosystem's latest compared batch and "
    "not in the one before it.",
    "fixed": "Recipe x platform results that failed in the batch before and passed in the latest one.",
    "still_failing": "Recipe x platform results that failed in both of the ecosystem's latest batches.",
}


class _LatestBatches:
    """A collector over rows of `dashboard.ecosystems` and the roll-up backlog (fetched once per scrape)."""

    def __init__(self, statuses: list[dict[str, Any]], backlog: tuple[int, int]) -> None:
        self.statuses = statuses
        self.backlog = backlog

    def collect(self) -> Iterator[Metric]:
        started = GaugeMetricFamily(
            "batch_metrics_last_batch_timestamp_seconds",
            "started_at of the ecosystem's latest batch, as a Unix time.",
            labels=["ecosystem"],
        )
        rate = GaugeMetricFamily(
            "batch_metrics_last_batch_success_rate",
            "passed / (passed + failed) of the ecosystem's latest batch, 0-1.",
            labels=["ecosystem"],
        )
        results = GaugeMetricFamily(
            "batch_metrics_last_batch_results",
            "Platform validations of the ecosystem's latest batch, by result.",
            labels=["ecosystem", "result"],
        )
        red = GaugeMetricFamily(
            "batch_metrics_runs_since_green",
            "Batches that validated something since the ecosystem's last green one (passes, no failure).",
            labels=["ecosystem"],
        )
        generation = GaugeMetricFamily(
            "batch_metrics_last_batch_generation_failures",
            "Recipes of the ecosystem's latest batch that failed to be generated (not platform validations).",
            labels=["ecosystem"],
        )
        stale = GaugeMetricFamily(
            "batch_metrics_ecosystem_stale",
            "1 when the ecosystem has sent no batch for longer than its usual interval (or --stale-after).",
            labels=["ecosystem"],
        )
        for status in self.statuses:
            name = status["ecosystem"]
            latest = status["latest_run"]
            moment = dashboard.parse_time(latest["started_at"])
            if moment is not None:  # stored text that is not a time has no timestamp to report
                started.add_metric([name], moment.timestamp())
            if latest["passed"] + latest["failed"]:  # a batch that validated nothing has no rate to alert on
                rate.add_metric([name], latest["success_rate"])
            for result in _RESULTS:
                results.add_metric([name, result], latest[result])
            generation.add_metric([name], latest["generation_failed"])
            red.add_metric([name], status["runs_since_green"])
            stale.add_metric([name], 1 if status["stale"] else 0)
        yield from (started, rate, results, generation, red, stale)
        queued, set_aside = self.backlog
        yield GaugeMetricFamily(
            "batch_metrics_rollups_queued",
            "Stored batches not yet added to the dashboard's roll-ups (set aside ones included).",
            value=queued,
        )
        yield GaugeMetricFamily(
            "batch_metrics_rollups_set_aside",
            "Stored batches whose roll-up failed: kept, retried later, not on the dashboard until then.",
            value=set_aside,
        )


class _Answers:
    """The figures the alert rules of deploy/alerts.yml compare: what changed in each ecosystem's latest
    comparison, its success-rate target, the last 7 days' runner minutes against the weekly budgets, and
    flaky recipes by each definition. Labels are ecosystems and operating systems only, never recipes."""

    def __init__(self, storage: SQLStorage, statuses: list[dict[str, Any]], targets: Targets) -> None:
        week = dashboard.Window(days=BUDGET_DAYS)
        self.statuses, self.targets = statuses, targets
        self.changes = changes.latest_counts(storage)
        self.minutes = speed.minutes(storage, week, targets)
        self.flaky = {
            "across_runs": Counter(
                row["ecosystem"] for row in flaky.across_runs(storage, week, limit=MAX_FLAKY)
            ),
            "within_run": Counter(
                row["ecosystem"] for row in flaky.within_run(storage, week, limit=MAX_FLAKY)
            ),
        }

    def collect(self) -> Iterator[Metric]:
        for name, what in _CHANGED.items():
            family = GaugeMetricFamily(f"batch_metrics_last_batch_{name}", what, labels=["ecosystem"])
            for row in self.changes:
                family.add_metric([row["ecosystem"]], int(row[name]))
            yield family
        target = GaugeMetricFamily(
            "batch_metrics_success_rate_target",
            "The success rate the ecosystem should keep (serve --success-target), 0-1.",
            labels=["ecosystem"],
        )
        for status in self.statuses:
            target.add_metric([status["ecosystem"]], self.targets.success_target(status["ecosystem"]))
        yield target
        spent = GaugeMetricFamily(
            "batch_metrics_runner_time_7d_seconds",
            "Runner time of the ecosystem's batches started in the last 7 days (their minutes), by operating "
            "system.",
            labels=["ecosystem", "os"],
        )
        for row in self.minutes["ecosystems"]:
            for system in SYSTEMS:
                spent.add_metric([row["ecosystem"], system], row[f"{system}_minutes"] * 60)
        yield spent
        budget = GaugeMetricFamily(
            "batch_metrics_runner_weekly_budget_seconds",
            "The operator's weekly runner-time budget (serve --minutes-budget, in minutes), by OS.",
            labels=["os"],
        )
        for system, minutes in sorted(self.targets.minutes_budget.items()):
            budget.add_metric([system], minutes * 60)
        yield budget
        found = GaugeMetricFamily(
            "batch_metrics_flaky_recipes",
            "Recipes flaky in the last 7 days: across runs (changes between passed and failed) or within a "
            "run (passed after retries).",
            labels=["ecosystem", "definition"],
        )
        for definition, counts in self.flaky.items():
            for ecosystem, count in sorted(counts.items()):
                found.add_metric([ecosystem, definition], count)
        yield found


def exposition(
    storage: SQLStorage, accept: str | None, stale_after: timedelta | None, targets: Targets | None = None
) -> tuple[bytes, str]:
    """The scrape's body and content type (text format, or OpenMetrics when the scraper asks for it)."""
    registry = CollectorRegistry(auto_describe=False)
    statuses = dashboard.ecosystems(storage, dashboard.Window(), stale_after)
    registry.register(_LatestBatches(statuses, storage.backlog()))
    registry.register(_Answers(storage, statuses, targets or Targets()))
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type
