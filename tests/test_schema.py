"""The committed JSON Schema is generated from the pydantic models and must not drift."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pydantic import ValidationError

from batch_metrics.models import PAYLOAD_ADAPTER
from batch_metrics.schema import SCHEMA_PATH, WIRE_PATH, _validator_name, render_schema, render_wire_schema
from tests.conftest import ROOT


def test_committed_schema_matches_models() -> None:
    committed = (ROOT / SCHEMA_PATH).read_text(encoding="utf-8")
    assert committed == render_schema(), "schema drifted: run `batch-metrics schema` and commit the result"


def test_compiled_wire_schema_matches_models() -> None:
    committed = WIRE_PATH.read_text(encoding="utf-8")
    assert committed == render_wire_schema(), "wire.json drifted: run `batch-metrics schema` and commit it"


def test_under_another_pydantic_core_the_client_builds_its_validators_from_the_models() -> None:
    probe = (
        "import json, sys\n"
        "import pydantic, pydantic_core\n"  # pydantic checks the real version on import
        "pydantic_core.__version__ = '0.0'\n"
        "from batch_metrics import wire\n"
        "from batch_metrics.models import PAYLOAD_ADAPTER\n"
        "body = {'batch_id': 'b', 'ecosystem': 'e', 'started_at': 't', 'passed': None, 'results': []}\n"
        "assert wire.PAYLOAD_VALIDATOR.validate_python(body) == PAYLOAD_ADAPTER.validate_python(body)\n"
        "assert wire.PAYLOAD_VALIDATOR.validate_python(body)['passed'] == 0\n"
        "assert json.loads(wire.PAYLOAD_SERIALIZER.to_json(body, exclude_none=True)) == {\n"
        "    key: value for key, value in body.items() if value is not None}\n"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, cwd=ROOT)


def test_wire_json_names_only_the_validators_the_client_can_load() -> None:
    assert render_wire_schema().count('"function": "none_to_zero"') == 7  # four counts, rate, two minutes
    with pytest.raises(TypeError, match=r"only name validators from batch_metrics\.numbers"):
        json.dumps({"function": len}, default=_validator_name)


def test_client_never_imports_pydantic() -> None:
    """The client's validators are compiled from the models (wire.py), not built by pydantic at start-up."""
    probe = (
        "import sys\n"
        "from batch_metrics import cli, collectors, github, payload, upload\n"
        "loaded = sorted(name for name in sys.modules if name.split('.')[0] == 'pydantic')\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, cwd=ROOT)


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


def test_the_compiled_client_validates_exactly_as_the_models() -> None:
    from batch_metrics.wire import PAYLOAD_VALIDATOR

    good = {"batch_id": "b", "ecosystem": "npm", "started_at": "t", "passed": None, "results": []}
    assert PAYLOAD_VALIDATOR.validate_python(good) == PAYLOAD_ADAPTER.validate_python(good)
    for bad in ({"passed": True}, {"passed": "5"}, {"passed": -1}, {"success_rate": float("nan")}):
        with pytest.raises(ValidationError) as compiled:
            PAYLOAD_VALIDATOR.validate_python({**good, **bad})
        with pytest.raises(ValidationError) as models:
            PAYLOAD_ADAPTER.validate_python({**good, **bad})
        assert compiled.value.errors() == models.value.errors()


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
        PAYLOAD_ADAPTER.validate_python(body)
    assert field in str(caught.value)
