"""The uploader: POST one payload to `<endpoint>/batch-metrics`, retrying only what is worth retrying.

A small explicit loop rather than urllib3's `Retry` behind an `HTTPAdapter`:
`Retry` has no bound on the *total* time, cannot cap `Retry-After` by the time
left, and its backoff jitter is additive rather than full; and with the loop
each attempt's outcome is logged in words. The same `Idempotency-Key` goes on
every attempt, so an endpoint that honours it stores the batch once.

Deadlines are wall-clock. requests' timeouts apply to each socket operation, so
a server sending one byte a second would hold an attempt for ever; each attempt
therefore runs in a daemon thread that the loop waits for only until the
attempt's deadline, then abandons (it sends nothing more than the request it
was sending, and dies with the process or at its next socket timeout). An
abandoned attempt that still reaches the endpoint is harmless: the next one
carries the same Idempotency-Key.

Bodies over GZIP_THRESHOLD go gzip-compressed; an endpoint that answers 415 gets
the same bytes uncompressed at once. The key stays the hash of the uncompressed
bytes, so every re-send matches whatever the encoding.

Where the token may go, and how one request is made and bounded, is `client.http`.

Never raises for network or HTTP trouble: every outcome is an `UploadResult`,
and no message it returns or logs contains the token.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import requests
from pydantic import TypeAdapter, ValidationError

from batch_metrics import __version__
from batch_metrics.client.http import (
    Answer,
    bearer_request,
    endpoint_refusal,
    within,
)
from batch_metrics.client.redact import Redactor
from batch_metrics.models import RunChanges

ROUTE = "/batch-metrics"
_CHANGES = TypeAdapter(list[RunChanges])
BACKOFF_BASE = 1.0
BACKOFF_CAP = 30.0
BODY_SHOWN = 300
# Below this, compressing costs more time than it saves; above it a batch shrinks about tenfold.
GZIP_THRESHOLD = 1024 * 1024
# Measured on a 1M-result payload (108 MiB, 2 cores): level 1 gives 9.4 MiB in 1.0 s, level 6
# 5.9 MiB in 1.4 s, level 9 5.3 MiB in 5.4 s.
GZIP_LEVEL = 6
# RFC 6750 token68: what may follow "Bearer " in the Authorization header.
_TOKEN_SYNTAX = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_ERRNO_TEXT = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
# What OpenSSL says when the answer to its ClientHello is not TLS at all (1.1: the first, 3.x: either).
_NOT_TLS = re.compile(r"wrong version number|record layer failure|packet length too long", re.IGNORECASE)


@dataclass(frozen=True)
class UploadResult:
    status: Literal["uploaded", "duplicate", "failed"]
    batch_run_id: int | None
    http_status: int | None
    attempts: int
    message: str
    # What changed since each ecosystem's previous run (models.RunChanges, as JSON values), when the
    # endpoint says; the Worker and endpoints before it do not.
    changes: list[dict[str, Any]] | None = None


def idempotency_key(body: bytes) -> str:
    """Derived from the exact bytes, so re-sending a saved payload file reuses the key."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def batch_url(endpoint: str) -> str:
    """`https://host` → `https://host/batch-metrics`; a URL already ending in the route is kept."""
    base = endpoint.strip().rstrip("/")
    return base if base.endswith(ROUTE) else base + ROUTE


