"""The generated documents under schema/, rewritten by `batch-metrics schema`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from batch_metrics.models import payload_json_schema

SCHEMA_PATH = Path("schema") / "batch-payload.schema.json"


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
