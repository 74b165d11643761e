"""Verifying GitHub Actions OIDC tokens: PyJWT checks the signature and the claims; `KeySet` keeps
the issuer's signing keys.

Why PyJWT (with `cryptography` behind it): the most used JOSE library for Python, kept up by one
team for a decade, typed, and it does exactly this: a JWK set parsed into keys (`PyJWKSet`), and
`jwt.decode` checking the signature with the algorithm bound to the key, `exp`/`nbf`/`iat` with a
leeway, `iss` and `aud`. Its own `PyJWKClient` is not used: its fetch has no wall-clock bound, no
limit on refetches for unknown key ids, and drops the cached keys when a refresh fails.

The keys come from `<issuer>/.well-known/openid-configuration` and the `jwks_uri` it names, both
over HTTPS only, within `fetch_timeout_seconds` of wall-clock time (a down or slow issuer costs an
upload a quick 401, never a hang), at most 1 MiB. They are cached for `keys_refresh_seconds`; a
token with an unknown `kid` refreshes them, but no more often than every `keys_min_refresh_seconds`
(forged key ids cause no fetch storm), and one request fetches while the others wait for it. When
a refresh fails the last good keys stay in use until `keys_max_age_seconds` after they were fetched.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import jwt
import requests

from batch_metrics.endpoint.access.credentials import ASYMMETRIC, OidcSettings

log = logging.getLogger("batch_metrics.auth")

MAX_DOCUMENT_BYTES = 1024 * 1024
CA_BUNDLE_ENV = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")
# Names shown in a refusal as they are; any other `alg` is "an unknown algorithm" (never echoed).
_KNOWN_ALGORITHMS = {"none", "HS256", "HS384", "HS512", *ASYMMETRIC}


class Refused(Exception):
    """Why a token is not accepted, in words fit for the log: never the token, nor a claim it carries
    before its signature is checked."""


class FetchError(Exception):
    """The issuer's keys could not be fetched; the message says why."""


