"""`GET /metrics`: each ecosystem's latest batch in the Prometheus text format, via prometheus-client.

Read from the database at every scrape (two small queries on the roll-ups), so any number of
server processes answer alike and nothing is kept in memory between scrapes. Alerts this serves:

    time() - batch_metrics_last_batch_timestamp_seconds > 36 * 3600   # no batch for 36 hours
    batch_metrics_last_batch_success_rate < 0.9                        # success rate dropped
    batch_metrics_ecosystem_stale == 1                                 # quieter than usual
    batch_metrics_rollups_set_aside > 0                                # a batch's roll-up failed

The roll-up backlog comes from the same scrape: batches stored but not yet on the dashboard, and
those among them whose roll-up failed (set aside, retried later).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from batch_metrics.endpoint.answers import dashboard
from batch_metrics.endpoint.storage import SQLStorage

_RESULTS = ("passed", "failed", "skipped")


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


def exposition(storage: SQLStorage, accept: str | None, stale_after: timedelta | None) -> tuple[bytes, str]:
    """The scrape's body and content type (text format, or OpenMetrics when the scraper asks for it)."""
    registry = CollectorRegistry(auto_describe=False)
    statuses = dashboard.ecosystems(storage, dashboard.Window(), stale_after)
    registry.register(_LatestBatches(statuses, storage.backlog()))
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type
