"""Failure records: one `{schema_version, ecosystem, environment, updated_at, failures[]}` per line.

tsuku's generate job writes them for the packages it failed to turn into recipes, so each entry
of `failures` is one failed row of the **generation** stage (`stage: generation`: counted apart
from platform validation, docs/tsuku.md): the recipe is its `package_id` after the
`<ecosystem>:` prefix, the platform the record's `environment`, the category tsuku's canonical
one, with the entry's `subcategory` (else one by tsuku's rules) and `blocked_by` as fields. A line
of tsuku's other shape (a per-record line, as in its older `<ecosystem>.jsonl`) is read as one.
A line is the boundary: whatever one holds costs that line only.
"""

from __future__ import annotations

from typing import Any

from batch_metrics.client.collect.bounds import bound_message
from batch_metrics.client.collect.categories import canonical, subcategory
from batch_metrics.client.collect.rows import FileRows, why
from batch_metrics.client.collect.source import Source, keys_of, line_values
from batch_metrics.client.collect.validation import add_details, record_row, text_of

GENERATION = "generation"


class FailureRecordsCollector:
    name = "failure-records"

    def sniff(self, source: Source) -> bool:
        return source.first_has("failures", "schema_version")

    def read(self, source: Source, rows: FileRows) -> None:
        for line, record in line_values(source, rows):
            kept = len(rows.rows)
            try:
                read_failure_line(line, record, rows)
            except Exception as error:
                del rows.rows[kept:], rows.lines[kept:]
                rows.warn(line, f"cannot be read ({why(error)}); skipped")


def read_failure_line(line: int, record: Any, rows: FileRows) -> None:
    """One line of a tsuku failures file: a failure record, or a per-record line (`recipe`, `platform`).

    tsuku's older `data/failures/<ecosystem>.jsonl` holds both, and its own dashboard reads each line
    by its shape (failures.go), so a line of the other shape is read as such, not refused.
    """
    failures = record.get("failures") if isinstance(record, dict) else None
    if not isinstance(failures, list):
        row = record_row(line, record, rows) if isinstance(record, dict) and "recipe" in record else None
        if isinstance(row, dict):
            rows.add(line, row)
        else:
            reason = row or f"not a failure record with a `failures` array ({keys_of(record)})"
            rows.warn(line, f"{reason}; skipped")
        return
    rows.stamp(line, record.get("updated_at"))
    for position, failure in enumerate(failures, 1):
        if isinstance(failure, dict):
            rows.add(line, _row(line, record, failure, rows))
        else:
            rows.warn(line, f"failures item {position}: found {keys_of(failure)}; skipped")


def _row(line: int, record: dict[str, Any], failure: dict[str, Any], rows: FileRows) -> dict[str, Any]:
    package_id = failure.get("package_id")
    prefix, name = "", package_id
    if isinstance(package_id, str) and ":" in package_id:
        prefix, name = package_id.split(":", 1)
    message = failure.get("message")
    text = text_of(message)
    rows.stamp(line, failure.get("timestamp"))
    row = {
        "recipe_name": name,
        "ecosystem": rows.name_ecosystem(record.get("ecosystem") or prefix),
        "result": "failed",
        "error_category": canonical(failure.get("category")),
        "error_message": bound_message(text, rows.limit) if isinstance(message, str) else message,
        "platform": record.get("environment"),
        "stage": GENERATION,
    }
    add_details(
        row, text_of(failure.get("subcategory")) or subcategory(text, None), failure.get("blocked_by")
    )
    return row