def _fetch_json(url: str, settings: OidcSettings, deadline: float) -> Any:
    """One JSON document over HTTPS, whole before `deadline` (monotonic) and within MAX_DOCUMENT_BYTES."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise FetchError(f"{url[:200]!r} is not an https:// URL")
    verify = settings.ca_file or next((os.environ[n] for n in CA_BUNDLE_ENV if os.environ.get(n)), True)
    wait = max(deadline - time.monotonic(), 0.01)
    try:
        with (
            requests.Session() as http,
            http.get(
                url, timeout=(wait, wait), stream=True, verify=verify, allow_redirects=False,
                headers={"Accept": "application/json"},
            ) as response,
        ):  # fmt: skip
            if response.status_code != 200:
                raise FetchError(f"{parts.hostname} answered HTTP {response.status_code} for {parts.path}")
            body = bytearray()
            for chunk in response.iter_content(chunk_size=16 * 1024):
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise FetchError(f"{parts.hostname}{parts.path} is over {MAX_DOCUMENT_BYTES} bytes")
                if time.monotonic() > deadline:
                    raise FetchError(f"{parts.hostname} took over {settings.fetch_timeout_seconds:g}s")
    except requests.RequestException as error:
        raise FetchError(f"{type(error).__name__} from {parts.hostname}") from None
    try:
        return json.loads(body)
    except ValueError:
        raise FetchError(f"{parts.hostname}{parts.path} is not JSON") from None


class KeySet:
    """The issuer's signing keys by `kid`: fetched when needed, cached, and kept through a failed refresh."""

    def __init__(self, settings: OidcSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self.keys: dict[str, jwt.PyJWK] = {}
        self.fetches = 0  # attempts made, for the log and the tests
        self._fetched_at: float | None = None
        self._tried_at: float | None = None
        self._failure: str | None = None
        self._lock = threading.Lock()

    def _age(self) -> float:
        return float("inf") if self._fetched_at is None else self.clock() - self._fetched_at

    def key(self, kid: str) -> jwt.PyJWK:
        """The key with this id; Refused when it is unknown after a refresh or the keys cannot be had."""
        if kid not in self.keys or self._age() >= self.settings.keys_refresh_seconds:
            self._refresh()
        keys, age, failure = self.keys, self._age(), self._failure
        if age >= self.settings.keys_max_age_seconds:
            if keys:
                raise Refused(f"the issuer's last good keys have expired and cannot be refreshed: {failure}")
            raise Refused(f"the issuer's keys cannot be fetched: {failure or 'not fetched yet'}")
        if kid in keys:
            return keys[kid]
        if failure:
            raise Refused(f"unknown key id (kid), and the issuer's keys cannot be refreshed: {failure}")
        raise Refused("unknown key id (kid), also after refreshing the issuer's keys")

    def _refresh(self) -> None:
        tried = self._tried_at
        if tried is not None and self.clock() - tried < self.settings.keys_min_refresh_seconds:
            return  # fetched or tried moments ago: one fetch per interval, whatever the tokens say
        if not self._lock.acquire(timeout=self.settings.fetch_timeout_seconds):
            return  # another request is fetching and taking its whole time: use what there is
        try:
            if self._tried_at != tried:
                return  # another request fetched while this one waited
            self._tried_at = self.clock()
            self.fetches += 1
            try:
                keys = self._fetch()
            except FetchError as error:
                self._failure = str(error)
                kept = f"keeping the {len(self.keys)} last good keys" if self.keys else "no keys yet"
                log.warning("cannot refresh the keys of %s: %s; %s", self.settings.issuer, error, kept)
                return
            self.keys, self._fetched_at, self._failure = keys, self.clock(), None
            log.info("fetched %d signing keys from %s", len(keys), self.settings.issuer)
        finally:
            self._lock.release()

    def _fetch(self) -> dict[str, jwt.PyJWK]:
        """Discovery, then the JWK set it names, both within one deadline."""
        settings = self.settings
        deadline = time.monotonic() + settings.fetch_timeout_seconds
        discovery = _fetch_json(f"{settings.issuer}/.well-known/openid-configuration", settings, deadline)
        if not isinstance(discovery, dict) or discovery.get("issuer") != settings.issuer:
            raise FetchError("the discovery document names another issuer")
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise FetchError("the discovery document has no jwks_uri")
        document = _fetch_json(jwks_uri, settings, deadline)
        try:
            found = jwt.PyJWKSet.from_dict(document if isinstance(document, dict) else {})
        except jwt.PyJWTError as error:
            raise FetchError(f"no usable key in the JWK set: {error}") from None
        keys = {
            key.key_id: key for key in found.keys if key.key_id and key.algorithm_name in settings.algorithms
        }
        if not keys:
            raise FetchError(f"the JWK set has no key with a kid for {', '.join(settings.algorithms)}")
        return keys


class Verifier:
    """Checks one token against the settings; its claims, or Refused saying why."""

    def __init__(self, settings: OidcSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.keys = KeySet(settings, clock)

    def verify(self, token: str) -> dict[str, Any]:
        settings = self.settings
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Refused("not a well-formed JWT") from None
        alg = header.get("alg")
        if alg not in settings.algorithms:
            shown = repr(alg) if isinstance(alg, str) and alg in _KNOWN_ALGORITHMS else "an unknown algorithm"
            signs = ", ".join(settings.algorithms)
            raise Refused(f"algorithm {shown} is not allowed (the issuer signs with {signs})")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Refused("the header names no key id (kid)")
        key = self.keys.key(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=list(settings.algorithms), audience=settings.audience,
                issuer=settings.issuer, leeway=settings.leeway_seconds,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )  # fmt: skip
        except jwt.ExpiredSignatureError:
            raise Refused("expired: exp is in the past") from None
        except jwt.ImmatureSignatureError:
            raise Refused("not yet valid: nbf or iat is in the future") from None
        except jwt.InvalidAudienceError:
            raise Refused(f"wrong audience: aud is not {settings.audience!r}") from None
        except jwt.InvalidIssuerError:
            raise Refused(f"wrong issuer: iss is not {settings.issuer!r}") from None
        except jwt.InvalidSignatureError:
            raise Refused("bad signature") from None
        except jwt.MissingRequiredClaimError as error:
            raise Refused(f"the {error.claim} claim is missing") from None
        except jwt.PyJWTError as error:
            raise Refused(f"invalid token: {type(error).__name__}") from None
        return claims
