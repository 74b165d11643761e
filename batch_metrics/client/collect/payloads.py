"""Ready batch payloads (`batch_id` + `results`), one per line or pretty-printed one after another.

Each is made to fit the contract's limits as every row is (bounds.py), validated whole against the
wire contract and kept in `Collection.payloads`: a lone payload is sent as it is, several lend their
rows to a new batch (`client.payload`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic_core import ValidationError

from batch_metrics.client.collect.bounds import HEADER_TEXTS, bound_row, bound_texts
from batch_metrics.client.collect.rows import FileRows, brief
from batch_metrics.client.collect.source import Source, line_values
from batch_metrics.models import PAYLOAD_VALIDATOR, first_problem

if TYPE_CHECKING:
    from batch_metrics.models import BatchPayload


class PayloadCollector:
    name = "payload"

    def sniff(self, source: Source) -> bool:
        return source.first_has("batch_id", "results")

    def read(self, source: Source, rows: FileRows) -> None:
        for line, value in line_values(source, rows):
            if isinstance(value, dict):
                self._fit(line, value, rows)
            try:
                payload: BatchPayload = PAYLOAD_VALIDATOR.validate_python(value)
            except ValidationError as error:
                rows.warn(line, f"invalid ready payload: {first_problem(error, 'payload')}; skipped")
                continue
            rows.stamp(line, payload["started_at"])
            rows.collection.payloads.append(payload)

    @staticmethod
    def _fit(line: int, value: dict[str, Any], rows: FileRows) -> None:
        bound_texts(value, HEADER_TEXTS)
        results = value.get("results")
        for position, row in enumerate(results if isinstance(results, list) else (), 1):
            left_out = bound_row(row, rows.limit) if isinstance(row, dict) else None
            if left_out:
                rows.warn(line, f"results item {position} ({brief(row.get('recipe_name'))}): {left_out}")
