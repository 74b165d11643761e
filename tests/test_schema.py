"""The committed JSON Schema is generated from the pydantic models and must not drift."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from batch_metrics.documents import SCHEMA_PATH, render_schema
from batch_metrics.models import PAYLOAD_ADAPTER, PAYLOAD_SERIALIZER, PAYLOAD_VALIDATOR, RESULTS_VALIDATOR
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
    payload = PAYLOAD_ADAPTER.validate_python(
        {
            "batch_id": "b",
            "ecosystem": "npm",
            "started_at": "2026-02-19T14:31:25Z",
            "total_recipes": None,
            "macos_minutes": None,
            "results": [{"recipe_name": "x", "ecosystem": "npm", "result": "passed", "extra": 1}],
        }
    )
    assert (payload["total_recipes"], payload["macos_minutes"]) == (0, 0)
    assert payload["results"][0] == {"recipe_name": "x", "ecosystem": "npm", "result": "passed"}


def test_the_clients_validators_refuse_what_the_endpoint_refuses() -> None:
    good: dict[str, object] = {
        "batch_id": "b",
        "ecosystem": "npm",
        "started_at": "2026-02-19T14:31:25Z",
        "passed": None,
        "results": [],
    }
    assert PAYLOAD_VALIDATOR.validate_python(good)["passed"] == 0
    for bad in ({"passed": True}, {"passed": "5"}, {"passed": -1}, {"success_rate": float("nan")},
                {"started_at": "t"}, {"batch_id": "b" * 257}, {"macos_minutes": 1e13}):  # fmt: skip
        with pytest.raises(ValidationError):
            PAYLOAD_VALIDATOR.validate_python({**good, **bad})
    row = {"recipe_name": "x", "ecosystem": "npm", "result": "passed"}
    assert RESULTS_VALIDATOR.validate_python([{**row, "duration_seconds": 2}]) == [
        {**row, "duration_seconds": 2}
    ]
    with pytest.raises(ValidationError, match="duration_seconds"):
        RESULTS_VALIDATOR.validate_python([{**row, "duration_seconds": "2"}])
    written = json.loads(PAYLOAD_SERIALIZER.to_json({**good, "completed_at": None}, exclude_none=True))
    assert written == {key: value for key, value in good.items() if value is not None}


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
    body: dict[str, object] = {
        "batch_id": "b",
        "ecosystem": "npm",
        "started_at": "2026-02-19T14:31:25Z",
        "results": [],
    }
    body.update(patch)
    with pytest.raises(ValidationError) as caught:
        PAYLOAD_ADAPTER.validate_python(body)
    assert field in str(caught.value)
