"""Static bearer tokens: the single-token options kept from before the credentials file, and how an
operator makes a new token and the hash the credentials file keeps of it.

A token given the old way (`$BATCH_METRICS_TOKEN`, `--token-file` one per line) may read and write
every ecosystem, as it always could. The credentials file keeps SHA-256 hex digests, never a token:
a fast hash is right for these because a token is 256 random bits (nobody can try enough guesses
to invert it, however fast each guess is), whereas a password, chosen by a person from a small
space, needs a slow, salted hash. The digests are compared in constant time (guard.py).
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from pathlib import Path

from batch_metrics import TOKEN_ENV

TOKEN_FILE_ENV = f"{TOKEN_ENV}_FILE"
# Marks our tokens for secret scanners and for the client's redaction of `Bearer ...` shapes.
TOKEN_PREFIX = "bmt_"  # noqa: S105 - a prefix, not a secret
TOKEN_BYTES = 32


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


def hash_token(token: str) -> str:
    """The SHA-256 hex digest the credentials file keeps in place of the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh token: the prefix and 256 random bits, URL-safe (a valid RFC 6750 bearer token)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
