"""The endpoint: an ASGI app on Starlette, a drop-in for the Cloudflare Worker's `POST /batch-metrics`.

Routes: `POST /batch-metrics`, `GET /health`, `GET /openapi.json`, and a read API
(`GET /batch-runs`, `GET /batch-runs/{id}`). Answers mirror the Worker's: 201
`{"batch_run_id": N}`, plain-text `Bad request: <field> is required` and `Unauthorized`,
JSON `{"error": ..., "request_id": ...}` on 500.

How routes and auth fit together (for anyone adding routes, e.g. the dashboard):

- `create_app()` builds the route list in one place: `Endpoint.routes()` for the endpoint's own
  routes, then the dashboard's (`dashboard_http.routes`). Every route shares `app.state.storage`
  (the database) and `app.state.guard` (the tokens).
- `Guard` is the only auth check. `guard.check_write(request)` demands exactly
  `Authorization: Bearer <token>` (any other scheme is 401) and raises 401 otherwise;
  `guard.check_read(request)` does the same unless the server runs with `public_read`, which opens
  reads (pages, their JSON, the read API) but never writes. Call it first in a handler, before
  reading any body: a refused request costs no memory.
- Raise `HTTPException(status, "text")` for a plain-text answer; any other exception becomes a
  generic 500 with a request id, the details only in the log (`batch_metrics.server`).
- Storage calls are blocking; run them with `run_in_threadpool`.

`Edge` (edge.py) wraps the app: request ids, the escaped access log, and reading away an
unread body after an early answer. Bodies are read within the limits of body.py.
`serve()` (serving.py) runs it under Hypercorn; any ASGI server works:

    hypercorn --workers 4 --bind 0.0.0.0:8787 'batch_metrics.server:app_from_env()'
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Lifespan

from batch_metrics import TOKEN_ENV, dashboard_http
from batch_metrics.body import (
    BodyBuffer,
    BodyError,
    ByteBudget,
    Limits,
    check_encoding,
    declared_length,
    share_of,
)
from batch_metrics.edge import Edge, internal_error
from batch_metrics.models import PAYLOAD_ADAPTER, BatchPayload
from batch_metrics.openapi import render_openapi
from batch_metrics.storage import PostgresStorage, RunFilter, SQLiteStorage, open_storage

log = logging.getLogger("batch_metrics.server")

DEFAULT_DB = "batch-metrics.db"
TOKEN_FILE_ENV = f"{TOKEN_ENV}_FILE"
PUBLIC_READ_ENV = "BATCH_METRICS_PUBLIC_READ"
STALE_AFTER_ENV = "BATCH_METRICS_STALE_AFTER_HOURS"
MAX_IDEMPOTENCY_KEY = 255
_RUN_QUERY = {"batch_id", "ecosystem", "since", "until", "limit", "cursor"}
_DIGITS = re.compile(r"[0-9]{1,18}")
# A JSON `\u0000` escape (an even number of backslashes before it): PostgreSQL text cannot hold NUL.
_NUL_ESCAPE = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")

Storage = SQLiteStorage | PostgresStorage


def parse_tokens(text: str) -> list[str]:
    """Tokens separated by commas or newlines; several are valid at once so they can be rotated."""
    return [token.strip() for token in re.split(r"[,\n]", text) if token.strip()]


def load_tokens(token_file: str | None = None, env: dict[str, str] | None = None) -> list[str]:
    """Tokens from `$BATCH_METRICS_TOKEN` and from a file (one per line); both may be given."""
    environ = os.environ if env is None else env
    tokens = parse_tokens(environ.get(TOKEN_ENV, ""))
    if token_file:
        tokens += parse_tokens(Path(token_file).read_text(encoding="utf-8"))
    return tokens


class Guard:
    """The bearer-token check for every route: constant time, exactly `Bearer <token>`."""

    def __init__(self, tokens: Iterable[str], *, public_read: bool = False) -> None:
        # Digests have one length, so comparing them reveals nothing about a token's length either.
        self.token_digests = [hashlib.sha256(token.encode()).digest() for token in tokens]
        self.public_read = public_read

    def allows(self, authorization: str) -> bool:
        scheme, _, presented = authorization.partition(" ")
        candidate = hashlib.sha256(presented.encode("latin-1", "replace")).digest()
        # Compare with every configured token, without stopping at a match, so timing reveals nothing.
        matched = False
        for digest in self.token_digests:
            matched |= hmac.compare_digest(candidate, digest)
        return matched and scheme == "Bearer" and bool(presented)

    def check_write(self, request: Request) -> None:
        if not self.allows(request.headers.get("authorization", "")):
            raise HTTPException(401, "Unauthorized", {"WWW-Authenticate": 'Bearer realm="batch-metrics"'})

    def check_read(self, request: Request) -> None:
        if not self.public_read:
            self.check_write(request)


def _field_path(loc: Sequence[int | str]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def describe_error(error: ErrorDetails) -> str:
    """The Worker's wording (`batch_id is required`, `results[3].recipe_name is required`)."""
    where = _field_path(error["loc"])
    if error["type"] == "json_invalid":
        return "invalid JSON"
    if not where:
        return "the body must be a JSON object"
    if where == "results" and error["type"] in ("missing", "list_type"):
        return "results array is required"
    absent = error["type"] == "missing" or error["input"] is None
    if absent or (error["type"] == "string_too_short" and error["input"] == ""):
        return f"{where} is required"
    return f"{where}: {error['msg']}"


