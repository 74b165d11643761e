"""Who may read and who may write: the credentials (credentials.py, a file reloaded by source.py, the
single-token options in tokens.py), GitHub Actions OIDC tokens (oidc.py), and the check every route
makes first (guard.py). docs/endpoint.md documents the file; docs/security.md what each credential can do."""

from __future__ import annotations

from batch_metrics.endpoint.access.credentials import Credentials, CredentialsError, legacy_entries
from batch_metrics.endpoint.access.guard import Access, Guard
from batch_metrics.endpoint.access.source import CREDENTIALS_ENV, CredentialsFile, FixedCredentials
from batch_metrics.endpoint.access.tokens import TOKEN_FILE_ENV, load_tokens

__all__ = [
    "CREDENTIALS_ENV",
    "TOKEN_FILE_ENV",
    "Access",
    "Credentials",
    "CredentialsError",
    "CredentialsFile",
    "FixedCredentials",
    "Guard",
    "legacy_entries",
    "load_tokens",
]
