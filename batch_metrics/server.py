"""The endpoint: a plain WSGI application, a drop-in for the Cloudflare Worker's `POST /batch-metrics`.

Routes: `POST /batch-metrics`, `GET /health`, and a read API (`GET /batch-runs`,
`GET /batch-runs/{id}`) behind the same bearer token. No framework: four routes
do not need one, and the hot path (read body, validate in Rust, bulk insert)
stays in plain sight. `serve()` runs it under waitress; any WSGI server works:

    gunicorn 'batch_metrics.server:app_from_env()'
"""

from __future__ import annotations

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

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from batch_metrics import TOKEN_ENV
from batch_metrics.models import BatchCreated, BatchPayload
from batch_metrics.storage import PostgresStorage, RunFilter, SQLiteStorage, open_storage

log = logging.getLogger("batch_metrics.server")
access_log = logging.getLogger("batch_metrics.access")

DEFAULT_MAX_BODY = 64 * 1024 * 1024
DEFAULT_DB = "batch-metrics.db"
_READ_CHUNK = 1024 * 1024
_RUN_PATH = re.compile(r"^/batch-runs/(\d{1,18})$")

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
Response = tuple[int, Any]
_REASONS = {
    200: "OK", 201: "Created", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
    405: "Method Not Allowed", 413: "Content Too Large", 500: "Internal Server Error",
    503: "Service Unavailable",
}  # fmt: skip


class HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_tokens(text: str) -> list[str]:
    """Tokens separated by commas or newlines; several are valid at once so they can be rotated."""
    return [token.strip() for token in re.split(r"[,\n]", text) if token.strip()]


def load_tokens(token_file: str | None = None, env: dict[str, str] | None = None) -> list[str]:
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
    """The Worker's wording (`batch_id is required`), with the path of a nested field."""
    where = _field_path(error["loc"])
    if error["type"] == "json_invalid":
        return "invalid JSON"
    if error["type"] in ("model_type", "model_attributes_type", "dict_type") and not where:
        return "the body must be a JSON object"
    if error["type"] == "missing" or (error["type"] == "string_too_short" and error["input"] == ""):
        return f"{where} is required"
    return f"{where}: {error['msg']}"


