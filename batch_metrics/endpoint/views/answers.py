"""The answers to a pipeline owner's questions over HTTP, under `/api/dashboard/`: what changed since the
previous run, where (the recipe x platform matrix), why (failure reasons), how slow and how costly, how
flaky. Each takes a read token like the rest of the dashboard's JSON (views/dashboard.py), and each
has its shape in answers/answer_shapes.py and its path in the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from batch_metrics.endpoint.access import Guard
from batch_metrics.endpoint.answers import changes, flaky, matrix, reasons, speed
from batch_metrics.endpoint.answers.dashboard import Window
from batch_metrics.endpoint.answers.targets import Targets
from batch_metrics.endpoint.storage import SQLStorage
from batch_metrics.endpoint.storage.answer_rollups import RESET_RUNS
from batch_metrics.endpoint.views import json_answer, known_query
from batch_metrics.endpoint.views.dashboard import LARGEST_ID, WINDOW_QUERY, window_of


def routes(storage: SQLStorage, guard: Guard, targets: Targets) -> list[BaseRoute]:
    """The routes of the answers, for the endpoint's Starlette app."""

    def over_window(answer: Callable[[Window], dict[str, Any]]) -> Callable[[Request], Response]:
        def handle(request: Request) -> Response:
            guard.check_dashboard_read(request)
            return json_answer(answer(window_of(known_query(request, WINDOW_QUERY))))

        return handle

    def of_run(answer: Callable[[int], dict[str, Any]]) -> Callable[[Request], Response]:
        def handle(request: Request) -> Response:
            guard.check_dashboard_read(request)
            known_query(request, set())
            run_id: int = request.path_params["run_id"]
            if run_id > LARGEST_ID or not storage.query(
                "SELECT 1 FROM batch_runs WHERE id = {mark}", [run_id]
            ):
                raise HTTPException(404, "Not found")
            return json_answer({"run_id": run_id, **answer(run_id)})

        return handle

    def latest(window: Window) -> dict[str, Any]:
        return {"ecosystems": changes.latest_changes(storage, window)}

    def speed_of(window: Window) -> dict[str, Any]:
        return {
            "days": window.days, "slowest": speed.slowest(storage, window),
            "durations": speed.durations(storage, window), "minutes": speed.minutes(storage, window, targets),
        }  # fmt: skip

    def flaky_of(window: Window) -> dict[str, Any]:
        return {
            "days": window.days, "reset_runs": RESET_RUNS,
            "across_runs": flaky.across_runs(storage, window),
            "within_run": flaky.within_run(storage, window), "rates": flaky.rates(storage, window),
        }  # fmt: skip

    run = "/api/dashboard/runs/{run_id:int}"
    methods = ["GET", "HEAD"]
    return [
        Route("/api/dashboard/changes", over_window(latest), methods=methods),
        Route("/api/dashboard/matrix", over_window(lambda window: matrix.window_matrix(storage, window)),
              methods=methods),
        Route("/api/dashboard/reasons", over_window(
            lambda window: {"days": window.days, "reasons": reasons.failure_reasons(storage, window)}
        ), methods=methods),
        Route("/api/dashboard/speed", over_window(speed_of), methods=methods),
        Route("/api/dashboard/flaky", over_window(flaky_of), methods=methods),
        Route(f"{run}/changes", of_run(lambda run_id: {"ecosystems": changes.run_changes(storage, run_id)}),
              methods=methods),
        Route(f"{run}/matrix", of_run(lambda run_id: matrix.run_matrix(storage, run_id)), methods=methods),
        Route(f"{run}/reasons", of_run(lambda run_id: {"reasons": reasons.run_reasons(storage, run_id)}),
              methods=methods),
    ]  # fmt: skip
