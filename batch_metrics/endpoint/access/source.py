"""Where the guard gets its credentials: fixed at start (the single-token options alone), or a
credentials file reloaded without a restart.

The file is read again when it changes (its mtime, size or inode, looked at no more than once a
second, so a request costs no stat in between) and on SIGHUP (`serve` calls `reload`). A file that
no longer parses keeps the last good credentials in force, and the log says why; a broken file at
start stops the server (`CredentialsError`) rather than starting with nothing.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from batch_metrics.endpoint.access.credentials import (
    LEGACY_NAME,
    Credentials,
    CredentialsError,
    parse_credentials,
)

log = logging.getLogger("batch_metrics.auth")

CREDENTIALS_ENV = "BATCH_METRICS_CREDENTIALS"
CHECK_EVERY_SECONDS = 1.0


class FixedCredentials:
    """Credentials that never change: the legacy tokens, or what a test builds."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials

    def current(self) -> Credentials:
        return self.credentials

    def reload(self, why: str) -> bool:
        return False


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


class CredentialsFile:
    """A credentials file and the legacy tokens beside it; `current()` is what is in force now."""

    def __init__(self, path: str | os.PathLike[str], legacy: Sequence[str] = ()) -> None:
        self.path = Path(path)
        self.legacy = tuple(legacy)
        self._lock = threading.Lock()
        self._seen = _signature(self.path)
        self.credentials = self._read()  # OSError or CredentialsError: the server does not start
        self._checked = time.monotonic()
        log.info("credentials from %s: %s", self.path, describe(self.credentials))

    def _read(self) -> Credentials:
        try:
            text = self.path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise CredentialsError("not UTF-8 text") from None
        return parse_credentials(text, self.legacy)

    def current(self) -> Credentials:
        now = time.monotonic()
        if now - self._checked >= CHECK_EVERY_SECONDS:
            self._checked = now
            if _signature(self.path) != self._seen:
                self.reload("the file changed")
        return self.credentials

    def reload(self, why: str) -> bool:
        """Read the file again; on any problem keep the credentials in force. True when reloaded."""
        with self._lock:
            self._seen = _signature(self.path)
            try:
                credentials = self._read()
            except (OSError, CredentialsError) as error:
                reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
                log.error(
                    "credentials not reloaded from %s (%s): %s; the last good ones stay in force",
                    self.path, why, reason,
                )  # fmt: skip
                return False
            self.credentials = credentials
        log.info("credentials reloaded from %s (%s): %s", self.path, why, describe(credentials))
        return True


def describe(credentials: Credentials) -> str:
    """What is in force, by count and name, for the log: never a token or a digest."""
    names = ", ".join(entry.grant.name for entry in credentials.tokens if entry.grant.name != LEGACY_NAME)
    legacy = sum(entry.grant.name == LEGACY_NAME for entry in credentials.tokens)
    oidc = (
        f"OIDC from {credentials.oidc.issuer} with {len(credentials.rules)} rules"
        if credentials.oidc
        else "no OIDC"
    )
    return f"tokens [{names}]" + (f" and {legacy} legacy tokens" if legacy else "") + f"; {oidc}"
