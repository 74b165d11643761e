"""The endpoint's OpenAPI 3.1 document, generated from the wire models and the routes below.

`schema/openapi.json` is this document, committed; a test fails when it drifts.
Regenerate it with `batch-metrics schema`. The server also serves it at `GET /openapi.json`.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from batch_metrics import __version__
from batch_metrics.endpoint.answers.answer_shapes import ANSWER_MODELS
from batch_metrics.endpoint.answers.shapes import (
    DASHBOARD_MODELS,
    Health,
    RunPage,
    ServerError,
    StoredRunWithResults,
)
from batch_metrics.endpoint.openapi_dashboard import answer_paths, dashboard_paths
from batch_metrics.endpoint.openapi_parts import (
    READ_FORBIDDEN,
    REF_TEMPLATE,
    SERVER_ERROR,
    TEXT,
    UNAUTHORIZED,
    json_answer,
    ref,
    text_answer,
)
from batch_metrics.endpoint.storage import RESULTS_PAGE
from batch_metrics.models import BatchCreated, BatchPayload, render_document

_MODELS = (
    BatchPayload, BatchCreated, RunPage, StoredRunWithResults, Health, ServerError, *DASHBOARD_MODELS,
    *ANSWER_MODELS,
)  # fmt: skip
_READ_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "batch_id",
        "in": "query",
        "schema": TEXT,
        "description": "Only runs of this batch.",
    },
    {"name": "ecosystem", "in": "query", "schema": TEXT},
    {
        "name": "since",
        "in": "query",
        "schema": TEXT,
        "description": "Runs with `started_at` at or after this RFC 3339 time (compared as text).",
    },
    {
        "name": "until",
        "in": "query",
        "schema": TEXT,
        "description": "Runs with `started_at` before this RFC 3339 time (compared as text).",
    },
    {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
    },
    {
        "name": "cursor",
        "in": "query",
        "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
        "description": "`next_cursor` of the previous page.",
    },
]


def _paths() -> dict[str, Any]:
    return {
        "/batch-metrics": {
            "post": {
                "operationId": "uploadBatch",
                "summary": "Store one batch run and its results (drop-in for the Cloudflare Worker's route).",
                "security": [{"bearer": []}],
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "schema": {"type": "string", "maxLength": 255},
                        "description": "Same key as a stored batch: that batch's id comes back (200) and "
                        "nothing is written. The uploader derives it from the body.",
                    },
                ],
                "requestBody": {
                    "required": True,
                    "description": "Any content type is read as JSON (curl's default form type too). "
                    "With `Content-Encoding: gzip` the body is inflated, up to the body size limit.",
                    "content": {"application/json": {"schema": ref(BatchPayload)}},
                },
                "responses": {
                    "201": json_answer(
                        BatchCreated,
                        'Stored: `{"batch_run_id": N, "changes": [...]}`, what changed since the previous '
                        "run of each of its ecosystems (the Worker answers the id alone).",
                    ),
                    "200": json_answer(
                        BatchCreated,
                        "Already stored under this Idempotency-Key (`duplicate: true`), with the comparison "
                        "made when it was stored.",
                    ),
                    "400": text_answer(
                        "`Bad request: <field> is required`, `Bad request: invalid JSON`, a text over its "
                        "length, a number out of its range or a time outside its window "
                        "(`Bad request: results[3].platform: String should have at most 96 characters`)."
                    ),
                    "401": UNAUTHORIZED,
                    "403": text_answer(
                        "`Forbidden: ...`: a valid credential that may not do this: a read-only token, an "
                        "OIDC token that no rule lets in, or a batch with an ecosystem outside the "
                        "credential's patterns (named in the answer)."
                    ),
                    "408": text_answer("The body took longer than the server's deadline to arrive."),
                    "413": text_answer(
                        "Body over the limit (64 MiB on the wire by default, `--max-body-mb`), or a gzip "
                        "body over it once inflated (256 MiB by default, `--max-inflated-mb`)."
                    ),
                    "415": text_answer("A Content-Encoding other than gzip or identity."),
                    "500": SERVER_ERROR,
                    "503": text_answer(
                        "Too many uploads in progress (their bodies would exceed the server's memory "
                        "budget), or the database cannot store anything now (deleted, read-only, not "
                        "answering): retry after `Retry-After` seconds."
                    ),
                    "507": text_answer(
                        "The disk holding the database is full: nothing was stored; retry after "
                        "`Retry-After` seconds."
                    ),
                },
            }
        },
        "/batch-runs": {
            "get": {
                "operationId": "listRuns",
                "summary": "Stored runs, newest first, one page at a time.",
                "security": [{"bearer": []}],
                "parameters": _READ_PARAMETERS,
                "responses": {
                    "200": json_answer(RunPage, "A page of runs."),
                    "400": text_answer(
                        "A bad `limit` or `cursor`, an unknown parameter, or a NUL in a filter."
                    ),
                    "401": UNAUTHORIZED,
                    "403": READ_FORBIDDEN,
                    "500": SERVER_ERROR,
                },
            }
        },
        "/batch-runs/{id}": {
            "get": {
                "operationId": "getRun",
                "summary": "One run with a page of its results, in the order they were stored.",
                "description": f"At most {RESULTS_PAGE} results per answer, whatever the run's size: "
                "follow `next_cursor` for the rest.",
                "security": [{"bearer": []}],
                "parameters": [
                    {
                        "name": "id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 0, "maximum": 999_999_999_999_999_999},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": RESULTS_PAGE,
                            "default": RESULTS_PAGE,
                        },
                        "description": "Results per page.",
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
                        "description": "`next_cursor` of the previous page.",
                    },
                ],
                "responses": {
                    "200": json_answer(StoredRunWithResults, "The run and a page of its results."),
                    "400": text_answer("A bad `limit` or `cursor`, or an unknown query parameter."),
                    "401": UNAUTHORIZED,
                    "403": READ_FORBIDDEN,
                    "404": text_answer("No such run."),
                    "500": SERVER_ERROR,
                },
            }
        },
        "/health": {
            "get": {
                "operationId": "health",
                "summary": "Whether the database can be read and written now (no token needed).",
                "description": "A write probe, at most once a second and within 2 seconds; also the "
                "dashboard's roll-up backlog.",
                "security": [],
                "responses": {
                    "200": json_answer(Health, "The database answers and a write is committed."),
                    "503": json_answer(
                        Health, "The database cannot be written or does not answer: see `reason`."
                    ),
                },
            }
        },
    }


def openapi_document() -> dict[str, Any]:
    _, schemas = TypeAdapter.json_schemas(
        [
            (model, "serialization" if model is not BatchPayload else "validation", TypeAdapter(model))
            for model in _MODELS
        ],
        ref_template=REF_TEMPLATE,
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "batch-metrics endpoint",
            "version": __version__,
            "description": "Stores CI batch results in SQLite or PostgreSQL; wire compatible with tsuku's "
            "Cloudflare Worker `POST /batch-metrics`.",
        },
        "servers": [{"url": "http://127.0.0.1:8787"}],
        "paths": {**_paths(), **dashboard_paths(), **answer_paths()},
        "components": {
            "schemas": schemas["$defs"],
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def render_openapi() -> str:
    return render_document(openapi_document())