def _without_nul(body: bytearray) -> bytes | bytearray:
    """NUL becomes U+FFFD on every backend alike; the cheap `in` test keeps the regex off normal bodies."""
    return _NUL_ESCAPE.sub(rb"\1\\ufffd", body) if b"\\u0000" in body else body


def _parse(body: bytearray) -> BatchPayload:
    """Validate (in a worker thread); the body's buffer is emptied as soon as the rows are parsed."""
    try:
        payload = PAYLOAD_ADAPTER.validate_json(_without_nul(body))
    except ValidationError as error:
        raise HTTPException(400, f"Bad request: {describe_error(error.errors()[0])}") from None
    del body[:]
    return payload


class Endpoint:
    """The route handlers, sharing one storage, guard, budget and the limits."""

    def __init__(self, storage: Storage, guard: Guard, limits: Limits) -> None:
        self.storage = storage
        self.guard = guard
        self.limits = limits
        self.budget = ByteBudget(limits.max_in_flight_bytes)
        # Parsed rows cost ~10x their body, and parsing is CPU-bound under the GIL: only one upload
        # more than the database can write at once is parsed, the others wait their turn in order
        # (asyncio's semaphores are first come first served; a thread lock is not).
        self.writing = asyncio.Semaphore(storage.writers)
        self.working = asyncio.Semaphore(storage.writers + 1)
        self.openapi = render_openapi().encode()

    async def health(self, request: Request) -> Response:
        healthy = await run_in_threadpool(self.storage.healthy)
        return JSONResponse({"status": "ok" if healthy else "unavailable"}, 200 if healthy else 503)

    async def openapi_document(self, request: Request) -> Response:
        return Response(self.openapi, media_type="application/json")

    async def upload(self, request: Request) -> Response:
        self.guard.check_write(request)  # from the headers: nothing of the body is read before this
        key = request.headers.get("idempotency-key", "").strip() or None
        if key and len(key) > MAX_IDEMPOTENCY_KEY:
            raise HTTPException(
                400, f"Bad request: Idempotency-Key is longer than {MAX_IDEMPOTENCY_KEY} characters"
            )
        try:
            length = declared_length(request.headers.get("content-length"), self.limits)
            gzip = check_encoding(request.headers.get("content-encoding"))
            async with share_of(self.budget, self.limits) as share:
                if length is not None and not gzip:
                    await share.cover(length, step=0)  # the whole body, before reading any of it
                buffer = BodyBuffer(self.limits, share, gzip=gzip)
                async with asyncio.timeout(self.limits.body_seconds):
                    async for chunk in request.stream():
                        await buffer.add(chunk)
                body = buffer.finish()
                async with self.working:
                    payload = await run_in_threadpool(_parse, body)
                    async with self.writing:
                        run_id, duplicate = await run_in_threadpool(self.storage.insert_batch, payload, key)
        except BodyError as error:
            return PlainTextResponse(error.message, error.status, error.headers)
        except ClientDisconnect:
            return PlainTextResponse("Bad request: the body ended early", 400)
        except TimeoutError:  # the wall-clock deadline of a body that trickles in
            return PlainTextResponse("Request timeout: the body took too long to arrive", 408)
        if duplicate:
            return JSONResponse({"batch_run_id": run_id, "duplicate": True}, 200)
        return JSONResponse({"batch_run_id": run_id}, 201)

    async def list_runs(self, request: Request) -> Response:
        self.guard.check_read(request)
        query = _known_query(request, _RUN_QUERY)
        for name, value in query.items():
            if "\x00" in value:  # PostgreSQL text cannot hold NUL; no stored value has one
                raise HTTPException(400, f"Bad request: {name} must not contain NUL")
        limit = _query_number(query, "limit", 50)
        if not 1 <= limit <= 500:
            raise HTTPException(400, "Bad request: limit must be between 1 and 500")
        cursor = _query_number(query, "cursor", None) if "cursor" in query else None
        runs, next_id = await run_in_threadpool(
            self.storage.list_runs,
            RunFilter(
                batch_id=query.get("batch_id"),
                ecosystem=query.get("ecosystem"),
                since=query.get("since"),
                until=query.get("until"),
                before_id=cursor,
                limit=limit,
            ),
        )
        return _json({"runs": runs, "next_cursor": None if next_id is None else str(next_id)})

    async def get_run(self, request: Request) -> Response:
        self.guard.check_read(request)
        _known_query(request, set())
        run_id = request.path_params["run_id"]
        if not _DIGITS.fullmatch(run_id):
            raise HTTPException(404, "Not found")
        run = await run_in_threadpool(self.storage.get_run, int(run_id))
        if run is None:
            raise HTTPException(404, "Not found")
        return _json(run)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/batch-metrics", self.upload, methods=["POST"]),
            Route("/health", self.health, methods=["GET", "HEAD"]),
            Route("/openapi.json", self.openapi_document, methods=["GET", "HEAD"]),
            Route("/batch-runs", self.list_runs, methods=["GET", "HEAD"]),
            Route("/batch-runs/{run_id}", self.get_run, methods=["GET", "HEAD"]),
        ]


