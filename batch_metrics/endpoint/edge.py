"""What every request goes through before and after the routes: an id, one access-log line, a final answer.

`Edge` wraps the whole ASGI app:

- it gives the request an id (`X-Request-Id`, and `scope["state"]["request_id"]` for the routes);
- it writes one access-log line per request, with every field escaped: a CR/LF or other control
  character in the path (`GET /health%0a<forged line>`) is logged as `\\x0a`, never as a new line;
- when the app answers before it has read the whole request body (401 from the headers, 413
  mid-stream), it sends the answer first and then reads and discards the rest of the body, up to a
  bound and a deadline, before ending the response. Clients that write their whole body before
  reading (urllib, requests, Node's fetch) then read the answer instead of a connection reset, and
  nothing of the discarded body is kept;
- an exception that escaped the routes becomes a generic 500 if nothing was sent yet.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("batch_metrics.server")
access_log = logging.getLogger("batch_metrics.access")

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]

# An early answer waits for at most this much of the unread body (discarded as it comes) before the
# connection closes: a refused client still reads its answer, and costs bandwidth, not memory.
DRAIN_BYTES = 256 * 1024 * 1024
DRAIN_SECONDS = 10.0
# C0 and C1 controls, DEL, the Unicode line and paragraph separators, and the escape character itself.
_UNPRINTABLE = re.compile("[\\\\\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escape(found: re.Match[str]) -> str:
    char = found[0]
    if char == "\\":
        return "\\\\"
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def printable(text: str) -> str:
    """`text` with every control character (and backslash) as a `\\xNN` / `\\uNNNN` escape: one log line."""
    return _UNPRINTABLE.sub(_escape, text)


def internal_error(request_id: str) -> bytes:
    return json.dumps({"error": "Internal server error", "request_id": request_id}).encode()


@dataclass
class _Exchange:
    """What the edge learns about one request while it passes through."""

    head: bool
    received: int = 0
    body_done: bool = False
    status: int = 0
    sent: int = 0
    started: bool = False
    logged: bool = False


class Edge:
    def __init__(
        self, app: ASGIApp, *, drain_bytes: int = DRAIN_BYTES, drain_seconds: float = DRAIN_SECONDS
    ) -> None:
        self.app = app
        self.drain_bytes = drain_bytes
        self.drain_seconds = drain_seconds

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        request_id = uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id
        exchange = _Exchange(head=scope["method"] == "HEAD")

        async def counted_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                exchange.received += len(message.get("body", b""))
                exchange.body_done = not message.get("more_body", False)
            else:  # http.disconnect: nothing more will come
                exchange.body_done = True
            return message

        async def drain() -> None:
            """Read and drop what is left of the body, within the bound and the deadline."""
            drained = 0
            try:
                async with asyncio.timeout(self.drain_seconds):
                    while not exchange.body_done and drained <= self.drain_bytes:
                        drained += len((await counted_receive()).get("body", b""))
            except TimeoutError:
                return

        def log_once() -> None:
            """One line per request, written before the last of the answer is sent (so before a drain)."""
            if exchange.logged:
                return
            exchange.logged = True
            client = scope.get("client") or ("-", 0)
            # Never the query string or any header: the token stays out of the log.
            access_log.info(
                '%s "%s %s" %d in=%d out=%d %.1fms id=%s',
                printable(str(client[0])),
                printable(scope["method"]),
                printable(scope["path"]),
                exchange.status,
                exchange.received,
                exchange.sent,
                (time.perf_counter() - began) * 1000,
                request_id,
            )

        async def edge_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                exchange.started = True
                exchange.status = message["status"]
                headers = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body":
                if exchange.head:
                    message = {**message, "body": b""}
                exchange.sent += len(message.get("body", b""))
                if not message.get("more_body", False):
                    log_once()
                    if not exchange.body_done:
                        await send({**message, "more_body": True})
                        await drain()
                        message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        try:
            await self.app(scope, counted_receive, edge_send)
        except Exception:
            if exchange.started:  # the app's own 500 handler answered (and logged) already
                return
            log.exception("request %s failed", request_id)
            body = internal_error(request_id)
            await edge_send({"type": "http.response.start", "status": 500,
                             "headers": [(b"content-type", b"application/json"),
                                         (b"content-length", str(len(body)).encode())]})  # fmt: skip
            await edge_send({"type": "http.response.body", "body": body})
        finally:
            log_once()  # a request that ended without an answer (the client went away) is logged too
