"""The endpoint's OpenAPI 3.1 document, generated from the wire models and the routes below.

`schema/openapi.json` is this document, committed; a test fails when it drifts.
Regenerate it with `batch-metrics schema`. The server also serves it at `GET /openapi.json`.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from batch_metrics import __version__
from batch_metrics.endpoint.answers.shapes import (
    DASHBOARD_MODELS,
    DashboardSummary,
    Health,
    RecipeHistory,
    RunFailures,
    RunPage,
    ServerError,
    StoredRunWithResults,
)
from batch_metrics.endpoint.storage import RESULTS_PAGE
from batch_metrics.models import BatchCreated, BatchPayload, render_document

_MODELS = (BatchPayload, BatchCreated, RunPage, StoredRunWithResults, Health, ServerError, *DASHBOARD_MODELS)
_REF_TEMPLATE = "#/components/schemas/{model}"


def _ref(model: type) -> dict[str, str]:
    return {"$ref": _REF_TEMPLATE.format(model=model.__name__)}


def _json(model: type, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _text(description: str) -> dict[str, Any]:
    """Errors other than 500 are plain text, as the Worker answers them (`Bad request: ...`)."""
    return {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}}


_SERVER_ERROR = _json(
    ServerError, "Unexpected failure; the details are in the server log, under `request_id`."
)
_UNAUTHORIZED = _text("Missing or wrong bearer token (also when the server has none configured).")
_READ_FORBIDDEN = _text("A token that may upload but not read.")
# Stored text never holds NUL (PostgreSQL cannot): a filter with one is a 400.
_TEXT = {"type": "string", "pattern": "^[^\\u0000]*$"}
_READ_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "batch_id",
        "in": "query",
        "schema": _TEXT,
        "description": "Only runs of this batch.",
    },
    {"name": "ecosystem", "in": "query", "schema": _TEXT},
    {
        "name": "since",
        "in": "query",
        "schema": _TEXT,
        "description": "Runs with `started_at` at or after this RFC 3339 time (compared as text).",
    },
    {
        "name": "until",
        "in": "query",
        "schema": _TEXT,
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
                    "content": {"application/json": {"schema": _ref(BatchPayload)}},
                },
                "responses": {
                    "201": _json(BatchCreated, 'Stored: `{"batch_run_id": N}`.'),
                    "200": _json(
                        BatchCreated, "Already stored under this Idempotency-Key (`duplicate: true`)."
                    ),
                    "400": _text(
                        "`Bad request: <field> is required`, `Bad request: invalid JSON`, a text over its "
                        "length, a number out of its range or a time outside its window "
                        "(`Bad request: results[3].platform: String should have at most 96 characters`)."
                    ),
                    "401": _UNAUTHORIZED,
                    "403": _text(
                        "`Forbidden: ...`: a valid credential that may not do this: a read-only token, an "
                        "OIDC token that no rule lets in, or a batch with an ecosystem outside the "
                        "credential's patterns (named in the answer)."
                    ),
                    "408": _text("The body took longer than the server's deadline to arrive."),
                    "413": _text(
                        "Body over the limit (64 MiB on the wire by default, `--max-body-mb`), or a gzip "
                        "body over it once inflated (256 MiB by default, `--max-inflated-mb`)."
                    ),
                    "415": _text("A Content-Encoding other than gzip or identity."),
                    "500": _SERVER_ERROR,
                    "503": _text(
                        "Too many uploads in progress (their bodies would exceed the server's memory "
                        "budget), or the database cannot store anything now (deleted, read-only, not "
                        "answering): retry after `Retry-After` seconds."
                    ),
                    "507": _text(
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
                    "200": _json(RunPage, "A page of runs."),
                    "400": _text("A bad `limit` or `cursor`, an unknown parameter, or a NUL in a filter."),
                    "401": _UNAUTHORIZED,
                    "403": _READ_FORBIDDEN,
                    "500": _SERVER_ERROR,
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
                    "200": _json(StoredRunWithResults, "The run and a page of its results."),
                    "400": _text("A bad `limit` or `cursor`, or an unknown query parameter."),
                    "401": _UNAUTHORIZED,
                    "403": _READ_FORBIDDEN,
                    "404": _text("No such run."),
                    "500": _SERVER_ERROR,
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
                    "200": _json(Health, "The database answers and a write is committed."),
                    "503": _json(Health, "The database cannot be written or does not answer: see `reason`."),
                },
            }
        },
    }


_WINDOW_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "days",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 366, "default": 30},
        "description": "The window: runs whose `started_at` is within this many days before now.",
    },
    {"name": "ecosystem", "in": "query", "schema": _TEXT, "description": "Only this ecosystem (empty: all)."},
]
_READ_ERRORS = {
    "400": _text("An unknown query parameter, a bad `days`, or a NUL character."),
    "401": _text("Missing or wrong bearer token (readable by anyone under `serve --public-read`)."),
    "403": _text(
        "A token that may not read, or, once a credentials file is in use, one that can also upload: "
        "the dashboard takes read-only tokens."
    ),
    "500": _SERVER_ERROR,
}


def _dashboard_paths() -> dict[str, Any]:
    """The page at `/` and the JSON behind it (endpoint/views/dashboard.py), and `/metrics`."""
    return {
        "/": {
            "get": {
                "operationId": "dashboardPage",
                "summary": "The dashboard: a page without data; it asks for the token and reads the JSON.",
                "security": [],
                "responses": {
                    "200": {"description": "HTML.", "content": {"text/html": {"schema": {"type": "string"}}}}
                },
            }
        },
        "/api/dashboard": {
            "get": {
                "operationId": "dashboardSummary",
                "summary": "Every panel of the dashboard for one window and, optionally, one ecosystem.",
                "security": [{"bearer": []}],
                "parameters": _WINDOW_PARAMETERS,
                "responses": {"200": _json(DashboardSummary, "The panels."), **_READ_ERRORS},
            }
        },
        "/api/dashboard/recipe": {
            "get": {
                "operationId": "dashboardRecipe",
                "summary": "One recipe's results in the window's runs, per platform (the pass/fail strip).",
                "security": [{"bearer": []}],
                "parameters": [
                    {"name": "name", "in": "query", "required": True, "schema": {**_TEXT, "minLength": 1}},
                    *_WINDOW_PARAMETERS,
                ],
                "responses": {
                    "200": _json(RecipeHistory, "The recipe's rows, oldest first."),
                    **_READ_ERRORS,
                },
            }
        },
        "/api/dashboard/runs/{run_id}": {
            "get": {
                "operationId": "dashboardRun",
                "summary": "A run's counts and its failed rows with their messages.",
                "security": [{"bearer": []}],
                "parameters": [
                    {
                        "name": "run_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 0},
                    }
                ],
                "responses": {
                    "200": _json(RunFailures, "The run and its failures."),
                    "404": _text("No such run."),
                    **_READ_ERRORS,
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Each ecosystem's latest batch, Prometheus text format (OpenMetrics on request).",
                "security": [{"bearer": []}],
                "responses": {
                    "200": {
                        "description": "Gauges per ecosystem: last batch timestamp, success rate, results, "
                        "runs since green, stale; and the roll-up backlog: batches queued, set aside.",
                        "content": {
                            "text/plain": {"schema": {"type": "string"}},
                            "application/openmetrics-text": {"schema": {"type": "string"}},
                        },
                    },
                    "401": _READ_ERRORS["401"],
                    "403": _READ_FORBIDDEN,
                    "500": _SERVER_ERROR,
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
        ref_template=_REF_TEMPLATE,
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
        "paths": {**_paths(), **_dashboard_paths()},
        "components": {
            "schemas": schemas["$defs"],
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def render_openapi() -> str:
    return render_document(openapi_document())
