"""One HTTP request that carries a bearer token, made safely: where the token may go, how it is sent,
and a wall-clock deadline whatever the server does. The uploader and the runner's ID-token request
share it.

Routing: loopback endpoints and plain http:// are always reached directly, never through a proxy
from the environment (a proxy would see the token in clear); https:// to other hosts follows
HTTPS_PROXY/ALL_PROXY/NO_PROXY. The CA bundle comes from REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE or
SSL_CERT_FILE. No redirect is followed: the token goes only to the URL given.

Deadlines are wall-clock. requests' timeouts apply to each socket operation, so a server sending
one byte a second would hold a request for ever; `within` runs the request in a daemon thread that
the caller waits for only until its deadline, then abandons.
"""

from __future__ import annotations

import ipaddress
import os
import threading
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from requests.auth import AuthBase

CONNECT_TIMEOUT = 10.0
# Enough for any answer the endpoint gives; a hostile server's endless body is never read further.
ANSWER_LIMIT = 16 * 1024 * 1024  # the endpoint's largest answer: an upload's changes (views/batches.py)
CA_BUNDLE_ENV = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")
T = TypeVar("T")


@dataclass(frozen=True)
class Answer:
    """What one attempt got back: the status, the headers and at most ANSWER_LIMIT bytes of body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class BearerAuth(AuthBase):
    """Set as `auth`, so requests never swaps in ~/.netrc credentials for the token."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


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


def goes_direct(url: str) -> bool:
    """Loopback and plain http are never handed to a proxy: it would see the request, token and all."""
    parts = urlsplit(url)
    return parts.scheme == "http" or is_loopback(parts.hostname or "")


def ca_bundle(env: Mapping[str, str]) -> str | bool:
    """The CA bundle named the standard ways, else True (requests' own bundle)."""
    return next((env[name] for name in CA_BUNDLE_ENV if env.get(name)), True)


def session_for(url: str) -> requests.Session:
    """A session for `url`: off, `trust_env` reads no proxy from the environment (the CA bundle is
    passed with each request either way)."""
    http = requests.Session()
    http.trust_env = not goes_direct(url)
    return http


def bearer_request(
    method: str, url: str, token: str, limit: float, kept: requests.Session | None = None, **options: Any
) -> Answer:
    """One request with `token` as bearer (no redirect followed, no proxy for loopback or plain http),
    with requests' per-operation timeouts cut to `limit` (the caller bounds the total); on the `kept`
    session (its connection kept alive for the next request) when there is one."""
    with (
        nullcontext(kept) if kept is not None else session_for(url) as http,
        http.request(
            method,
            url,
            auth=BearerAuth(token),
            timeout=(min(CONNECT_TIMEOUT, limit), limit),
            allow_redirects=False,
            stream=True,
            verify=ca_bundle(os.environ),
            **options,
        ) as response,
    ):
        read = bytearray()
        for chunk in response.iter_content(chunk_size=16 * 1024):
            read += chunk
            if len(read) >= ANSWER_LIMIT:
                break
        return Answer(response.status_code, response.headers, bytes(read[:ANSWER_LIMIT]))


def within(limit: float, call: Callable[[], T]) -> T | requests.RequestException | None:
    """`call()` with a wall-clock deadline: its result, its network error, or None when `limit` passed
    (the call is left to finish, or die with the process, in its daemon thread)."""
    outcome: list[T | BaseException] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as error:  # handed to the waiting thread, which decides
            outcome.append(error)

    worker = threading.Thread(target=run, name="batch-metrics-http", daemon=True)
    worker.start()
    worker.join(limit)
    if not outcome:
        return None
    if isinstance(outcome[0], BaseException) and not isinstance(outcome[0], requests.RequestException):
        raise outcome[0]
    return outcome[0]
