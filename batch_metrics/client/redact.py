"""Secrets taken out of every text the action shows or sends: the log, warnings, the job summary and
the payload's error messages.

Redaction comes before any escaping: the runner masks a secret only where it appears verbatim, and
escaping (Markdown turns `_` into `&#95;`) would hide a token from the runner's masking while still
showing it to every reader.

What goes: every value registered as a secret (the token, each of its lines), and credential shapes
that a build log may carry whoever owns them: GitHub tokens (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`,
`github_pat_`), the credentials after `Bearer` or `Basic`, and the user-info part of a URL
(`https://user:password@host` keeps only `https://***@host`).

What stays: the words that name a credential. "a bearer token cannot have..." is the program's
own sentence, not a credential after `Bearer`: `token`, `credentials`, `auth` and their like stay,
unless they follow an `Authorization:` header name. A test checks that every text the client
writes passes through unchanged.
"""

from __future__ import annotations

import re

MASK = "***"
# Each shape with a plain substring that any match contains: a fast `in` test spares most texts the
# regular expression, which on 4 KiB of build log is a hundred times slower.
_GITHUB_TOKEN = re.compile(r"\b(?:gh[pousr]_|github_pat_)[A-Za-z0-9_]{16,}")  # 36+ characters in practice
_URL_USER_INFO = re.compile(r"://[^\s/?#@]+@")  # everything between `scheme://` and `@host`
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic)[ \t]+([A-Za-z0-9\-._~+/]+=*)")  # RFC 6750 token68 / Basic
# Words that follow "bearer" or "basic" in prose, naming the credential rather than being one.
_NAMING_WORDS = frozenset(("token", "tokens", "credential", "credentials", "auth", "authentication"))


def redact_shapes(text: str) -> str:
    """Credential shapes replaced: GitHub tokens, `Bearer`/`Basic` credentials, URL user-info."""
    if "gh" in text or "github_pat_" in text:
        text = _GITHUB_TOKEN.sub(MASK, text)
    if "://" in text:
        text = _URL_USER_INFO.sub(f"://{MASK}@", text)
    lowered = text.lower()
    if "bearer" in lowered or "basic" in lowered:
        text = _AUTH_SCHEME.sub(_credential, text)
    return text


def _credential(match: re.Match[str]) -> str:
    """The scheme and a mask, unless a word that names a credential follows it outside a header."""
    scheme, value = match.group(1), match.group(2)
    in_header = match.string[: match.start()].rstrip().lower().endswith("authorization:")
    return match.group(0) if value.lower() in _NAMING_WORDS and not in_header else f"{scheme} {MASK}"


class Redactor:
    """Replaces registered secrets (longest first, so one that contains another goes whole) and
    credential shapes with `***`."""

    def __init__(self) -> None:
        self.secrets: list[str] = []

    def add(self, secret: str) -> list[str]:
        """Register a secret and each of its lines; return the parts not known before."""
        new = []
        for part in (secret.strip(), *(line.strip() for line in secret.splitlines())):
            if part and part not in self.secrets:
                self.secrets.append(part)
                new.append(part)
        self.secrets.sort(key=len, reverse=True)
        return new

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return redact_shapes(text)
