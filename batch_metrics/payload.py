"""The payload builder: one batch from the collected rows, written to disk before any network.

Definitions (also in the README):

- one result row is one recipe validated on one platform;
- `total_recipes` = rows = `passed` + `failed` + `skipped`;
- `success_rate` = passed / (passed + failed), rounded to 4 decimals; skipped rows
  are left out, and a batch where nothing ran has a rate of 0.0;
- `macos_minutes` / `linux_minutes` = the summed `duration_seconds` of rows whose
  platform starts with `darwin`/`macos`/`osx` or with `linux`, in minutes (the
  runner time a batch cost); other platforms count in neither.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from batch_metrics.collectors import Collection, parse_timestamp
from batch_metrics.models import BatchPayload, RecipeResult

_MACOS_PREFIXES = ("darwin", "macos", "osx")


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def default_batch_id(env: Mapping[str, str]) -> str:
    """Unique per workflow run, attempt and job under Actions; unique per invocation elsewhere."""
    run_id = env.get("GITHUB_RUN_ID")
    if run_id:
        repository = env.get("GITHUB_REPOSITORY", "local")
        attempt = env.get("GITHUB_RUN_ATTEMPT", "1")
        job = env.get("GITHUB_JOB")
        return f"{repository}#{run_id}.{attempt}" + (f":{job}" if job else "")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"local-{stamp}-{secrets.token_hex(4)}"


def batch_ecosystem(results: list[RecipeResult]) -> str:
    """The one ecosystem every row shares, `mixed` when they differ, `unknown` when there are none."""
    ecosystems = {row.ecosystem for row in results}
    if len(ecosystems) == 1:
        return ecosystems.pop()
    return "mixed" if ecosystems else "unknown"


def _runner_minutes(results: list[RecipeResult]) -> tuple[float, float]:
    macos = linux = 0.0
    for row in results:
        if row.duration_seconds and row.platform:
            platform = row.platform.lower()
            if platform.startswith(_MACOS_PREFIXES):
                macos += row.duration_seconds
            elif platform.startswith("linux"):
                linux += row.duration_seconds
    return round(macos / 60, 4), round(linux / 60, 4)


def build_payload(
    collection: Collection,
    *,
    ecosystem: str | None = None,
    batch_id: str | None = None,
    started_at: str | None = None,
    env: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> BatchPayload:
    """Build the batch: a lone ready payload is sent as it is, anything else merged into one batch."""
    now = now or datetime.now(UTC)
    if started_at is not None and parse_timestamp(started_at) is None:
        raise ValueError(
            f"started-at {started_at!r} is not an RFC 3339 timestamp (e.g. 2026-02-19T14:31:25Z)"
        )
    if len(collection.payloads) == 1 and not collection.results:
        ready = collection.payloads[0]
        overrides = {
            key: value
            for key, value in (("batch_id", batch_id), ("ecosystem", ecosystem), ("started_at", started_at))
            if value
        }
        return ready.model_copy(update=overrides) if overrides else ready

    results = [row for payload in collection.payloads for row in payload.results] + collection.results
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for row in results:
        if row.result in counts:
            counts[row.result] += 1
    ran = counts["passed"] + counts["failed"]
    macos_minutes, linux_minutes = _runner_minutes(results)
    earliest = collection.earliest
    return BatchPayload(
        batch_id=batch_id or default_batch_id(env if env is not None else os.environ),
        ecosystem=ecosystem or batch_ecosystem(results),
        started_at=rfc3339(parse_timestamp(started_at) or now) if started_at else rfc3339(earliest or now),
        completed_at=rfc3339(now),
        total_recipes=len(results),
        passed=counts["passed"],
        failed=counts["failed"],
        skipped=counts["skipped"],
        success_rate=round(counts["passed"] / ran, 4) if ran else 0.0,
        macos_minutes=macos_minutes,
        linux_minutes=linux_minutes,
        results=results,
    )


def payload_bytes(payload: BatchPayload) -> bytes:
    """Compact JSON, serialised by pydantic's Rust core; `null` fields are left out to keep it small."""
    return payload.model_dump_json(exclude_none=True).encode()


def write_payload(payload: BatchPayload, path: Path) -> bytes:
    """Write atomically (temp file + rename), so a half-written payload is never left to re-send."""
    body = payload_bytes(payload)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(body)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return body
