"""The OpenAPI document's reading part: the dashboard's page, its JSON and `/metrics`, and the answers to a
pipeline owner's questions (views/dashboard.py, views/answers.py)."""

from __future__ import annotations

from typing import Any

from batch_metrics.endpoint.answers.answer_shapes import (
    Flaky,
    LatestChanges,
    Reasons,
    RunChangesAnswer,
    RunMatrix,
    RunReasons,
    Speed,
    WindowMatrix,
)
from batch_metrics.endpoint.answers.shapes import DashboardSummary, RecipeHistory, RunFailures
from batch_metrics.endpoint.openapi_parts import (
    READ_FORBIDDEN,
    SERVER_ERROR,
    TEXT,
    json_answer,
    text_answer,
)

_WINDOW_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "days",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 366, "default": 30},
        "description": "The window: runs whose `started_at` is within this many days before now.",
    },
    {"name": "ecosystem", "in": "query", "schema": TEXT, "description": "Only this ecosystem (empty: all)."},
]
_READ_ERRORS = {
    "400": text_answer("An unknown query parameter, a bad `days`, or a NUL character."),
    "401": text_answer("Missing or wrong bearer token (readable by anyone under `serve --public-read`)."),
    "403": text_answer(
        "A token that may not read, or, once a credentials file is in use, one that can also upload: "
        "the dashboard takes read-only tokens."
    ),
    "500": SERVER_ERROR,
}


def dashboard_paths() -> dict[str, Any]:
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
                "responses": {"200": json_answer(DashboardSummary, "The panels."), **_READ_ERRORS},
            }
        },
        "/api/dashboard/recipe": {
            "get": {
                "operationId": "dashboardRecipe",
                "summary": "One recipe's results in the window's runs, per platform (the pass/fail strip).",
                "security": [{"bearer": []}],
                "parameters": [
                    {"name": "name", "in": "query", "required": True, "schema": {**TEXT, "minLength": 1}},
                    *_WINDOW_PARAMETERS,
                ],
                "responses": {
                    "200": json_answer(RecipeHistory, "The recipe's rows, oldest first."),
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
                    "200": json_answer(RunFailures, "The run and its failures."),
                    "404": text_answer("No such run."),
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
                    "403": READ_FORBIDDEN,
                    "500": SERVER_ERROR,
                },
            }
        },
    }


# The answers to a pipeline owner's questions (views/answers.py): over the window, or of one run.
_OVER_WINDOW: tuple[tuple[str, str, str, type], ...] = (
    (
        "changes",
        "latestChanges",
        "Each ecosystem's latest comparison with its previous run (`days` is not "
        "used): what broke, what was fixed, what still fails and for how long, new and gone recipes.",
        LatestChanges,
    ),
    (
        "matrix",
        "failureMatrix",
        "The window's most failing recipes x their platforms, and the recipes that "
        "fail only on some platforms.",
        WindowMatrix,
    ),
    (
        "reasons",
        "failureReasons",
        "Failures by category and subcategory: first and last seen, an example "
        "message's head and tail, the CI run that produced it.",
        Reasons,
    ),
    (
        "speed",
        "speed",
        "The slowest recipes per platform, mean durations per day, and the last 7 days' "
        "runner minutes against the weekly budgets.",
        Speed,
    ),
    (
        "flaky",
        "flaky",
        "Flaky recipes across runs (with the reset) and within a run (passed after retries), "
        "apart, and failure and flake rates per ecosystem.",
        Flaky,
    ),
)
_OF_RUN: tuple[tuple[str, str, str, type], ...] = (
    ("changes", "runChanges", "What changed since the previous run of each ecosystem the run validated.",
     RunChangesAnswer),
    ("matrix", "runMatrix", "The run's failing recipes x every platform they ran on.", RunMatrix),
    ("reasons", "runReasons", "The run's failures by category and subcategory, each with an example.",
     RunReasons),
)  # fmt: skip


def answer_paths() -> dict[str, Any]:
    """The paths of views/answers.py: over a window, and of one run."""
    paths: dict[str, Any] = {}
    bearer: list[dict[str, list[str]]] = [{"bearer": []}]
    for name, operation, summary, model in _OVER_WINDOW:
        paths[f"/api/dashboard/{name}"] = {"get": {
            "operationId": operation, "summary": summary, "security": bearer,
            "parameters": _WINDOW_PARAMETERS,
            "responses": {"200": json_answer(model, "The answer."), **_READ_ERRORS},
        }}  # fmt: skip
    run_id = {"name": "run_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}}
    missing = text_answer("No such run.")
    for name, operation, summary, model in _OF_RUN:
        paths[f"/api/dashboard/runs/{{run_id}}/{name}"] = {"get": {
            "operationId": operation, "summary": summary, "security": bearer, "parameters": [run_id],
            "responses": {"200": json_answer(model, "The answer."), "404": missing, **_READ_ERRORS},
        }}  # fmt: skip
    return paths
