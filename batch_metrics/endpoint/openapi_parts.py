"""Pieces every part of the OpenAPI document uses: references to the models, JSON and plain-text answers,
the errors every read may answer."""

from __future__ import annotations

from typing import Any

from batch_metrics.endpoint.answers.shapes import ServerError

REF_TEMPLATE = "#/components/schemas/{model}"


def ref(model: type) -> dict[str, str]:
    return {"$ref": REF_TEMPLATE.format(model=model.__name__)}


def json_answer(model: type, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ref(model)}}}


def text_answer(description: str) -> dict[str, Any]:
    """Errors other than 500 are plain text, as the Worker answers them (`Bad request: ...`)."""
    return {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}}


SERVER_ERROR = json_answer(
    ServerError, "Unexpected failure; the details are in the server log, under `request_id`."
)
UNAUTHORIZED = text_answer("Missing or wrong bearer token (also when the server has none configured).")
READ_FORBIDDEN = text_answer("A token that may upload but not read.")
# Stored text never holds NUL (PostgreSQL cannot): a filter with one is a 400.
TEXT = {"type": "string", "pattern": "^[^\\u0000]*$"}
