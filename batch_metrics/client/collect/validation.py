"""Validation results: a JSON array of `{recipe, platform, status, exit_code, attempts, blocked_by}`.

The array is a whole document: it counts all or nothing. `record_row` is the mapping of one
such record to a row, shared with the per-record lines of `ndjson`: both are tsuku's shapes,
so a failure's category is tsuku's canonical one and gets its subcategory (collect.categories).
"""

from __future__ import annotations

from typing import Any

from batch_metrics.client.collect.bounds import bound_message
from batch_metrics.client.collect.categories import canonical, subcategory
from batch_metrics.client.collect.jsonstream import Problem
from batch_metrics.client.collect.rows import FileRows, brief, normalise_result
from batch_metrics.client.collect.source import Source, keys_of


def record_message(exit_code: object, attempts: object, blocked_by: object) -> str | None:
    """`exit code <n> after <k> attempt(s) blocked by <recipes>`, as far as the record says."""
    parts = [] if exit_code is None else [f"exit code {exit_code}"]
    if attempts:
        parts.append(f"after {attempts} attempt(s)")
    if blocked_by:
        blocked = blocked_by if isinstance(blocked_by, list) else [blocked_by]
        parts.append("blocked by " + ", ".join(map(str, blocked)))
    return " ".join(parts) or None


def text_of(value: object) -> str | None:
    """A non-empty string as it is, else None."""
    return value if isinstance(value, str) and value else None


def add_details(row: dict[str, Any], subcategory: str | None, blocked_by: object) -> None:
    """A failure's subcategory and `blocked_by` (a list of names, whether the file gives a list or one
    name), each set only when there is one."""
    if subcategory:
        row["error_subcategory"] = subcategory
    if blocked_by:
        row["blocked_by"] = (
            [str(item) for item in blocked_by] if isinstance(blocked_by, list) else [str(blocked_by)]
        )


def record_row(line: int, record: dict[str, Any], rows: FileRows) -> dict[str, Any] | str:
    """A validation result or a per-record line as a row, or why it cannot be one."""
    status = record.get("status")
    exit_code = record.get("exit_code")
    if status is None:
        result = "passed" if exit_code == 0 else "failed"
    else:
        found = normalise_result(status)
        if found is None:
            return f"unknown status {brief(status, 40)} (expected pass, fail or skipped)"
        result = found
    row = {
        "recipe_name": record.get("recipe"),
        "ecosystem": rows.name_ecosystem(record.get("ecosystem")),
        "result": result,
        "platform": record.get("platform"),
    }
    # Keys are set only when there is a value: validating fewer keys is measurably faster.
    duration = record.get("duration_seconds")
    if duration is not None:
        row["duration_seconds"] = duration
    attempts = record.get("attempts")
    if type(attempts) is int and attempts > 1:  # one attempt is the rule: said only when it took more
        row["attempts"] = attempts
    if result == "failed":
        blocked_by = record.get("blocked_by")
        row["error_category"] = canonical(record.get("category")) or (
            "blocked" if blocked_by else None if exit_code is None else f"exit_code_{exit_code}"
        )
        found = text_of(record.get("subcategory")) or subcategory(text_of(record.get("message")), exit_code)
        add_details(row, found, blocked_by)
        message = record_message(exit_code, attempts, blocked_by)
        row["error_message"] = bound_message(message, rows.limit)
    stamp = record.get("timestamp")
    if stamp is not None:
        rows.stamp(line, stamp)
    return row


class ValidationResultsCollector:
    name = "validation-results"

    def sniff(self, source: Source) -> bool:
        return source.start == b"["

    def read(self, source: Source, rows: FileRows) -> None:
        rows.whole = True
        for line, value in source.values():
            rows.line = line
            if isinstance(value, Problem):
                if value.skipped:
                    rows.reject(line, value.message)
                    return
                rows.warn(line, value.message)
                continue
            if not isinstance(value, list):
                rows.warn(line, f"expected an array of validation results, found {keys_of(value)}; skipped")
                continue
            for position, item in enumerate(value, 1):
                row = record_row(line, item, rows) if isinstance(item, dict) else f"found {keys_of(item)}"
                if isinstance(row, str):
                    rows.warn(line, f"array item {position}: {row}; skipped")
                else:
                    rows.add(line, row)
