"""Who may do what: the bearer tokens an operator configures, checked in constant time for every route.

`Guard.check_write` demands exactly `Authorization: Bearer <token>` (any other scheme is 401);
`Guard.check_read` does the same unless the server runs with `public_read`, which opens reads
(pages, their JSON, the read API, `/metrics`) but never writes. Call it first in a handler, before
reading any body: a refused request costs no memory.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Iterable
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request

from batch_metrics import TOKEN_ENV

TOKEN_FILE_ENV = f"{TOKEN_ENV}_FILE"


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


class Guard:
    """The bearer-token check for every route: constant time, exactly `Bearer <token>`."""

    def __init__(self, tokens: Iterable[str], *, public_read: bool = False) -> None:
        # Digests have one length, so comparing them reveals nothing about a token's length either.
        self.token_digests = [hashlib.sha256(token.encode()).digest() for token in tokens]
        self.public_read = public_read

    def allows(self, authorization: str) -> bool:
        scheme, _, presented = authorization.partition(" ")
        candidate = hashlib.sha256(presented.encode("latin-1", "replace")).digest()
        # Compare with every configured token, without stopping at a match, so timing reveals nothing.
        matched = False
        for digest in self.token_digests:
            matched |= hmac.compare_digest(candidate, digest)
        return matched and scheme == "Bearer" and bool(presented)

    def check_write(self, request: Request) -> None:
        if not self.allows(request.headers.get("authorization", "")):
            raise HTTPException(401, "Unauthorized", {"WWW-Authenticate": 'Bearer realm="batch-metrics"'})

    def check_read(self, request: Request) -> None:
        if not self.public_read:
            self.check_write(request)
