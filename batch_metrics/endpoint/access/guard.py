"""Who may do what, checked first in every handler that needs a credential, before any body is read.

`check_read` lets a request read with a token that may read (or anyone under `public_read`);
`check_dashboard_read` is the same for the dashboard's JSON, but refuses a token that can also write
once a credentials file is in use, so a browser never holds a write secret (in the legacy mode, the
single-token options alone, it answers whether the token can write so the page can say so);
`check_write` accepts a token that may write, or a verified GitHub Actions OIDC token that one of
the operator's rules lets in, and returns the `Access` that the upload then checks against its
batch's ecosystems (`uploader`, a 403 naming the ecosystem).

Refusals are 401 (no credential, or one that does not verify) and 403 (a credential that may not do
this). Each refused upload is one log line saying why, never the token.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any, NoReturn, Protocol

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request

from batch_metrics.endpoint.access.credentials import Credentials, Grant, OidcSettings
from batch_metrics.endpoint.access.oidc import Refused, Verifier
from batch_metrics.endpoint.edge import printable
from batch_metrics.endpoint.storage.uploaders import Uploader

log = logging.getLogger("batch_metrics.auth")

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="batch-metrics"'}
MAX_CLAIM = 512  # longer claim values are not kept; GitHub's are far shorter
SHOWN = 100  # characters of an ecosystem name a 403 repeats


class CredentialSource(Protocol):
    def current(self) -> Credentials: ...

    def reload(self, why: str) -> bool: ...


def _claim(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return value if isinstance(value, str) and len(value) <= MAX_CLAIM and value.isprintable() else None


@dataclass(frozen=True)
class Access:
    """A writer let in: its grants (one for a token; every matching rule for OIDC) and who it is."""

    grants: tuple[Grant, ...]
    uploader: Uploader

    def uploader_for(self, ecosystems: Collection[str]) -> Uploader | None:
        """The uploader, named for the first grant that may write every one of `ecosystems`; else None."""
        for grant in self.grants:
            if all(grant.may_write(ecosystem) for ecosystem in ecosystems):
                return replace(self.uploader, name=grant.name)
        return None

    def refusal(self, ecosystems: Collection[str]) -> str:
        """Why `uploader_for` found no grant: an ecosystem this credential may not write."""
        denied = sorted(e for e in ecosystems if not any(g.may_write(e) for g in self.grants))
        if denied:
            allowed = ", ".join(dict.fromkeys(p for grant in self.grants for p in grant.ecosystems))
            shown = printable(denied[0][:SHOWN])
            return f"this credential may not write ecosystem {shown!r} (it may write: {allowed})"
        shown = ", ".join(printable(e[:SHOWN]) for e in sorted(ecosystems))
        return f"no one rule lets this credential write all of this batch's ecosystems ({shown})"


def _request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", "-"))


class Guard:
    """The check every route makes first, against the credentials in force at that moment."""

    def __init__(self, source: CredentialSource, *, public_read: bool = False) -> None:
        self.source = source
        self.public_read = public_read
        self._verifier: Verifier | None = None
        self._verifier_lock = threading.Lock()

    def _bearer(self, request: Request) -> str:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme != "Bearer" or not presented:
            raise HTTPException(401, "Unauthorized", _CHALLENGE)
        return presented

    @staticmethod
    def _grant(presented: str, credentials: Credentials) -> Grant | None:
        """The token's grant. Digests have one length, and every entry is compared without stopping at a
        match, so timing tells nothing about the tokens."""
        candidate = hashlib.sha256(presented.encode("utf-8", "replace")).digest()
        found = None
        for entry in credentials.tokens:
            if hmac.compare_digest(candidate, entry.digest):
                found = entry.grant
        return found

    def _reader(self, request: Request) -> Grant | None:
        """The grant of a token that may read; None under public_read. 401/403 otherwise."""
        if self.public_read:
            return None
        grant = self._grant(self._bearer(request), self.source.current())
        if grant is None:
            raise HTTPException(401, "Unauthorized", _CHALLENGE)
        if not grant.can_read:
            raise HTTPException(403, "Forbidden: this token may upload but not read")
        return grant

    def check_read(self, request: Request) -> None:
        self._reader(request)

    def check_dashboard_read(self, request: Request) -> bool:
        """As check_read; True when the token can also write (allowed only in the legacy mode)."""
        grant = self._reader(request)
        if grant is None or not grant.can_write:
            return False
        if self.source.current().from_file:
            raise HTTPException(
                403, "Forbidden: this token can also upload. The dashboard takes a read-only token "
                "(batch-metrics token new --can read), so that no browser holds a write token.",
            )  # fmt: skip
        return True

    async def check_write(self, request: Request) -> Access:
        """The writer's Access, from the headers alone; 401 or 403 (and a log line) when refused."""
        presented = self._bearer(request)
        credentials = self.source.current()
        grant = self._grant(presented, credentials)
        if grant is not None:
            if not grant.can_write:
                self._refuse(request, 403, f"token {grant.name!r} may read but not upload")
            return Access((grant,), Uploader("token", grant.name))
        if presented.count(".") != 2:
            self._refuse(request, 401, "the token matches no credential")
        if credentials.oidc is None:
            self._refuse(request, 401, "an OIDC token, but no [oidc] issuer is configured")
        verifier = self._verifier_for(credentials.oidc)
        try:
            claims = await run_in_threadpool(verifier.verify, presented)
        except Refused as refused:
            self._refuse(request, 401, f"OIDC token refused: {refused}")
        uploader = Uploader(
            "oidc", "", repository=_claim(claims, "repository"), workflow=_claim(claims, "job_workflow_ref"),
            run_id=_claim(claims, "run_id"), run_attempt=_claim(claims, "run_attempt"),
            ref=_claim(claims, "ref"), sha=_claim(claims, "sha"),
        )  # fmt: skip
        grants = tuple(rule.grant for rule in credentials.rules if rule.allows(claims))
        if not grants:
            who = ", ".join(
                f"{name} {printable(value)!r}"
                for name in ("repository", "ref", "job_workflow_ref", "environment")
                if (value := _claim(claims, name)) is not None
            )
            self._refuse(request, 403, f"no OIDC rule lets this workflow upload ({who})")
        return Access(grants, uploader)

    def uploader(self, request: Request, access: Access, ecosystems: Collection[str]) -> Uploader:
        """Who is storing a batch of these ecosystems; a 403 naming one it may not write."""
        uploader = access.uploader_for(ecosystems)
        if uploader is None:
            self._refuse(request, 403, access.refusal(ecosystems))
        return uploader

    def _verifier_for(self, settings: OidcSettings) -> Verifier:
        """One verifier (and key cache) per issuer settings; a reload that changes them starts afresh."""
        with self._verifier_lock:
            if self._verifier is None or self._verifier.settings != settings:
                self._verifier = Verifier(settings)
            return self._verifier

    def _refuse(self, request: Request, status: int, reason: str) -> NoReturn:
        log.warning("request %s: upload refused (%d): %s", _request_id(request), status, reason)
        if status == 401:
            raise HTTPException(401, "Unauthorized", _CHALLENGE)
        raise HTTPException(403, f"Forbidden: {reason}")
