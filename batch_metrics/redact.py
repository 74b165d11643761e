"""Secrets taken out of every text the action shows or sends: the log, warnings, the job summary and
the payload's error messages.

Redaction comes before any escaping: the runner masks a secret only where it appears verbatim, and
escaping (Markdown turns `_` into `&#95;`) would hide a token from the runner's masking while still
showing it to every reader.

What goes: every value registered as a secret (the token, each of its lines), and credential shapes
that a build log may carry whoever owns them: GitHub tokens (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`,
`github_pat_`), the credentials after `Bearer` or `Basic`, and the user-info part of a URL
(`https://user:password@host` keeps only `https://***@host`).
"""

from __future__ import annotations

import re

MASK = "***"
_CREDENTIAL_SHAPES = re.compile(
    r"\b(?:gh[pousr]_|github_pat_)[A-Za-z0-9_]{16,}"  # GitHub tokens (36+ characters in practice)
    r"|(?<=://)[^\s/?#@]+@"  # URL user-info: everything between `scheme://` and `@host`
    r"|(?i:\b(?:bearer|basic)[ \t]+)[A-Za-z0-9\-._~+/]+=*"  # RFC 6750 token68 / Basic credentials
)


def _shape_replacement(match: re.Match[str]) -> str:
    text = match.group(0)
    if text.endswith("@"):
        return MASK + "@"
    scheme = re.match(r"(?i)(?:bearer|basic)[ \t]+", text)
    return (scheme.group(0) if scheme else "") + MASK


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
        return _CREDENTIAL_SHAPES.sub(_shape_replacement, text)
