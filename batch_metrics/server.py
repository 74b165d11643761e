"""The endpoint: a plain WSGI application, a drop-in for the Cloudflare Worker's `POST /batch-metrics`.

Routes: `POST /batch-metrics`, `GET /health`, `GET /openapi.json`, and a read
API (`GET /batch-runs`, `GET /batch-runs/{id}`) behind the same bearer token.
No framework: five routes do not need one, and the hot path (read the body,
validate it in Rust with pydantic, bulk insert) stays in plain sight.
Answers mirror the Worker's: 201 `{"batch_run_id": N}`, plain-text
`Bad request: <field> is required` and `Unauthorized`, JSON `{"error": ...}` on 500.

`serve()` runs the app under waitress; any WSGI server works:

    gunicorn 'batch_metrics.server:app_from_env()'
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import signal
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qs

import waitress.server
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from batch_metrics import TOKEN_ENV
from batch_metrics.models import PAYLOAD_ADAPTER
from batch_metrics.openapi import render_openapi
from batch_metrics.storage import PostgresStorage, RunFilter, SQLiteStorage, is_postgres_url, open_storage

log = logging.getLogger("batch_metrics.server")
access_log = logging.getLogger("batch_metrics.access")

DEFAULT_MAX_BODY = 64 * 1024 * 1024
DEFAULT_DB = "batch-metrics.db"
TOKEN_FILE_ENV = f"{TOKEN_ENV}_FILE"
MAX_IDEMPOTENCY_KEY = 255
_READ_CHUNK = 1024 * 1024
_RUN_PATH = re.compile(r"^/batch-runs/([0-9]{1,18})$")
_DIGITS = re.compile(r"[0-9]{1,18}")
_RUN_QUERY = {"batch_id", "ecosystem", "since", "until", "limit", "cursor"}
# A JSON `\u0000` escape (an even number of backslashes before it): PostgreSQL text cannot hold NUL.
_NUL_ESCAPE = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")
_REASONS = {
    200: "OK", 201: "Created", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
    405: "Method Not Allowed", 413: "Content Too Large", 415: "Unsupported Media Type",
    500: "Internal Server Error", 503: "Service Unavailable",
}  # fmt: skip

Storage = SQLiteStorage | PostgresStorage
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class HTTPError(Exception):
    """An answer other than success; its message is shown to the client as plain text."""

    def __init__(self, status: int, message: str, headers: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = list(headers)


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


def _without_nul(body: bytes) -> bytes:
    """NUL becomes U+FFFD on every backend alike; the cheap `in` test keeps the regex off normal bodies."""
    return _NUL_ESCAPE.sub(rb"\1\\ufffd", body) if b"\\u0000" in body else body


class BatchMetricsApp:
    """The WSGI callable. Unexpected errors become a generic 500 with a request id; details go to the log."""

    def __init__(
        self, storage: Storage, tokens: Iterable[str], *, max_body_bytes: int = DEFAULT_MAX_BODY
    ) -> None:
        self.storage = storage
        # Digests have one length, so comparing them reveals nothing about a token's length either.
        self.token_digests = [hashlib.sha256(token.encode()).digest() for token in tokens]
        self.max_body_bytes = max_body_bytes
        self.openapi = render_openapi().encode()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        started = time.perf_counter()
        request_id = uuid.uuid4().hex[:16]
        environ["batch_metrics.body_bytes"] = 0
        try:
            status, content_type, data, headers = self.route(environ)
        except HTTPError as error:
            status, content_type, data, headers = (
                error.status,
                "text/plain",
                error.message.encode(),
                error.headers,
            )
        except Exception:
            log.exception("request %s failed", request_id)
            body = {"error": "Internal server error", "request_id": request_id}
            status, content_type, data, headers = 500, "application/json", json.dumps(body).encode(), []
        headers = [
            *headers,
            ("Content-Type", f"{content_type}; charset=utf-8"),
            ("Content-Length", str(len(data))),
            ("X-Request-Id", request_id),
        ]
        start_response(f"{status} {_REASONS.get(status, '')}", headers)
        # Never the query string's neighbours or any header: the token stays out of the log.
        access_log.info(
            '%s "%s %s" %d in=%d out=%d %.1fms id=%s',
            environ.get("REMOTE_ADDR", "-"),
            environ.get("REQUEST_METHOD", "-"),
            environ.get("PATH_INFO", "-"),
            status,
            environ["batch_metrics.body_bytes"],
            len(data),
            (time.perf_counter() - started) * 1000,
            request_id,
        )
        return [data] if environ.get("REQUEST_METHOD") != "HEAD" else [b""]

    def route(self, environ: dict[str, Any]) -> tuple[int, str, bytes, list[tuple[str, str]]]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/")
        if path == "/health":
            self._allow(method, "GET", "HEAD")
            healthy = self.storage.healthy()
            return _json(200 if healthy else 503, {"status": "ok" if healthy else "unavailable"})
        if path == "/openapi.json":
            self._allow(method, "GET", "HEAD")
            return 200, "application/json", self.openapi, []
        if path == "/batch-metrics":
            self._allow(method, "POST")
            self._authorize(environ)
            return self._receive(environ)
        if path == "/batch-runs":
            self._allow(method, "GET", "HEAD")
            self._authorize(environ)
            return _json(200, self._list_runs(environ))
        match = _RUN_PATH.match(path)
        if match:
            self._allow(method, "GET", "HEAD")
            self._authorize(environ)
            run = self.storage.get_run(int(match.group(1)))
            if run is None:
                raise HTTPError(404, "Not found")
            return _json(200, run)
        raise HTTPError(404, "Not found")

    @staticmethod
    def _allow(method: str, *allowed: str) -> None:
        if method not in allowed:
            raise HTTPError(405, "Method not allowed", [("Allow", ", ".join(allowed))])

    def _authorize(self, environ: dict[str, Any]) -> None:
        scheme, _, presented = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        candidate = hashlib.sha256(presented.strip().encode("latin-1")).digest()
        # Compare with every configured token, without stopping at a match, so timing reveals nothing.
        matched = False
        for digest in self.token_digests:
            matched |= hmac.compare_digest(candidate, digest)
        if not (matched and scheme.lower() == "bearer" and presented.strip()):
            raise HTTPError(401, "Unauthorized", [("WWW-Authenticate", 'Bearer realm="batch-metrics"')])

    def _read_body(self, environ: dict[str, Any]) -> bytes:
        """The body, refused with 413 as soon as it is known to be over the limit (declared or read)."""
        limit = self.max_body_bytes
        too_large = HTTPError(413, f"Payload too large: the limit is {limit} bytes")
        try:
            declared = int(environ.get("CONTENT_LENGTH") or -1)
        except ValueError as error:
            raise HTTPError(400, "Bad request: invalid Content-Length") from error
        if declared > limit:
            raise too_large
        stream = environ["wsgi.input"]
        chunks: list[bytes] = []
        size = 0
        while declared < 0 or size < declared:
            chunk = stream.read(_READ_CHUNK if declared < 0 else min(_READ_CHUNK, declared - size))
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
        environ["batch_metrics.body_bytes"] = size
        body = b"".join(chunks)
        encoding = environ.get("HTTP_CONTENT_ENCODING", "").strip().lower()
        if encoding == "gzip":
            return self._gunzip(body)
        if encoding not in ("", "identity"):
            raise HTTPError(415, "Unsupported Content-Encoding: send gzip or identity")
        return body

    def _gunzip(self, body: bytes) -> bytes:
        """Inflate at most the body limit: a small gzip bomb costs us no more memory than a large body."""
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            data = inflater.decompress(body, self.max_body_bytes + 1)
        except zlib.error as error:
            raise HTTPError(400, "Bad request: invalid gzip body") from error
        if len(data) > self.max_body_bytes:
            raise HTTPError(413, f"Payload too large: inflated, the limit is {self.max_body_bytes} bytes")
        if not inflater.eof or inflater.unused_data:
            raise HTTPError(400, "Bad request: truncated gzip body or data after it")
        return data

    def _receive(self, environ: dict[str, Any]) -> tuple[int, str, bytes, list[tuple[str, str]]]:
        key = environ.get("HTTP_IDEMPOTENCY_KEY", "").strip() or None
        if key and len(key) > MAX_IDEMPOTENCY_KEY:
            raise HTTPError(
                400, f"Bad request: Idempotency-Key is longer than {MAX_IDEMPOTENCY_KEY} characters"
            )
        body = _without_nul(self._read_body(environ))
        try:
            payload = PAYLOAD_ADAPTER.validate_json(body)
        except ValidationError as error:
            raise HTTPError(400, f"Bad request: {describe_error(error.errors()[0])}") from None
        run_id, duplicate = self.storage.insert_batch(payload, key)
        if duplicate:
            return _json(200, {"batch_run_id": run_id, "duplicate": True})
        return _json(201, {"batch_run_id": run_id})

    def _list_runs(self, environ: dict[str, Any]) -> dict[str, Any]:
        pairs = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        query = {key: values[-1] for key, values in pairs.items()}
        unknown = sorted(set(query) - _RUN_QUERY)
        if unknown:  # a misspelt filter would otherwise silently list everything
            raise HTTPError(400, f"Bad request: unknown query parameter {unknown[0][:40]!r}")
        limit = _query_number(query, "limit", 50)
        if not 1 <= limit <= 500:
            raise HTTPError(400, "Bad request: limit must be between 1 and 500")
        cursor = _query_number(query, "cursor", None) if "cursor" in query else None
        runs, next_id = self.storage.list_runs(
            RunFilter(
                batch_id=query.get("batch_id"),
                ecosystem=query.get("ecosystem"),
                since=query.get("since"),
                until=query.get("until"),
                before_id=cursor,
                limit=limit,
            )
        )
        return {"runs": runs, "next_cursor": None if next_id is None else str(next_id)}


def _query_number(query: dict[str, str], name: str, default: int | None) -> int:
    value = query.get(name)
    if value is None and default is not None:
        return default
    if value is None or not _DIGITS.fullmatch(value):
        raise HTTPError(400, f"Bad request: {name} must be a whole number of at most 18 digits")
    return int(value)


def _json(status: int, body: object) -> tuple[int, str, bytes, list[tuple[str, str]]]:
    return status, "application/json", json.dumps(body, ensure_ascii=False).encode(), []


class EndpointServer:
    """waitress, its event loop run here so that stopping lets requests in flight finish.

    waitress's own `run()` stops at once on a signal and drops responses not yet sent;
    `stop()` (from any thread or a signal handler) instead closes the listening socket,
    keeps serving the connections that have a request in progress, then shuts down.
    """

    def __init__(
        self,
        app: BatchMetricsApp,
        host: str = "127.0.0.1",
        port: int = 8787,
        *,
        threads: int = 8,
        channel_timeout: int = 120,
    ) -> None:
        self.server = waitress.server.create_server(
            app,
            host=host,
            port=port,
            threads=threads,
            # waitress refuses larger bodies itself (413) before buffering them.
            max_request_body_size=app.max_body_bytes,
            # Big reads, and bodies up to 16 MiB kept in memory rather than spilled to a temp file:
            # a 100k-result batch (~11 MB) arrives several times faster.
            recv_bytes=256 * 1024,
            inbuf_overflow=16 * 1024 * 1024,
            channel_timeout=channel_timeout,
            ident="batch-metrics",
            clear_untrusted_proxy_headers=True,
        )
        self._stopping = threading.Event()

    @property
    def port(self) -> int:
        return int(self.server.effective_port)

    def stop(self) -> None:
        self._stopping.set()
        self.server.pull_trigger()  # wake the loop now, not at its next timeout

    def _busy(self) -> bool:
        return any(
            channel.request is not None or channel.requests or channel.total_outbufs_len
            for channel in list(self.server.active_channels.values())
        )

    def run(self, drain_seconds: float = 30.0) -> None:
        server = self.server
        while not self._stopping.is_set():
            server.asyncore.loop(timeout=1.0, map=server._map, use_poll=True, count=1)
        server.accepting = False
        server.del_channel()
        server.socket.close()
        deadline = time.monotonic() + drain_seconds
        while True:  # at least once: bytes that arrived with the signal are read before deciding
            server.asyncore.loop(timeout=0.05, map=server._map, use_poll=True, count=1)
            if not self._busy() or time.monotonic() > deadline:
                break
        for channel in list(server.active_channels.values()):
            channel.handle_close()
        server.trigger.close()
        server.task_dispatcher.shutdown(timeout=max(deadline - time.monotonic(), 1.0))


def database_target(db: str | None) -> str:
    """`--db`, else `$DATABASE_URL`, else `batch-metrics.db` in the working directory."""
    return db or os.environ.get("DATABASE_URL") or DEFAULT_DB


def create_app(
    storage: Storage, tokens: Iterable[str], *, max_body_bytes: int = DEFAULT_MAX_BODY
) -> BatchMetricsApp:
    return BatchMetricsApp(storage, tokens, max_body_bytes=max_body_bytes)


def _start(db: str | None, token_file: str | None, max_body_bytes: int, pool_size: int) -> BatchMetricsApp:
    target = database_target(db)
    storage = open_storage(target, pool_size=pool_size)
    applied = storage.migrate()
    log.info(
        "database %s, migrations applied: %s",
        "PostgreSQL" if is_postgres_url(target) else target,  # a URL may carry a password
        ", ".join(map(str, applied)) or "none needed",
    )
    tokens = load_tokens(token_file)
    if not tokens:
        log.warning("no token configured (set %s or a token file): every upload will get 401", TOKEN_ENV)
    return create_app(storage, tokens, max_body_bytes=max_body_bytes)


def app_from_env() -> BatchMetricsApp:
    """For other WSGI servers: `$DATABASE_URL`, `$BATCH_METRICS_TOKEN` and/or `$BATCH_METRICS_TOKEN_FILE`."""
    return _start(None, os.environ.get(TOKEN_FILE_ENV), DEFAULT_MAX_BODY, pool_size=8)


def migrate(db: str | None) -> list[int]:
    """Apply the migrations the database lacks (`batch-metrics migrate`); their numbers."""
    storage = open_storage(database_target(db), pool_size=1)
    try:
        return storage.migrate()
    finally:
        storage.close()


def serve(
    host: str = "127.0.0.1",
    port: int = 8787,
    db: str | None = None,
    *,
    token_file: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    threads: int = 8,
    drain_seconds: float = 30.0,
) -> None:
    """Run under waitress until SIGTERM/SIGINT, then finish the requests in flight and exit."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = _start(db, token_file or os.environ.get(TOKEN_FILE_ENV), max_body_bytes, pool_size=threads)
    endpoint = EndpointServer(app, host, port, threads=threads)

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: no longer accepting; finishing the requests in flight", signum)
        endpoint.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("serving on http://%s:%d", host, endpoint.port)
    try:
        endpoint.run(drain_seconds)
    finally:
        app.storage.close()
        log.info("stopped")
