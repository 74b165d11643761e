"""Secrets taken out of every text the action shows or sends: the log, warnings, the job summary and
the payload's error messages.

Redaction comes before any escaping: the runner masks a secret only where it appears verbatim, and
escaping (Markdown turns `_` into `&#95;`) would hide a token from the runner's masking while still
showing it to every reader.

What goes: every value registered as a secret (the token, each of its lines), and credential shapes
that a build log may carry whoever owns them: GitHub tokens (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`,
`github_pat_`), the credentials after `Bearer` or `Basic`, and the user-info part of a URL
(`https://user:password@host` keeps only `https://***@host`).

What stays: words. After `Bearer` or `Basic` a short lower-case word (`a bearer token cannot
have...`, `the bearer of bad news`) is English, not a credential, unless it follows an
`Authorization:` header name; so the program's own sentences survive, and a test checks that
every text the client writes passes through unchanged.
"""

from __future__ import annotations

import re

MASK = "***"
# Each shape with a plain substring that any match contains: a fast `in` test spares most texts the
# regular expression, which on 4 KiB of build log is a hundred times slower.
_GITHUB_TOKEN = re.compile(r"\b(?:gh[pousr]_|github_pat_)[A-Za-z0-9_]{16,}")  # 36+ characters in practice
_URL_USER_INFO = re.compile(r"://[^\s/?#@]+@")  # everything between `scheme://` and `@host`
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic)[ \t]+([A-Za-z0-9\-._~+/]+=*)")  # RFC 6750 token68 / Basic
_LONGEST_WORD = 15  # a lower-case run of letters longer than this is taken for a credential


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
    """The scheme and a mask, unless what follows the scheme is a word outside an Authorization header."""
    scheme, value = match.group(1), match.group(2)
    word = value.isalpha() and value.islower() and len(value) <= _LONGEST_WORD
    if word and not match.string[: match.start()].rstrip().lower().endswith("authorization:"):
        return match.group(0)
    return f"{scheme} {MASK}"


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
