"""The uploader: POST one payload to `<endpoint>/batch-metrics`, retrying only what is worth retrying.

A small explicit loop rather than urllib3's `Retry` behind an `HTTPAdapter`:
`Retry` has no bound on the *total* time, cannot cap `Retry-After` by the time
left, and its backoff jitter is additive rather than full; and with the loop
each attempt's outcome is logged in words. The same `Idempotency-Key` goes on
every attempt, so an endpoint that honours it stores the batch once.

Never raises for network or HTTP trouble: every outcome is an `UploadResult`,
and no message it returns or logs contains the token.
"""

from __future__ import annotations

import hashlib
import ipaddress
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal
from urllib.parse import urlsplit

import requests
from requests.auth import AuthBase

from batch_metrics import __version__

ROUTE = "/batch-metrics"
BACKOFF_BASE = 1.0
BACKOFF_CAP = 30.0
CONNECT_TIMEOUT = 10.0
BODY_SHOWN = 300
# RFC 6750 token68: what may follow "Bearer " in the Authorization header.
_TOKEN_SYNTAX = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_ERRNO_TEXT = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class UploadResult:
    status: Literal["uploaded", "duplicate", "failed"]
    batch_run_id: int | None
    http_status: int | None
    attempts: int
    message: str


class BearerAuth(AuthBase):
    """Set as `auth`, so requests never swaps in ~/.netrc credentials for the token."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


def idempotency_key(body: bytes) -> str:
    """Derived from the exact bytes, so re-sending a saved payload file reuses the key."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def batch_url(endpoint: str) -> str:
    """`https://host` → `https://host/batch-metrics`; a URL already ending in the route is kept."""
    base = endpoint.strip().rstrip("/")
    return base if base.endswith(ROUTE) else base + ROUTE


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def endpoint_refusal(url: str) -> str | None:
    """Why the token must not go to this URL, or None when it may."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"endpoint {url!r} is not an http(s) URL"
    if parts.username or parts.password:
        return "the endpoint URL must not carry credentials; give the token as `token`"
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        return (
            f"refusing to send the token over plain http:// to {parts.hostname}; "
            "use https:// (plain http is allowed only to loopback)"
        )
    return None


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


def _redact(text: str, token: str) -> str:
    return text.replace(token, "***") if token else text


def _short_body(response: requests.Response, token: str) -> str:
    text = _CONTROL.sub(" ", response.text).strip()
    if len(text) > BODY_SHOWN:
        text = text[:BODY_SHOWN] + "..."
    return _redact(text, token) or "(empty body)"


def _network_reason(error: requests.RequestException, url: str) -> str:
    """The exception's name (what people search for) and what it means, without requests' noise."""
    host = urlsplit(url).netloc
    if isinstance(error, requests.ConnectTimeout):
        meaning = f"connecting to {host} timed out"
    elif isinstance(error, requests.Timeout):
        meaning = f"{host} sent no response within the read timeout"
    elif isinstance(error, requests.ConnectionError):
        cause = _ERRNO_TEXT.search(str(error))
        meaning = f"cannot connect to {host}" + (f": {cause.group(1).strip()}" if cause else "")
    else:
        meaning = f"request to {host} failed"
    return f"{type(error).__name__}: {meaning}"


def _created(response: requests.Response) -> tuple[int | None, bool]:
    """`batch_run_id` and the `duplicate` flag from a JSON answer; anything else gives (None, False)."""
    try:
        data = response.json()
    except ValueError:
        return None, False
    if not isinstance(data, dict):
        return None, False
    run_id = data.get("batch_run_id")
    return (run_id if isinstance(run_id, int) else None), data.get("duplicate") is True


def _run_name(run_id: int | None) -> str:
    return f"batch run {run_id}" if run_id is not None else "a batch run (the endpoint did not say which)"


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
) -> UploadResult:
    """POST the body byte for byte; retry connection errors, timeouts, 429 and 5xx with backoff.

    `retries` counts the attempts after the first. Waits are full-jitter exponential
    backoff, or exactly what `Retry-After` asks; no attempt starts once the next wait
    would end past `total_timeout`, and each attempt's timeouts are cut to the time left.
    """
    url = batch_url(endpoint)
    refusal = endpoint_refusal(url)
    if refusal:
        return UploadResult("failed", None, None, 0, refusal)
    if not _TOKEN_SYNTAX.fullmatch(token):
        return UploadResult(
            "failed", None, None, 0, "the token has characters a bearer token cannot have (spaces, quotes...)"
        )
    headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": idempotency_key(body),
        "User-Agent": f"batch-metrics/{__version__}",
    }
    deadline = time.monotonic() + total_timeout
    attempt = 0
    with requests.Session() as http:
        while True:
            attempt += 1
            remaining = max(deadline - time.monotonic(), 0.1)
            asked_wait: float | None = None
            status: int | None = None
            try:
                response = http.post(
                    url,
                    data=body,
                    headers=headers,
                    auth=BearerAuth(token),
                    timeout=(min(CONNECT_TIMEOUT, timeout, remaining), min(timeout, remaining)),
                    allow_redirects=False,
                )
            except requests.RequestException as error:
                reason = _network_reason(error, url)
            else:
                status = response.status_code
                if 200 <= status < 300:
                    run_id, duplicate = _created(response)
                    if duplicate:
                        return UploadResult(
                            "duplicate", run_id, status, attempt, f"already stored as {_run_name(run_id)}"
                        )
                    return UploadResult("uploaded", run_id, status, attempt, f"stored as {_run_name(run_id)}")
                if status == 409:
                    run_id, _ = _created(response)
                    return UploadResult(
                        "duplicate", run_id, status, attempt, "the endpoint already has this batch (HTTP 409)"
                    )
                if 300 <= status < 400:
                    return UploadResult(
                        "failed",
                        None,
                        status,
                        attempt,
                        f"HTTP {status} redirect not followed: the token goes only to the endpoint given; "
                        "give the final URL as the endpoint",
                    )
                reason = f"HTTP {status}: {_short_body(response, token)}"
                if status != 429 and status < 500:
                    return UploadResult("failed", None, status, attempt, reason)
                asked_wait = retry_after_seconds(response.headers.get("Retry-After"), time.time())
            if attempt > retries:
                return UploadResult(
                    "failed", None, status, attempt, f"gave up after {attempt} attempts: {reason}"
                )
            backoff_ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1))
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
