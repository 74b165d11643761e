"""The wire contract compiled for pydantic-core: how the client validates and serialises.

`wire.json` beside this file is the payload's pydantic-core schema, generated from the models in
models.py by `batch-metrics schema` (tests/test_schema.py fails when it differs), with the one
Python validator it uses named instead of embedded. The client validates with these rather than
with the models so that it never imports pydantic, which alone costs about as much as collecting
100k results (docs/benchmarks.md).

The schema's format belongs to the pydantic-core version that wrote it, the one the action and
the image pin. Under any other version (a `pip install` that resolved differently) the same
validators are built from the models instead: slower to start, never wrong.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pydantic_core
from pydantic_core import SchemaSerializer, SchemaValidator

from batch_metrics import numbers


def _with_validators(schema: Any) -> Any:
    """The schema with each validator it names taken from batch_metrics.numbers."""
    if isinstance(schema, dict):
        if schema.get("type") == "no-info":  # a plain function's slot in a pydantic-core schema
            return {**schema, "function": getattr(numbers, schema["function"])}
        return {key: _with_validators(value) for key, value in schema.items()}
    if isinstance(schema, list):
        return [_with_validators(item) for item in schema]
    return schema


def _payload_schema() -> Any:
    compiled = json.loads(Path(__file__).with_name("wire.json").read_bytes())
    if compiled["pydantic_core"] == pydantic_core.__version__:
        return _with_validators(compiled["payload"])
    from batch_metrics.models import PAYLOAD_ADAPTER

    return PAYLOAD_ADAPTER.core_schema


_PAYLOAD_SCHEMA = _payload_schema()
PAYLOAD_VALIDATOR = SchemaValidator(_PAYLOAD_SCHEMA)
PAYLOAD_SERIALIZER = SchemaSerializer(_PAYLOAD_SCHEMA)
RESULTS_VALIDATOR = SchemaValidator(_PAYLOAD_SCHEMA["fields"]["results"]["schema"])
