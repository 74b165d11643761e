"""Per-record lines: one `{recipe, platform, exit_code, category, timestamp}` object per line.

They list failures, so a record without `status` is failed unless its `exit_code` is 0. A failure
record among them (tsuku's older `<ecosystem>.jsonl` mixes the two) is read as one. A line is the
boundary: whatever one holds costs that line only.
"""

from __future__ import annotations

from batch_metrics.client.collect.failures import read_failure_line
from batch_metrics.client.collect.rows import FileRows, why
from batch_metrics.client.collect.source import Source, keys_of, line_values
from batch_metrics.client.collect.validation import record_row


class NdjsonCollector:
    name = "ndjson"

    def sniff(self, source: Source) -> bool:
        return source.first_has("recipe", "platform")

    def read(self, source: Source, rows: FileRows) -> None:
        for line, value in line_values(source, rows):
            kept = len(rows.rows)
            try:
                if isinstance(value, dict) and isinstance(value.get("failures"), list):
                    read_failure_line(line, value, rows)  # tsuku's other line shape
                    continue
                if isinstance(value, dict) and "recipe" in value:
                    row = record_row(line, value, rows)
                else:
                    row = f"not a per-record line with a recipe ({keys_of(value)})"
            except Exception as error:
                del rows.rows[kept:], rows.lines[kept:]
                row = f"cannot be read ({why(error)})"
            if isinstance(row, str):
                rows.warn(line, f"{row}; skipped")
            else:
                rows.add(line, row)