class BatchMetricsApp:
    """The WSGI callable. Storage errors become a generic 500 with a request id; details go to the log."""

    def __init__(
        self,
        storage: SQLiteStorage | PostgresStorage,
        tokens: Iterable[str],
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY,
    ) -> None:
        self.storage = storage
        self.tokens = [token.encode() for token in tokens]
        self.max_body_bytes = max_body_bytes
        self.active = 0
        self._active_lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        started = time.perf_counter()
        request_id = uuid.uuid4().hex[:16]
        with self._active_lock:
            self.active += 1
        try:
            status, body = self.route(environ)
        except HTTPError as error:
            status, body = error.status, {"error": error.message}
        except Exception:
            log.exception("request %s failed", request_id)
            status, body = 500, {"error": "Internal server error", "request_id": request_id}
        finally:
            with self._active_lock:
                self.active -= 1
        data = json.dumps(body).encode()
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(data))),
            ("X-Request-Id", request_id),
        ]
        if status == 401:
            headers.append(("WWW-Authenticate", 'Bearer realm="batch-metrics"'))
        start_response(f"{status} {_REASONS.get(status, '')}", headers)
        access_log.info(
            '%s "%s %s" %d %d %.1fms id=%s',
            environ.get("REMOTE_ADDR", "-"),
            environ.get("REQUEST_METHOD", "-"),
            environ.get("PATH_INFO", "-"),
            status,
            len(data),
            (time.perf_counter() - started) * 1000,
            request_id,
        )
        return [data]

    def route(self, environ: dict[str, Any]) -> Response:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/")
        if path == "/health":
            self._allow(method, "GET", "HEAD")
            healthy = self.storage.healthy()
            return (200, {"status": "ok"}) if healthy else (503, {"status": "unavailable"})
        if path == "/batch-metrics":
            self._allow(method, "POST")
            self._authorize(environ)
            return self._receive(environ)
        if path == "/batch-runs":
            self._allow(method, "GET")
            self._authorize(environ)
            return 200, self._list_runs(environ)
        match = _RUN_PATH.match(path)
        if match:
            self._allow(method, "GET")
            self._authorize(environ)
            run = self.storage.get_run(int(match.group(1)))
            if run is None:
                raise HTTPError(404, "Not found")
            return 200, run
        raise HTTPError(404, "Not found")

    @staticmethod
    def _allow(method: str, *allowed: str) -> None:
        if method not in allowed:
            raise HTTPError(405, f"Method not allowed; use {' or '.join(allowed)}")

    def _authorize(self, environ: dict[str, Any]) -> None:
        header = environ.get("HTTP_AUTHORIZATION", "")
        scheme, _, presented = header.partition(" ")
        candidate = presented.strip().encode() if scheme.lower() == "bearer" else b""
        # Compare against every token, without stopping early, so timing reveals nothing.
        matched = False
        for token in self.tokens:
            matched |= hmac.compare_digest(candidate, token)
        if not (matched and candidate):
            raise HTTPError(401, "Unauthorized")

    def _read_body(self, environ: dict[str, Any]) -> bytes:
        limit = self.max_body_bytes
        try:
            declared = int(environ.get("CONTENT_LENGTH") or -1)
        except ValueError as error:
            raise HTTPError(400, "Bad request: invalid Content-Length") from error
        if declared > limit:
            raise HTTPError(413, f"Body larger than {limit} bytes")
        stream = environ["wsgi.input"]
        chunks: list[bytes] = []
        size = 0
        while declared < 0 or size < declared:
            chunk = stream.read(min(_READ_CHUNK, declared - size) if declared >= 0 else _READ_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise HTTPError(413, f"Body larger than {limit} bytes")
            chunks.append(chunk)
        body = b"".join(chunks)
        encoding = environ.get("HTTP_CONTENT_ENCODING", "identity").strip().lower()
        if encoding == "gzip":
            return self._gunzip(body)
        if encoding not in ("", "identity"):
            raise HTTPError(400, f"Bad request: unsupported Content-Encoding {encoding[:20]!r}")
        return body

    def _gunzip(self, body: bytes) -> bytes:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            data = inflater.decompress(body, self.max_body_bytes + 1)
        except zlib.error as error:
            raise HTTPError(400, "Bad request: invalid gzip body") from error
        if len(data) > self.max_body_bytes or inflater.unconsumed_tail:
            raise HTTPError(413, f"Decompressed body larger than {self.max_body_bytes} bytes")
        if not inflater.eof:
            raise HTTPError(400, "Bad request: truncated gzip body")
        return data

    def _receive(self, environ: dict[str, Any]) -> Response:
        body = self._read_body(environ)
        try:
            payload = BatchPayload.model_validate_json(body)
        except ValidationError as error:
            raise HTTPError(400, f"Bad request: {describe_error(error.errors()[0])}") from None
        key = environ.get("HTTP_IDEMPOTENCY_KEY", "").strip()[:200] or None
        run_id, duplicate = self.storage.insert_batch(payload, key)
        created = BatchCreated(batch_run_id=run_id, duplicate=duplicate)
        return (200, created.model_dump()) if duplicate else (201, {"batch_run_id": run_id})

    def _list_runs(self, environ: dict[str, Any]) -> dict[str, Any]:
        query = {key: values[-1] for key, values in parse_qs(environ.get("QUERY_STRING", "")).items()}
        try:
            limit = int(query.get("limit", "50"))
            cursor = int(query["cursor"]) if query.get("cursor") else None
        except ValueError as error:
            raise HTTPError(400, "Bad request: limit and cursor must be integers") from error
        if not 1 <= limit <= 500:
            raise HTTPError(400, "Bad request: limit must be between 1 and 500")
        runs = self.storage.list_runs(
            RunFilter(
                batch_id=query.get("batch_id"),
                ecosystem=query.get("ecosystem"),
                since=query.get("since"),
                until=query.get("until"),
                before_id=cursor,
                limit=limit,
            )
        )
        next_cursor = str(runs[-1]["id"]) if len(runs) == limit else None
        return {"runs": runs, "next_cursor": next_cursor}


def database_target(db: str | None) -> str:
    return db or os.environ.get("DATABASE_URL") or DEFAULT_DB


def create_app(
    storage: SQLiteStorage | PostgresStorage, tokens: Iterable[str], *, max_body_bytes: int = DEFAULT_MAX_BODY
) -> BatchMetricsApp:
    return BatchMetricsApp(storage, tokens, max_body_bytes=max_body_bytes)


def app_from_env() -> BatchMetricsApp:
    """For WSGI servers: database from $DATABASE_URL, tokens from $BATCH_METRICS_TOKEN (and $..._FILE)."""
    storage = open_storage(database_target(None))
    storage.migrate()
    tokens = load_tokens(os.environ.get(f"{TOKEN_ENV}_FILE"))
    if not tokens:
        log.warning("no token configured: every request that needs one will get 401")
    return create_app(storage, tokens)


def migrate(db: str | None) -> list[int]:
    storage = open_storage(database_target(db))
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
    """Run under waitress until SIGTERM/SIGINT; then stop accepting and let requests in flight finish."""
    import waitress.server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    target = database_target(db)
    storage = open_storage(target)
    applied = storage.migrate()
    tokens = load_tokens(token_file)
    if not tokens:
        log.warning("no token configured (set %s or --token-file): uploads will get 401", TOKEN_ENV)
    app = create_app(storage, tokens, max_body_bytes=max_body_bytes)
    server = waitress.server.create_server(
        app,
        host=host,
        port=port,
        threads=threads,
        max_request_body_size=max_body_bytes + 1,
        channel_timeout=120,
        ident="batch-metrics",
        clear_untrusted_proxy_headers=True,
    )
    shown_db = target if not target.startswith(("postgresql://", "postgres://")) else "PostgreSQL"
    log.info(
        "serving on http://%s:%s, database %s, migrations applied: %s",
        host,
        server.effective_port,
        shown_db,
        applied or "none",
    )

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: no longer accepting; letting requests in flight finish", signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        deadline = time.monotonic() + drain_seconds
        while app.active and time.monotonic() < deadline:
            time.sleep(0.05)
        server.task_dispatcher.shutdown(timeout=max(deadline - time.monotonic(), 0.1))
        storage.close()
        log.info("stopped")
