"""Keyless uploads from GitHub Actions: the job's OIDC ID token is the bearer token.

When a workflow grants `permissions: id-token: write`, the runner gives each step
ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN. A GET of that URL with
`&audience=<audience>` and the request token as bearer answers `{"value": "<JWT>"}`: a token GitHub
signs, naming the repository, workflow, ref and run, valid for minutes. The endpoint checks it
against GitHub's keys and its operator's rules, so no repository stores a long-lived secret.

The audience is the endpoint's base URL unless `audience` says otherwise: the endpoint accepts only
tokens minted for it. The request token goes only to the runner's URL (https, or plain http on
loopback), the ID token only to the endpoint (upload.py's rules); each is masked before anything can
print it. Like the upload, the request ends within its timeout whatever the runner does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import requests

from batch_metrics import TOKEN_ENV
from batch_metrics.client.actions import REQUEST_TOKEN_ENV, REQUEST_URL_ENV
from batch_metrics.client.http import bearer_request, endpoint_refusal, within
from batch_metrics.client.upload import batch_url

# Three base64url parts: what a JWT is, and all a bearer header can carry of it.
_JWT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_NO_PERMISSION = (
    "grant the job `permissions: id-token: write` (the runner then offers an ID token), or give a token"
)


@dataclass(frozen=True)
class Credential:
    """The bearer token to send and how it was had (`token` or `oidc`); or the problem that stopped it."""

    bearer: str = ""
    how: str = ""
    problem: str | None = None


def offered(env: Mapping[str, str]) -> bool:
    """Whether the runner offers an ID token: the workflow granted `id-token: write`."""
    return bool(env.get(REQUEST_URL_ENV) and env.get(REQUEST_TOKEN_ENV))


def default_audience(endpoint: str) -> str:
    """The endpoint's base URL, as the endpoint's operator configures it (`https://host`, no route)."""
    return batch_url(endpoint).removesuffix("/batch-metrics")


def request_id_token(env: Mapping[str, str], audience: str, timeout: float) -> tuple[str, str | None]:
    """An ID token for `audience` from the runner, within `timeout` seconds; or "" and why not."""
    url, request_token = env.get(REQUEST_URL_ENV, ""), env.get(REQUEST_TOKEN_ENV, "")
    refusal = endpoint_refusal(url)
    if refusal:
        return "", f"{REQUEST_URL_ENV}: {refusal}"
    outcome = within(
        timeout,
        lambda: bearer_request(
            "GET", url, request_token, timeout, params={"audience": audience},
            headers={"Accept": "application/json"},
        ),
    )  # fmt: skip
    if outcome is None:
        return "", f"the runner gave no ID token within {timeout:g}s"
    if isinstance(outcome, requests.RequestException):
        return "", f"cannot ask the runner for an ID token: {type(outcome).__name__}"
    if outcome.status != 200:
        return "", f"the runner refused an ID token (HTTP {outcome.status}); {_NO_PERMISSION}"
    try:
        value = json.loads(outcome.body).get("value")
    except (ValueError, AttributeError):
        value = None
    if not isinstance(value, str) or not _JWT.fullmatch(value):
        return "", "the runner's answer holds no ID token"
    return value, None


def credential(
    auth: str,
    token: str,
    *,
    endpoint: str,
    audience: str,
    env: Mapping[str, str],
    timeout: float,
    mask: Callable[[str], None],
) -> Credential:
    """The bearer token for an upload: the static `token`, or an ID token from the runner.

    `auto` uses the token when there is one, else an ID token when the runner offers one; `token`
    and `oidc` insist. The ID token is given to `mask` before it is returned.
    """
    if auth == "token" or (auth == "auto" and token):
        if token:
            return Credential(token, "token")
        return Credential(problem=f"no token given (input token or ${TOKEN_ENV})")
    if not offered(env):
        if auth == "oidc":
            return Credential(problem=f"auth is oidc, but the runner offers no ID token: {_NO_PERMISSION}")
        return Credential(
            problem=f"no token given (input token or ${TOKEN_ENV}), and no ID token offered: {_NO_PERMISSION}"
        )
    id_token, problem = request_id_token(env, audience or default_audience(endpoint), timeout)
    if problem:
        return Credential(problem=problem)
    mask(id_token)
    return Credential(id_token, "oidc")
