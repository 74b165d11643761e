"""Who sent a batch (migration 8): the credential that uploaded it and the CI run it came from.

A static token is kept by its name only (never the token or its hash); a GitHub Actions OIDC token by
the rule that let it in and the claims that say which run sent it. `run_url` is the CI run's page as
the client sent it: kept only when it is an http(s) URL (so the dashboard can link it safely), and
for an OIDC upload only when it points at the run the token was issued to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

MAX_RUN_URL = 2048
# A table of its own, one row per batch stored through the guard: batch_runs keeps the Worker's shape,
# and a batch stored without an uploader (the Worker's, or before migration 8) simply has no row.
MIGRATION = """
CREATE TABLE batch_uploaders (
    batch_run_id {fk} PRIMARY KEY REFERENCES batch_runs(id),
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    repository TEXT,
    workflow TEXT,
    run_id TEXT,
    run_attempt TEXT,
    ref TEXT,
    sha TEXT,
    run_url TEXT
);
"""
_FIELDS = ("kind", "name", "repository", "workflow", "run_id", "run_attempt", "ref", "sha")
UPLOADER_INSERT = (
    f"INSERT INTO batch_uploaders (batch_run_id, {', '.join(_FIELDS)}, run_url) "
    f"VALUES ({', '.join(['{mark}'] * (len(_FIELDS) + 2))})"
)
# For a SELECT on batch_runs: the uploader's columns (prefixed, for nest_uploader) and the join.
UPLOADER_COLUMNS = ", ".join([*(f"u.{field} AS uploader_{field}" for field in _FIELDS), "u.run_url"])
UPLOADER_JOIN = "LEFT JOIN batch_uploaders u ON u.batch_run_id = batch_runs.id"


@dataclass(frozen=True)
class Uploader:
    """The identity an upload was let in with; the CI fields are set for OIDC uploads only."""

    kind: Literal["token", "oidc"]
    name: str
    repository: str | None = None
    workflow: str | None = None
    run_id: str | None = None
    run_attempt: str | None = None
    ref: str | None = None
    sha: str | None = None

    def values(self, run_id: int, run_url: str | None) -> tuple[object, ...]:
        """INSERT's values for the batch run `run_id` and the run URL the client sent."""
        return (
            run_id, self.kind, self.name, self.repository, self.workflow, self.run_id, self.run_attempt,
            self.ref, self.sha, self.kept_run_url(run_url),
        )  # fmt: skip

    def kept_run_url(self, run_url: str | None) -> str | None:
        """The run URL when it is one a page may link to (and, for OIDC, this token's run), else None."""
        if not run_url or len(run_url) > MAX_RUN_URL or not run_url.isprintable():
            return None
        parts = urlsplit(run_url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
            return None
        if self.kind == "oidc":
            run_page = f"/{self.repository}/actions/runs/{self.run_id}"
            if not (parts.path == run_page or parts.path.startswith(run_page + "/")):
                return None
        return run_url


def nest_uploader(row: dict[str, Any]) -> dict[str, Any]:
    """A row read with UPLOADER_COLUMNS and UPLOADER_JOIN, as the read API shows it: `uploader` (null
    for a batch stored without one) and `run_url`."""
    fields = {field: row.pop(f"uploader_{field}") for field in _FIELDS}
    row["uploader"] = fields if fields["kind"] else None
    row["run_url"] = row.pop("run_url")
    return row