def encode_body(body: bytes) -> tuple[bytes, str | None]:
    """The bytes to send and their Content-Encoding: gzip above GZIP_THRESHOLD, else as they are."""
    if len(body) <= GZIP_THRESHOLD:
        return body, None
    return gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0), "gzip"


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """`Retry-After` as seconds from `now` (epoch); it may be a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max((moment - datetime.fromtimestamp(now, UTC)).total_seconds(), 0.0)


def _short_body(answer: Answer, redact: Redactor) -> str:
    text = _CONTROL.sub(" ", answer.body.decode("utf-8", errors="replace")).strip()
    if len(text) > BODY_SHOWN:
        text = text[:BODY_SHOWN] + "..."
    return redact(text) or "(empty body)"


def _network_reason(error: requests.RequestException, url: str) -> str:
    """The exception's name (what people search for) and what it means, without requests' noise."""
    host = urlsplit(url).netloc
    if isinstance(error, requests.ConnectTimeout):
        meaning = f"connecting to {host} timed out"
    elif isinstance(error, requests.Timeout):
        meaning = f"{host} sent no response within the read timeout"
    elif isinstance(error, requests.exceptions.SSLError) and _NOT_TLS.search(str(error)):
        meaning = (
            f"{host} does not speak TLS: it answered the https:// handshake in plain text "
            "(is the endpoint a plain-http server? use http:// for loopback, else put TLS in front of it)"
        )
    elif isinstance(error, requests.ConnectionError):
        cause = _ERRNO_TEXT.search(str(error))
        meaning = f"cannot connect to {host}" + (f": {cause.group(1).strip()}" if cause else "")
    else:
        meaning = f"request to {host} failed"
    return f"{type(error).__name__}: {meaning}"


def _created(answer: Answer) -> tuple[int | None, bool, list[dict[str, Any]] | None]:
    """`batch_run_id`, the `duplicate` flag and the `changes` from a JSON answer; what is missing or is not
    what the contract says is None (False for the flag)."""
    try:
        data = json.loads(answer.body)
    except ValueError:
        return None, False, None
    if not isinstance(data, dict):
        return None, False, None
    run_id = data.get("batch_run_id")
    try:
        changes = _CHANGES.dump_python(_CHANGES.validate_python(data["changes"]), mode="json")
    except (KeyError, ValidationError):
        changes = None
    return (run_id if isinstance(run_id, int) else None), data.get("duplicate") is True, changes


def _run_name(run_id: int | None) -> str:
    return f"batch run {run_id}" if run_id is not None else "a batch run (the endpoint did not say which)"


def _post(
    url: str, body: bytes, headers: Mapping[str, str], token: str, limit: float, kept: requests.Session | None
) -> Answer:
    """One attempt of the upload."""
    return bearer_request("POST", url, token, limit, kept, data=body, headers=headers)


def _attempt(
    url: str, body: bytes, headers: Mapping[str, str], token: str, limit: float, kept: requests.Session | None
) -> Answer | requests.RequestException | None:
    """`_post` with a wall-clock deadline: its answer, its network error, or None when `limit` passed."""
    return within(limit, lambda: _post(url, body, headers, token, limit, kept))


def total_time(timeout: float, retries: int) -> float:
    """Every attempt may use its whole timeout, plus room for the backoff waits between them."""
    return timeout * (retries + 1) + 60.0


def upload(
    body: bytes,
    *,
    endpoint: str,
    token: str,
    timeout: float = 30.0,
    retries: int = 3,
    total_timeout: float = 120.0,
    log: Callable[[str], None] = lambda _line: None,
    sleep: Callable[[float], None] = time.sleep,
    session: requests.Session | None = None,
) -> UploadResult:
    """POST the body; retry connection errors, timeouts, 429 and 5xx with backoff.

    `session` (from `session_for`) carries the first attempt over a kept-alive connection, for a
    caller sending many batches; a retry always opens a connection of its own, since an abandoned
    attempt may still be using the session.

    `retries` counts the attempts after the first. Each attempt ends within `timeout`
    seconds of wall-clock time whatever the server does, and the whole upload within
    `total_timeout` (plus the time to compress): waits are full-jitter exponential
    backoff, or exactly what `Retry-After` asks, and no attempt starts once the next
    wait would end past `total_timeout`. A 415 to a compressed body is answered at once
    by the same body uncompressed, which does not count as a retry.
    """
    url = batch_url(endpoint)
    refusal = endpoint_refusal(url)
    if refusal:
        return UploadResult("failed", None, None, 0, refusal)
    if not _TOKEN_SYNTAX.fullmatch(token):
        return UploadResult(
            "failed", None, None, 0, "the token has characters a bearer token cannot have (spaces, quotes...)"
        )
    redact = Redactor()
    redact.add(token)
    deadline = time.monotonic() + total_timeout
    sent, encoding = encode_body(body)
    headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": idempotency_key(body),
        "User-Agent": f"batch-metrics/{__version__}",
    }
    attempt = failures = 0
    while True:
        attempt += 1
        limit = max(min(timeout, deadline - time.monotonic()), 0.1)
        asked_wait: float | None = None
        status: int | None = None
        outcome = _attempt(
            url, sent, {**headers, **({"Content-Encoding": encoding} if encoding else {})}, token, limit,
            session if attempt == 1 else None,
        )  # fmt: skip
        if outcome is None:
            reason = f"Timeout: {urlsplit(url).netloc} gave no complete answer within {limit:g}s"
        elif isinstance(outcome, requests.RequestException):
            reason = _network_reason(outcome, url)
            if isinstance(outcome, requests.exceptions.SSLError) and _NOT_TLS.search(str(outcome)):
                return UploadResult("failed", None, None, attempt, reason)
        else:
            status = outcome.status
            if 200 <= status < 300:
                run_id, duplicate, changes = _created(outcome)
                said = ("already stored as " if duplicate else "stored as ") + _run_name(run_id)
                outcome_name: Literal["uploaded", "duplicate"] = "duplicate" if duplicate else "uploaded"
                return UploadResult(outcome_name, run_id, status, attempt, said, changes)
            if status == 409:
                run_id, _, _ = _created(outcome)
                return UploadResult(
                    "duplicate", run_id, status, attempt, "the endpoint already has this batch (HTTP 409)"
                )
            if status == 415 and encoding:
                log(f"the endpoint does not take gzip (HTTP 415); sending the {len(body)} bytes uncompressed")
                sent, encoding = body, None
                continue
            if 300 <= status < 400:
                return UploadResult(
                    "failed",
                    None,
                    status,
                    attempt,
                    f"HTTP {status} redirect not followed: the token goes only to the endpoint given; "
                    "give the final URL as the endpoint",
                )
            reason = f"HTTP {status}: {_short_body(outcome, redact)}"
            if status != 429 and status < 500:
                return UploadResult("failed", None, status, attempt, reason)
            asked_wait = retry_after_seconds(outcome.headers.get("Retry-After"), time.time())
        failures += 1
        if failures > retries:
            return UploadResult(
                "failed", None, status, attempt, f"gave up after {attempt} attempts: {reason}"
            )
        backoff_ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (failures - 1))
        delay = asked_wait if asked_wait is not None else random.uniform(0, backoff_ceiling)  # noqa: S311
        left = deadline - time.monotonic()
        if delay >= left:
            return UploadResult(
                "failed",
                None,
                status,
                attempt,
                f"gave up after {attempt} attempts: the next try in {delay:.1f}s would pass the "
                f"{total_timeout:g}s total time allowed; {reason}",
            )
        log(f"attempt {attempt} failed ({reason}); retrying in {delay:.1f}s")
        sleep(delay)
