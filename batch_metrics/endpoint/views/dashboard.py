"""The dashboard over HTTP: the page at `/`, its JSON under `/api/dashboard`, and `GET /metrics`.

The page (`endpoint/static/`) is a shell with no data in it, so it and its assets are served to anyone;
every answer with data goes through the guard, which lets a request through only with a read
token, or always under `serve --public-read`. The page asks for a read token once, keeps it in
sessionStorage and sends it as `Authorization: Bearer`. Its JSON refuses a token that can also
write (403) once a credentials file is in use; in the legacy mode (only the single-token options)
it answers with `X-Token-Can-Write: true`, and the page says that it holds an upload token.
Handlers are plain functions: Starlette runs them in its thread pool, beside the blocking database
drivers.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from batch_metrics.endpoint.access import Guard
from batch_metrics.endpoint.answers import dashboard, flaky, metrics
from batch_metrics.endpoint.answers.dashboard import MAX_DAYS, Window
from batch_metrics.endpoint.answers.targets import Targets
from batch_metrics.endpoint.storage import SQLStorage
from batch_metrics.endpoint.views import json_answer, known_query
from batch_metrics.models import rfc3339

STATIC = Path(__file__).resolve().parent.parent / "static"
_DIGITS = frozenset("0123456789")
LARGEST_ID = 2**63 - 1  # both databases' largest id; a larger one is simply not there
WINDOW_QUERY = {"days", "ecosystem"}
_RECIPE_QUERY = {"days", "ecosystem", "name"}
# The page runs only its own script and style and talks only to this server: should stored text
# ever slip into markup, the browser still runs none of it.
_PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def window_of(query: dict[str, str]) -> Window:
    """The window a read's `days` and `ecosystem` name (a 400 for a bad `days`)."""
    days = query.get("days", "30")
    if not (days and len(days) <= 3 and set(days) <= _DIGITS and 1 <= int(days) <= MAX_DAYS):
        raise HTTPException(400, f"Bad request: days must be a whole number from 1 to {MAX_DAYS}")
    return Window(days=int(days), ecosystem=query.get("ecosystem") or None)


def routes(
    storage: SQLStorage, guard: Guard, *, stale_after: timedelta | None = None, targets: Targets | None = None
) -> list[BaseRoute]:
    """The dashboard's routes for the endpoint's Starlette app."""
    require_read = guard.check_dashboard_read

    def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers=_PAGE_HEADERS)

    def summary(request: Request) -> Response:
        can_write = require_read(request)
        window = window_of(known_query(request, WINDOW_QUERY))
        answer = json_answer({
            "days": window.days,
            "ecosystem": window.ecosystem,
            "generated_at": rfc3339(window.now),
            "ecosystems": dashboard.ecosystems(storage, window, stale_after),
            "daily": dashboard.daily(storage, window),
            "platforms": dashboard.platforms(storage, window),
            # Per platform and day only for one ecosystem: for all of them it would outweigh the page.
            "platform_days": dashboard.platform_days(storage, window) if window.ecosystem else [],
            "failing_recipes": dashboard.failing_recipes(storage, window),
            "error_categories": dashboard.error_categories(storage, window),
            "flaky_recipes": flaky.across_runs(storage, window),
        })  # fmt: skip
        if can_write:  # the legacy mode: the page says it holds a token that can upload
            answer.headers["X-Token-Can-Write"] = "true"
        return answer

    def recipe(request: Request) -> Response:
        require_read(request)
        query = known_query(request, _RECIPE_QUERY)
        name = query.get("name", "")
        if not name:
            raise HTTPException(400, "Bad request: name is required")
        window = window_of(query)
        history = dashboard.recipe_history(storage, window, name)
        return json_answer({"recipe_name": name, "days": window.days, "history": history})

    def run(request: Request) -> Response:
        require_read(request)
        known_query(request, set())
        run_id: int = request.path_params["run_id"]
        failures = dashboard.run_failures(storage, run_id) if run_id <= LARGEST_ID else None
        if failures is None:
            raise HTTPException(404, "Not found")
        return json_answer(failures)

    def scrape(request: Request) -> Response:
        guard.check_read(request)  # a scraper is no browser: any token that may read
        body, content_type = metrics.exposition(storage, request.headers.get("accept"), stale_after, targets)
        return Response(body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})

    return [
        Route("/", page, methods=["GET", "HEAD"]),
        Route("/api/dashboard", summary, methods=["GET", "HEAD"]),
        Route("/api/dashboard/recipe", recipe, methods=["GET", "HEAD"]),
        Route("/api/dashboard/runs/{run_id:int}", run, methods=["GET", "HEAD"]),
        Route("/metrics", scrape, methods=["GET", "HEAD"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
