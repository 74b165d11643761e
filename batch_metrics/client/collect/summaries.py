"""Run summaries: the pipeline's own account of a batch, one object per batch.

tsuku's merge job writes `data/metrics/batch-runs-<ts>.jsonl`: one pretty-printed object with
`batch_id`, `ecosystems{}` (older: `ecosystem`), `total`, `generated`, `platforms{<platform job>:
{tested, passed, failed}}`, `merged`, `excluded`, `constrained`, `timestamp` and
`duration_seconds` (the older `batch-runs.jsonl` holds them one after another). A summary adds
no row: it is kept in `Collection.summaries`, and the payload builder checks the rows against it
and counts what it adds (client.reconcile; docs/tsuku.md). Each value is its own boundary: a
malformed one is a warning naming its line.
"""

from __future__ import annotations

from pydantic_core import ValidationError

from batch_metrics.client.collect.bounds import bound_name
from batch_metrics.client.collect.rows import FileRows, Summary
from batch_metrics.client.collect.source import Source, keys_of, line_values
from batch_metrics.models import MAX_SOURCE, RUN_SUMMARY_VALIDATOR, first_problem


class RunSummaryCollector:
    name = "run-summary"

    def sniff(self, source: Source) -> bool:
        return source.first_has("batch_id", "platforms")

    def read(self, source: Source, rows: FileRows) -> None:
        for line, value in line_values(source, rows):
            if not isinstance(value, dict) or not isinstance(value.get("platforms"), dict):
                rows.warn(line, f"not a run summary with a `platforms` object ({keys_of(value)}); skipped")
                continue
            try:
                summary = RUN_SUMMARY_VALIDATOR.validate_python(value)
            except ValidationError as error:
                rows.warn(line, f"invalid run summary: {first_problem(error, 'summary')}; skipped")
                continue
            summary["source"] = bound_name(rows.display, MAX_SOURCE)
            rows.collection.summaries.append(Summary(rows.display, line, summary))
