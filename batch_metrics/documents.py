"""The generated documents under schema/ (the payload's JSON Schema, the endpoint's OpenAPI), rewritten by
`batch-metrics schema`; tests fail when the committed files drift from the code."""

from __future__ import annotations

from pathlib import Path

from batch_metrics.endpoint.openapi import render_openapi
from batch_metrics.models import payload_json_schema, render_document

SCHEMA_PATH = Path("schema") / "batch-payload.schema.json"
OPENAPI_PATH = Path("schema") / "openapi.json"


def _write(text: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def render_schema() -> str:
    return render_document(payload_json_schema())


def write_schema(path: Path = SCHEMA_PATH) -> Path:
    return _write(render_schema(), path)


def write_openapi(path: Path = OPENAPI_PATH) -> Path:
    return _write(render_openapi(), path)