def _known_query(request: Request, known: set[str]) -> dict[str, str]:
    query = dict(request.query_params)
    unknown = sorted(set(query) - known)
    if unknown:  # a misspelt filter would otherwise silently be ignored
        raise HTTPException(400, f"Bad request: unknown query parameter {unknown[0][:40]!r}")
    return query


def _query_number(query: dict[str, str], name: str, default: int | None) -> int:
    value = query.get(name)
    if value is None and default is not None:
        return default
    if value is None or not _DIGITS.fullmatch(value):
        raise HTTPException(400, f"Bad request: {name} must be a whole number of at most 18 digits")
    return int(value)


def _json(body: object, status: int = 200) -> Response:
    return Response(json.dumps(body, ensure_ascii=False).encode(), status, media_type="application/json")


async def _http_error(request: Request, error: Exception) -> Response:
    if not isinstance(error, HTTPException):
        raise error
    return PlainTextResponse(error.detail, error.status_code, error.headers)


async def _server_error(request: Request, error: Exception) -> Response:
    request_id = request.scope["state"]["request_id"]
    log.exception("request %s failed", request_id, exc_info=error)
    return Response(internal_error(request_id), 500, media_type="application/json")


def create_app(
    storage: Storage,
    tokens: Iterable[str],
    *,
    limits: Limits | None = None,
    public_read: bool = False,
    stale_after: timedelta | None = None,
    lifespan: Lifespan[Starlette] | None = None,
) -> Edge:
    """The whole endpoint as one ASGI app. The caller owns `storage` (or closes it in `lifespan`)."""
    limits = limits or Limits()
    guard = Guard(tokens, public_read=public_read)
    endpoint = Endpoint(storage, guard, limits)
    # The endpoint's routes, then the dashboard's (the page at `/`, its JSON, `/metrics`).
    routes = endpoint.routes() + dashboard_http.routes(storage, guard.check_read, stale_after=stale_after)
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
    """For any ASGI server: `$DATABASE_URL`, `$BATCH_METRICS_TOKEN` and/or `$BATCH_METRICS_TOKEN_FILE`;
    `$BATCH_METRICS_PUBLIC_READ=1` and `$BATCH_METRICS_STALE_AFTER_HOURS` as serve's flags of those names."""
    hours = os.environ.get(STALE_AFTER_ENV)
    storage = open_storage(database_target(None), pool_size=8)
    storage.migrate()

    @asynccontextmanager
    async def closing_storage(app: Starlette) -> AsyncIterator[None]:
        yield
        storage.close()

    return create_app(
        storage,
        load_tokens(os.environ.get(TOKEN_FILE_ENV)),
        public_read=os.environ.get(PUBLIC_READ_ENV) == "1",
        stale_after=timedelta(hours=float(hours)) if hours else None,
        lifespan=closing_storage,
    )


def migrate(db: str | None) -> list[int]:
    """Apply the migrations the database lacks (`batch-metrics migrate`); their numbers."""
    storage = open_storage(database_target(db), pool_size=1)
    try:
        return storage.migrate()
    finally:
        storage.close()
