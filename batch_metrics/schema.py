"""The generated files, rewritten by `batch-metrics schema`: the documents under schema/ and wire.json."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pydantic_core

from batch_metrics import numbers
from batch_metrics.models import PAYLOAD_ADAPTER, payload_json_schema

SCHEMA_PATH = Path("schema") / "batch-payload.schema.json"
WIRE_PATH = Path(__file__).with_name("wire.json")  # read by wire.py
# pydantic's bookkeeping in a core schema: never read by pydantic-core when validating plain data.
_BOOKKEEPING = ("metadata", "ref", "cls", "json_schema_input_schema")


def render_document(document: Mapping[str, Any]) -> str:
    """Stable text (sorted keys, trailing newline), so the drift tests compare byte for byte."""
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def write_document(text: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def render_schema() -> str:
    return render_document(payload_json_schema())


def write_schema(path: Path = SCHEMA_PATH) -> Path:
    return write_document(render_schema(), path)


def _plain(schema: Any) -> Any:
    if isinstance(schema, Mapping):
        return {key: _plain(value) for key, value in schema.items() if key not in _BOOKKEEPING}
    if isinstance(schema, list):
        return [_plain(item) for item in schema]
    return schema


def render_wire_schema() -> str:
    """wire.json: the payload's pydantic-core schema, each validator named, and the pydantic-core
    version that wrote it (see batch_metrics/wire.py).

    Not sorted: a typed dict's fields are serialised in the order its schema lists them.
    """
    compiled = {"pydantic_core": pydantic_core.__version__, "payload": _plain(PAYLOAD_ADAPTER.core_schema)}
    return json.dumps(compiled, indent=1, default=_validator_name) + "\n"


def _validator_name(function: Any) -> str:
    if getattr(function, "__module__", None) != numbers.__name__:
        raise TypeError(f"wire.json can only name validators from batch_metrics.numbers, not {function!r}")
    return str(function.__name__)


def write_wire_schema(path: Path = WIRE_PATH) -> Path:
    return write_document(render_wire_schema(), path)
