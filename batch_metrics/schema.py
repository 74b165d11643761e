"""Write the committed JSON Schema of the wire contract (`batch-metrics schema`)."""

from __future__ import annotations

import json
from pathlib import Path

from batch_metrics.models import payload_json_schema

SCHEMA_PATH = Path("schema") / "batch-payload.schema.json"


def render_schema() -> str:
    return json.dumps(payload_json_schema(), indent=2, sort_keys=True) + "\n"


def write_schema(path: Path = SCHEMA_PATH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_schema(), encoding="utf-8")
    return path
