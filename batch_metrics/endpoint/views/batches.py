"""The Worker-compatible API: `POST /batch-metrics`, the read API (`GET /batch-runs`, `GET /batch-runs/{id}`),
`GET /health` and `GET /openapi.json`.

Answers mirror the Worker's: 201 `{"batch_run_id": N}` (with `changes`, what changed since each
ecosystem's previous run, which the Worker lacks), plain-text `Bad request: <field> is required`
and `Unauthorized`; `Forbidden: ...` (403) says what a valid credential may not do, such as write
an ecosystem outside its patterns. An upload is refused from its headers before any of its body is
read, read within the limits of body.py, validated against the wire contract in a worker thread,
and stored in one transaction; when the database cannot store anything now it is answered 503 (507
for a full disk) with `Retry-After`, which the client retries. A run's results are read a page at a
time. Storage calls are blocking; they run with `run_in_threadpool`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from functools import partial
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from batch_metrics.endpoint.access import Guard
from batch_metrics.endpoint.body import (
    BodyBuffer,
    BodyError,
    ByteBudget,
    Limits,
    check_encoding,
    declared_length,
    share_of,
)
from batch_metrics.endpoint.openapi import render_openapi
from batch_metrics.endpoint.storage import RESULTS_PAGE, RunFilter, SQLStorage, Unavailable
from batch_metrics.endpoint.views import json_answer, known_query
from batch_metrics.models import PAYLOAD_ADAPTER, BatchPayload

log = logging.getLogger("batch_metrics.server")

MAX_IDEMPOTENCY_KEY = 255
RETRY_AFTER_SECONDS = 30  # after a 503/507 for a database that cannot store anything now
_RUN_QUERY = {"batch_id", "ecosystem", "since", "until", "limit", "cursor"}
_PAGE_QUERY = {"limit", "cursor"}
_DIGITS = re.compile(r"[0-9]{1,18}")
# A JSON `\u0000` escape (an even number of backslashes before it): PostgreSQL text cannot hold NUL.
_NUL_ESCAPE = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")
ANSWERED_ECOSYSTEMS = 64
ANSWERED_ENTRIES = 1000
_LISTS = ("new_failures", "fixed", "still_failing", "new_recipes", "gone_recipes", "platforms")


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


def _parse(body: bytearray) -> tuple[BatchPayload, set[str]]:
    """Validate (in a worker thread); the body's buffer is emptied as soon as the rows are parsed.
    Also the ecosystems the batch writes: its own and every row's, which the writer must be allowed."""
    try:
        payload = PAYLOAD_ADAPTER.validate_json(_without_nul(body))
    except ValidationError as error:
        raise HTTPException(400, f"Bad request: {describe_error(error.errors()[0])}") from None
    del body[:]
    return payload, {payload["ecosystem"], *(row["ecosystem"] for row in payload["results"])}


def answered_changes(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The upload's answer stays small whatever the batch (a client reads a few MiB of it at most): the
    first ANSWERED_ECOSYSTEMS ecosystems by name, their counts whole, and ANSWERED_ENTRIES of each list
    over all of them. The run's page (`GET /api/dashboard/runs/{id}/changes`) has what was stored."""
    left = dict.fromkeys(_LISTS, ANSWERED_ENTRIES)
    answered = []
    for entry in changes[:ANSWERED_ECOSYSTEMS]:
        trimmed = dict(entry)
        for name in _LISTS:
            trimmed[name] = entry[name][: left[name]]
            left[name] -= len(trimmed[name])
        answered.append(trimmed)
    return answered


class Endpoint:
    """The route handlers, sharing one storage, guard, budget and the limits."""

    def __init__(
        self, storage: SQLStorage, guard: Guard, limits: Limits, *, compare_runs: bool = True
    ) -> None:
        self.storage = storage
        self.compare_runs = compare_runs
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
        report = await run_in_threadpool(self.storage.health)
        return JSONResponse(report.answer(), 200 if report.ok else 503, {"Cache-Control": "no-store"})

    async def openapi_document(self, request: Request) -> Response:
        return Response(self.openapi, media_type="application/json")

    async def upload(self, request: Request) -> Response:
        access = await self.guard.check_write(request)  # from the headers: no body is read before this
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
                    payload, ecosystems = await run_in_threadpool(_parse, body)
                    uploader = self.guard.uploader(request, access, ecosystems)  # a 403 names the ecosystem
                    async with self.writing:
                        store = partial(self.storage.store_batch, compare=self.compare_runs)
                        stored = await run_in_threadpool(store, payload, key, uploader)
        except BodyError as error:
            return PlainTextResponse(error.message, error.status, error.headers)
        except ClientDisconnect:
            return PlainTextResponse("Bad request: the body ended early", 400)
        except TimeoutError:  # the wall-clock deadline of a body that trickles in
            return PlainTextResponse("Request timeout: the body took too long to arrive", 408)
        except Unavailable as error:
            log.warning("an upload was not stored: %s", error.reason, exc_info=error.__cause__)
            word = "Insufficient storage" if error.status == 507 else "Service unavailable"
            return PlainTextResponse(
                f"{word}: {error.reason}; the batch was not stored, send it again later",
                error.status,
                {"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        # The Worker's answer, and what changed since each ecosystem's previous run (the same re-delivered).
        answer: dict[str, object] = {"batch_run_id": stored.run_id}
        if stored.duplicate:
            answer["duplicate"] = True
        if stored.changes is not None:
            answer["changes"] = answered_changes(stored.changes)
        return json_answer(answer, 200 if stored.duplicate else 201)

    async def list_runs(self, request: Request) -> Response:
        self.guard.check_read(request)
        query = known_query(request, _RUN_QUERY)
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
        return json_answer({"runs": runs, "next_cursor": None if next_id is None else str(next_id)})

    async def get_run(self, request: Request) -> Response:
        self.guard.check_read(request)
        query = known_query(request, _PAGE_QUERY)
        run_id = request.path_params["run_id"]
        if not _DIGITS.fullmatch(run_id):
            raise HTTPException(404, "Not found")
        limit = _query_number(query, "limit", RESULTS_PAGE)
        if not 1 <= limit <= RESULTS_PAGE:
            raise HTTPException(400, f"Bad request: limit must be between 1 and {RESULTS_PAGE}")
        after = _query_number(query, "cursor", 0)
        run = await run_in_threadpool(partial(self.storage.get_run, int(run_id), after=after, limit=limit))
        if run is None:
            raise HTTPException(404, "Not found")
        return json_answer(run)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/batch-metrics", self.upload, methods=["POST"]),
            Route("/health", self.health, methods=["GET", "HEAD"]),
            Route("/openapi.json", self.openapi_document, methods=["GET", "HEAD"]),
            Route("/batch-runs", self.list_runs, methods=["GET", "HEAD"]),
            Route("/batch-runs/{run_id}", self.get_run, methods=["GET", "HEAD"]),
        ]


def _query_number(query: dict[str, str], name: str, default: int | None) -> int:
    value = query.get(name)
    if value is None and default is not None:
        return default
    if value is None or not _DIGITS.fullmatch(value):
        raise HTTPException(400, f"Bad request: {name} must be a whole number of at most 18 digits")
    return int(value)
