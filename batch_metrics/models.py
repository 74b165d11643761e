"""The wire contract: one set of models shared by the client and the endpoint.

`POST /batch-metrics` carries one `BatchPayload`. The models mirror what the
Cloudflare Worker endpoint accepts, so anything the Worker stores is valid
here too: free-form strings stay strings (the Worker does not check them),
and `null` in an optional number means "not given".
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter

RESULT_VALUES = ("passed", "failed", "skipped")


def _none_to_zero(value: Any) -> Any:
    return 0 if value is None else value


Count = Annotated[int, BeforeValidator(_none_to_zero), Field(ge=0)]
Minutes = Annotated[float, BeforeValidator(_none_to_zero), Field(ge=0)]
RequiredText = Annotated[str, Field(min_length=1)]


class RecipeResult(BaseModel):
    """One recipe (package) validated on one platform."""

    model_config = ConfigDict(extra="ignore")

    recipe_name: RequiredText
    ecosystem: RequiredText
    result: RequiredText = Field(
        description="`passed`, `failed` or `skipped` as the client writes it; "
        "other strings are stored as sent, as the Worker does."
    )
    error_category: str | None = None
    error_message: str | None = None
    duration_seconds: Annotated[float, Field(ge=0)] | None = None
    platform: str | None = Field(
        default=None,
        description="Platform id such as `linux-alpine-musl-arm64`; unknown to the Worker, which ignores it.",
    )


class BatchPayload(BaseModel):
    """One batch run and its per-recipe results."""

    model_config = ConfigDict(extra="ignore")

    batch_id: RequiredText
    ecosystem: RequiredText
    started_at: RequiredText = Field(description="RFC 3339 timestamp, e.g. 2026-02-19T14:31:25Z.")
    completed_at: str | None = Field(default=None, description="RFC 3339 timestamp.")
    total_recipes: Count = 0
    passed: Count = 0
    failed: Count = 0
    skipped: Count = 0
    success_rate: Annotated[float, BeforeValidator(_none_to_zero), Field(ge=0, le=1)] = 0.0
    macos_minutes: Minutes = 0.0
    linux_minutes: Minutes = 0.0
    results: list[RecipeResult]


class BatchCreated(BaseModel):
    """The endpoint's answer to a stored (201) or re-delivered (200) batch."""

    batch_run_id: int
    duplicate: bool = False


RESULTS_ADAPTER: TypeAdapter[list[RecipeResult]] = TypeAdapter(list[RecipeResult])


def payload_json_schema() -> dict[str, Any]:
    """The JSON Schema of the request body, as committed in schema/."""
    schema = BatchPayload.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
