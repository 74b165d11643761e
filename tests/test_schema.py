"""The committed JSON Schema is generated from the pydantic models and must not drift."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from batch_metrics.models import BatchPayload
from batch_metrics.schema import SCHEMA_PATH, render_schema
from tests.conftest import ROOT


def test_committed_schema_matches_models() -> None:
    committed = (ROOT / SCHEMA_PATH).read_text(encoding="utf-8")
    assert committed == render_schema(), "schema drifted: run `batch-metrics schema` and commit the result"


def test_schema_lists_the_worker_required_fields() -> None:
    schema = json.loads((ROOT / SCHEMA_PATH).read_text(encoding="utf-8"))
    assert set(schema["required"]) == {"batch_id", "ecosystem", "started_at", "results"}
    result = schema["$defs"]["RecipeResult"]
    assert set(result["required"]) == {"recipe_name", "ecosystem", "result"}
    assert "platform" in result["properties"]


def test_models_accept_what_the_worker_accepts() -> None:
    payload = BatchPayload.model_validate(
        {
            "batch_id": "b",
            "ecosystem": "npm",
            "started_at": "2026-02-19T14:31:25Z",
            "total_recipes": None,
            "macos_minutes": None,
            "results": [{"recipe_name": "x", "ecosystem": "npm", "result": "passed", "extra": 1}],
        }
    )
    assert payload.total_recipes == 0
    assert payload.macos_minutes == 0.0
    assert payload.results[0].get("platform") is None


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"batch_id": ""}, "batch_id"),
        ({"passed": -1}, "passed"),
        ({"success_rate": 1.5}, "success_rate"),
        ({"results": [{"ecosystem": "npm", "result": "passed"}]}, "recipe_name"),
    ],
)
def test_models_reject_bad_fields(patch: dict[str, object], field: str) -> None:
    body = {"batch_id": "b", "ecosystem": "npm", "started_at": "2026-02-19T14:31:25Z", "results": []}
    body.update(patch)
    with pytest.raises(ValidationError) as caught:
        BatchPayload.model_validate(body)
    assert field in str(caught.value)
