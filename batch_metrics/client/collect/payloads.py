"""Ready batch payloads (`batch_id` + `results`), one per line or pretty-printed one after another.

Each is made to fit the contract's limits as every row is (bounds.py), validated whole against the
wire contract and kept in `Collection.payloads`: a lone payload is sent as it is, several lend their
rows to a new batch (`client.payload`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic_core import ValidationError

from batch_metrics.client.collect.bounds import fit
from batch_metrics.client.collect.rows import FileRows
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
            try:
                payload: BatchPayload = PAYLOAD_VALIDATOR.validate_python(value)
            except ValidationError as error:
                for where, left_out in fit(value, error.errors(include_url=False)).items():
                    rows.warn(line, f"{'.'.join(map(str, where))}: {left_out}")
                try:
                    payload = PAYLOAD_VALIDATOR.validate_python(value)
                except ValidationError as still:
                    rows.warn(line, f"invalid ready payload: {first_problem(still, 'payload')}; skipped")
                    continue
            rows.stamp(line, payload["started_at"])
            rows.collection.payloads.append(payload)
