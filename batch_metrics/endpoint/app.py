"""The endpoint as one ASGI app: the Worker-compatible API and the dashboard on one storage and one guard.

`create_app()` builds the route list in one place (views/batches.py, then views/dashboard.py);
every route shares `app.state.storage` and `app.state.guard`. Raise `HTTPException(status, "text")`
for a plain-text answer; any other exception becomes a generic 500 with a request id, the details
only in the log. `Edge` (edge.py) wraps it all: request ids, the escaped access log, and reading
away an unread body after an early answer. `serve()` (serving.py) runs it under Hypercorn; any
ASGI server works, through the entry point that stays at its old name:

    hypercorn --workers 4 --bind 0.0.0.0:8787 'batch_metrics.server:app_from_env()'
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import timedelta

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Lifespan

from batch_metrics.endpoint.access import (
    CREDENTIALS_ENV,
    TOKEN_FILE_ENV,
    Credentials,
    CredentialsFile,
    FixedCredentials,
    Guard,
    legacy_entries,
    load_tokens,
)
from batch_metrics.endpoint.access.guard import CredentialSource
from batch_metrics.endpoint.answers.targets import (
    MINUTES_BUDGET_ENV,
    SUCCESS_TARGET_ENV,
    Targets,
    targets_from,
)
from batch_metrics.endpoint.body import Limits
from batch_metrics.endpoint.edge import Edge, internal_error
from batch_metrics.endpoint.storage import SQLStorage, open_storage
from batch_metrics.endpoint.views import answers, dashboard
from batch_metrics.endpoint.views.batches import Endpoint

log = logging.getLogger("batch_metrics.server")

DEFAULT_DB = "batch-metrics.db"
PUBLIC_READ_ENV = "BATCH_METRICS_PUBLIC_READ"
STALE_AFTER_ENV = "BATCH_METRICS_STALE_AFTER_HOURS"


async def _http_error(request: Request, error: Exception) -> Response:
    if not isinstance(error, HTTPException):
        raise error
    return PlainTextResponse(error.detail, error.status_code, error.headers)


async def _server_error(request: Request, error: Exception) -> Response:
    request_id = request.scope["state"]["request_id"]
    log.exception("request %s failed", request_id, exc_info=error)
    return Response(internal_error(request_id), 500, media_type="application/json")


def create_app(
    storage: SQLStorage,
    tokens: Iterable[str] = (),
    *,
    credentials: CredentialSource | None = None,
    limits: Limits | None = None,
    public_read: bool = False,
    stale_after: timedelta | None = None,
    lifespan: Lifespan[Starlette] | None = None,
    targets: Targets | None = None,
    compare_runs: bool = True,
) -> Edge:
    """The whole endpoint as one ASGI app. The caller owns `storage` (or closes it in `lifespan`).

    `credentials` (a credentials file, which holds the legacy tokens too) or else `tokens` alone, the
    legacy single-token options: each may read and write everything. `targets`: the operator's minute
    budgets and success-rate targets (answers/targets.py). `compare_runs=False` stores uploads
    without comparing them with the previous run, only to measure what that costs (bench/ingest.py).
    """
    limits = limits or Limits()
    source = credentials or FixedCredentials(Credentials(legacy_entries(list(tokens))))
    guard = Guard(source, public_read=public_read)
    endpoint = Endpoint(storage, guard, limits, compare_runs=compare_runs)
    targets = targets or Targets()
    # The endpoint's routes, then the dashboard's (the page at `/`, its JSON, `/metrics`) and the answers'.
    routes = (
        endpoint.routes()
        + dashboard.routes(storage, guard, stale_after=stale_after, targets=targets)
        + answers.routes(storage, guard, targets)
    )
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
        lifespan=lifespan,
    )
    app.state.storage = storage
    app.state.guard = guard
    return Edge(app)


def database_target(db: str | None) -> str:
    """`--db`, else `$DATABASE_URL`, else `batch-metrics.db` in the working directory."""
    return db or os.environ.get("DATABASE_URL") or DEFAULT_DB


def app_from_env() -> Edge:
    """For any ASGI server: `$DATABASE_URL`; `$BATCH_METRICS_CREDENTIALS` (a credentials file, reloaded
    when it changes), `$BATCH_METRICS_TOKEN` and/or `$BATCH_METRICS_TOKEN_FILE`;
    `$BATCH_METRICS_PUBLIC_READ=1`, `$BATCH_METRICS_STALE_AFTER_HOURS`, `$BATCH_METRICS_MINUTES_BUDGET` and
    `$BATCH_METRICS_SUCCESS_TARGET` as serve's flags of those names."""
    hours = os.environ.get(STALE_AFTER_ENV)
    targets = targets_from(os.environ.get(MINUTES_BUDGET_ENV), os.environ.get(SUCCESS_TARGET_ENV))
    tokens = load_tokens(os.environ.get(TOKEN_FILE_ENV))
    path = os.environ.get(CREDENTIALS_ENV)
    credentials = CredentialsFile(path, tokens) if path else None
    storage = open_storage(database_target(None), pool_size=8)
    storage.migrate()

    @asynccontextmanager
    async def closing_storage(app: Starlette) -> AsyncIterator[None]:
        yield
        storage.close()

    return create_app(
        storage,
        tokens,
        credentials=credentials,
        public_read=os.environ.get(PUBLIC_READ_ENV) == "1",
        stale_after=timedelta(hours=float(hours)) if hours else None,
        lifespan=closing_storage,
        targets=targets,
    )


def migrate(db: str | None) -> list[int]:
    """Apply the migrations the database lacks (`batch-metrics migrate`); their numbers."""
    storage = open_storage(database_target(db), pool_size=1)
    try:
        return storage.migrate()
    finally:
        storage.close()
