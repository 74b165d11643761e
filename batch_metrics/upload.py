"""The uploader: POST one payload to `<endpoint>/batch-metrics`, retrying only what is worth retrying.

A small explicit loop rather than urllib3's `Retry`: we need a bound on the
*total* time (Retry has none), full jitter, `Retry-After` capped by what time
is left, and the same `Idempotency-Key` on every attempt — clearer written out.

Never raises for network or HTTP trouble: every outcome is an `UploadResult`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Literal
from urllib.parse import urlsplit

import requests

from batch_metrics import __version__

ROUTE = "/batch-metrics"
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_BACKOFF_BASE = 1.0
_BACKOFF_CAP = 30.0
_CONNECT_TIMEOUT = 10.0
_BODY_SHOWN = 300


@dataclass(frozen=True)
class UploadResult:
    status: Literal["uploaded", "duplicate", "failed"]
    batch_run_id: int | None
    http_status: int | None
    attempts: int
    message: str


def idempotency_key(body: bytes) -> str:
    """Derived from the exact bytes, so re-sending a saved payload file reuses the key."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def batch_url(endpoint: str) -> str:
    base = endpoint.strip().rstrip("/")
    return base if base.endswith(ROUTE) else base + ROUTE


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint(url: str) -> str | None:
    """Why the token must not go to this URL, or None when it may."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"endpoint {url!r} is not an http(s) URL"
    if parts.username or parts.password:
        return "endpoint URL must not carry credentials; pass the token as `token`"
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        return (
            f"refusing to send the token over plain http:// to {parts.hostname}; "
            "use https:// (plain http is allowed only to loopback)"
        )
    return None


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


def _short_body(response: requests.Response) -> str:
    text = response.text.strip().replace("\r", " ").replace("\n", " ")
    return text[:_BODY_SHOWN] + ("..." if len(text) > _BODY_SHOWN else "")


def _created(response: requests.Response) -> tuple[int | None, bool]:
    try:
        data = response.json()
    except (ValueError, json.JSONDecodeError):
        return None, False
    if not isinstance(data, dict):
        return None, False
    run_id = data.get("batch_run_id")
    return (run_id if isinstance(run_id, int) else None), bool(data.get("duplicate"))


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
    """POST the body as is; retry connection errors, timeouts, 429 and 5xx with backoff and jitter."""
    url = batch_url(endpoint)
    refusal = check_endpoint(url)
    if refusal:
        return UploadResult("failed", None, None, 0, refusal)
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Idempotency-Key": idempotency_key(body),
        "User-Agent": f"batch-metrics/{__version__}",
    }
    deadline = time.monotonic() + total_timeout
    http = session or requests.Session()
    attempt = 0
    try:
        while True:
            attempt += 1
            remaining = max(deadline - time.monotonic(), 0.1)
            wait: float | None = None
            try:
                response = http.post(
                    url,
                    data=body,
                    headers=headers,
                    timeout=(min(_CONNECT_TIMEOUT, timeout, remaining), min(timeout, remaining)),
                    allow_redirects=False,
                )
            except requests.RequestException as error:
                reason = f"{type(error).__name__} talking to {urlsplit(url).netloc}"
                status: int | None = None
            else:
                status = response.status_code
                if status in (200, 201):
                    run_id, duplicate = _created(response)
                    outcome: Literal["uploaded", "duplicate"] = "duplicate" if duplicate else "uploaded"
                    return UploadResult(outcome, run_id, status, attempt, f"{outcome}: batch run {run_id}")
                if status == 409:
                    run_id, _ = _created(response)
                    return UploadResult("duplicate", run_id, status, attempt, "duplicate: already stored")
                reason = f"HTTP {status}: {_short_body(response)}"
                if status not in _RETRY_STATUSES:
                    if 300 <= status < 400:
                        reason = (
                            f"HTTP {status} redirect not followed (the token goes only where you point it)"
                        )
                    return UploadResult("failed", None, status, attempt, reason)
                wait = _retry_after(response)
            if attempt > retries:
                return UploadResult(
                    "failed", None, status, attempt, f"gave up after {attempt} attempts: {reason}"
                )
            backoff = random.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2 ** (attempt - 1)))  # noqa: S311
            delay = max(wait, backoff) if wait is not None else backoff
            if time.monotonic() + delay >= deadline:
                return UploadResult(
                    "failed", None, status, attempt, f"gave up: total time {total_timeout:g}s spent; {reason}"
                )
            log(f"attempt {attempt} failed ({reason}); retrying in {delay:.1f}s")
            sleep(delay)
    finally:
        if session is None:
            http.close()
