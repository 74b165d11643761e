"""The payload builder: one batch from the collected rows.

Definitions (docs/counting.md explains them to users):

- one result row is one recipe validated on one platform; rows that describe the same result
  are merged first (client.merge), and rows of the generation stage (`stage: generation`, tsuku's
  failure records) are counted apart, in none of the numbers below;
- `total_recipes` = the validation rows plus the unlisted results (what a run summary counts
  beyond the rows, client.reconcile) = `passed` + `failed` + `skipped`;
- `success_rate` = passed / (passed + failed), rounded to 4 decimals: skipped rows
  are left out, and a batch where nothing ran (no passed or failed row) has 0.0;
- `macos_minutes` / `linux_minutes` = the summed `duration_seconds` of the rows whose
  platform starts with `darwin`, `macos` or `osx` / with `linux`, in minutes, rounded
  to 4 decimals; rows on other platforms (Windows, none given) count in neither;
- `ecosystem` = the `ecosystem` argument, else the one ecosystem all rows share,
  `mixed` when they name several; with no row, the one the run summary names (`mixed` for
  several), else `unknown`;
- `started_at` = the `started_at` argument (RFC 3339, normalised to UTC), else the
  earliest of the inputs' timestamps and the run summary's `timestamp - duration_seconds`,
  else now; `completed_at` = the run summary's `timestamp`, else now; both are written
  as RFC 3339 UTC with `Z`;
- `batch_id` = the argument, else `default_batch_id(env)`;
- `run_url` = the CI run's page under GitHub Actions (`run_url(env)`), which the dashboard links.

A collection holding exactly one ready payload and no other rows or summary is sent as it is:
the fields it lacks (`completed_at`, and totals, rate or minutes left out) are filled
in as above, and only an explicit `batch_id`, `ecosystem` or `started_at` argument
replaces its own. Ready payloads found beside other inputs lend their rows to the
new batch; their own totals and ids are dropped, since a batch is counted from rows.
A ready payload may carry a `result` other than the three (the endpoint stores it
as sent); such a row counts in `total_recipes` only.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from batch_metrics.client.collect import Collection, bound_message, parse_timestamp
from batch_metrics.client.collect.bounds import HEADER_TEXTS, bound_texts
from batch_metrics.client.merge import merge_rows
from batch_metrics.client.reconcile import GENERATION, Reconciled, one_ecosystem, reconcile, the_summary
from batch_metrics.models import (
    MAX_ERROR_MESSAGE,
    MAX_MINUTES,
    PAYLOAD_SERIALIZER,
    PAYLOAD_VALIDATOR,
    parse_rfc3339,
    rfc3339,
    success_rate,
)

if TYPE_CHECKING:
    from batch_metrics.models import BatchPayload, RecipeResult, RunSummary, UnlistedResults

_MACOS_PREFIXES = ("darwin", "macos", "osx")
_NO_ENV: Mapping[str, str] = MappingProxyType({})


def default_batch_id(env: Mapping[str, str]) -> str:
    """`<repository>#<run id>.<attempt>:<job>` under GitHub Actions, else `local-<UTC time>-<random>`.

    The run id and attempt make a re-run a new batch; the job id tells apart two jobs
    of one run that each upload. Legs of one matrix job share all of these: give them
    a `batch-id` of their own.
    """
    run_id = env.get("GITHUB_RUN_ID")
    if run_id:
        repository = env.get("GITHUB_REPOSITORY") or "github"
        attempt = env.get("GITHUB_RUN_ATTEMPT") or "1"
        job = env.get("GITHUB_JOB")
        return f"{repository}#{run_id}.{attempt}" + (f":{job}" if job else "")
    return f"local-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def run_url(env: Mapping[str, str]) -> str | None:
    """`$GITHUB_SERVER_URL/<repository>/actions/runs/<run id>/attempts/<attempt>` under GitHub Actions
    (the attempt's own page), else None."""
    server, repository, run_id = (
        env.get("GITHUB_SERVER_URL"),
        env.get("GITHUB_REPOSITORY"),
        env.get("GITHUB_RUN_ID"),
    )
    if not (server and repository and run_id):
        return None
    url = f"{server.rstrip('/')}/{repository}/actions/runs/{run_id}"
    attempt = env.get("GITHUB_RUN_ATTEMPT")
    return f"{url}/attempts/{attempt}" if attempt else url


def batch_ecosystem(
    results: list[RecipeResult], unlisted: Sequence[UnlistedResults] = (), summary: RunSummary | None = None
) -> str:
    """The one ecosystem every row shares, `mixed` when they differ, `unknown` when there are none;
    with no row, the ecosystems the run summary names."""
    ecosystems = {row["ecosystem"] for row in results}
    ecosystems.update(entry.get("ecosystem") or "" for entry in unlisted if entry.get("ecosystem"))
    if not ecosystems and summary:
        ecosystems = set(summary.get("ecosystems") or {}) | {summary.get("ecosystem") or ""}
        ecosystems.discard("")
    if len(ecosystems) == 1:
        return ecosystems.pop()
    return "mixed" if ecosystems else "unknown"


def batch_totals(results: list[RecipeResult], unlisted: Sequence[UnlistedResults] = ()) -> dict[str, Any]:
    """The counts, success rate and runner minutes of a batch, as defined in the module docstring."""
    counts = Counter(map(itemgetter("result"), results))
    generation = [row["result"] for row in results if "stage" in row and row["stage"] == GENERATION]
    counts.subtract(generation)
    for entry in unlisted:
        counts.update({outcome: entry.get(outcome) or 0 for outcome in ("passed", "failed", "skipped")})
    passed, failed = counts["passed"], counts["failed"]
    macos = linux = 0.0
    for row in results:
        seconds, platform = row.get("duration_seconds"), row.get("platform")
        if seconds and platform:
            platform = platform.lower()
            if platform.startswith(_MACOS_PREFIXES):
                macos += seconds
            elif platform.startswith("linux"):
                linux += seconds
    return {
        "total_recipes": sum(counts.values()),
        "passed": passed,
        "failed": failed,
        "skipped": counts["skipped"],
        "success_rate": success_rate(passed, failed),
        "macos_minutes": min(round(macos / 60, 4), MAX_MINUTES),
        "linux_minutes": min(round(linux / 60, 4), MAX_MINUTES),
    }


def build_payload(
    collection: Collection,
    *,
    ecosystem: str | None = None,
    batch_id: str | None = None,
    started_at: str | None = None,
    env: Mapping[str, str] = _NO_ENV,
    now: datetime | None = None,
    ecosystem_map: Mapping[str, str] | None = None,
    category_map: Mapping[str, str] | None = None,
) -> BatchPayload:
    """The batch to send. `env` is where the default batch id looks for GitHub's variables.

    Merging rows and checking them against the run summary warn about what they find: the
    warnings join `collection.warnings`. Raises ValueError when `started_at` is given but is not
    RFC 3339.
    """
    now = now or datetime.now(UTC)
    start = rfc3339(parse_rfc3339(started_at)) if started_at else None
    if len(collection.payloads) == 1 and not collection.results and not collection.summaries:
        return _complete(collection.payloads[0], ecosystem, batch_id, start, now, run_url(env))

    summary, warnings = the_summary(collection)
    merged = merge_rows(
        collection, ecosystem_map=ecosystem_map, category_map=category_map,
        summary_ecosystem=one_ecosystem(summary.values) if summary else None,
    )  # fmt: skip
    results = merged.results
    checked = reconcile(results, summary) if summary else Reconciled()
    collection.warnings.extend([*warnings, *merged.warnings, *checked.warnings])
    told = summary.values if summary else None
    began, ended = _summary_times(told)
    earliest = min(filter(None, (collection.earliest, began)), default=None)
    header: dict[str, Any] = {
        "batch_id": batch_id or default_batch_id(env),
        "ecosystem": ecosystem or batch_ecosystem(results, checked.unlisted, told),
        "started_at": start or rfc3339(earliest or now),
        "completed_at": rfc3339(ended or now),
        **batch_totals(results, checked.unlisted),
    }
    if url := run_url(env):
        header["run_url"] = url
    if checked.unlisted:
        header["unlisted"] = checked.unlisted
    if told:
        header["run_summary"] = told
    return _with_rows(header, results)


def _summary_times(summary: RunSummary | None) -> tuple[datetime | None, datetime | None]:
    """When the summarised run began (`timestamp - duration_seconds`) and ended (`timestamp`)."""
    ended = parse_timestamp(summary.get("timestamp")) if summary else None
    if ended is None or summary is None:
        return None, None
    seconds = summary.get("duration_seconds") or 0.0
    try:
        return ended - timedelta(seconds=seconds), ended
    except OverflowError:
        return ended, ended


def _complete(
    ready: BatchPayload,
    ecosystem: str | None,
    batch_id: str | None,
    start: str | None,
    now: datetime,
    url: str | None,
) -> BatchPayload:
    """A ready payload with what it lacks filled in (its own run URL is kept) and explicit arguments
    applied."""
    header: dict[str, Any] = {key: value for key, value in ready.items() if key != "results"}
    totals = batch_totals(ready["results"])
    header.update({key: value for key, value in totals.items() if header.get(key) is None})
    header["completed_at"] = header.get("completed_at") or rfc3339(now)
    if url and not header.get("run_url"):
        header["run_url"] = url
    explicit = {"batch_id": batch_id, "ecosystem": ecosystem, "started_at": start}
    header.update({key: value for key, value in explicit.items() if value})
    return _with_rows(header, ready["results"])


def _with_rows(header: dict[str, Any], results: list[RecipeResult]) -> BatchPayload:
    """The header, fitted to the limits and validated, with the rows attached.

    The rows were validated as they were collected: validating them again would double the
    cost of a large batch.
    """
    bound_texts(header, HEADER_TEXTS)
    payload: BatchPayload = PAYLOAD_VALIDATOR.validate_python({**header, "results": []})
    payload["results"] = results
    return payload


def payload_bytes(payload: BatchPayload) -> bytes:
    """Compact JSON bytes straight from pydantic's Rust serialiser.

    `null`s are left out (the endpoint reads a missing optional field as null): that
    keeps large batches a third smaller.
    """
    return PAYLOAD_SERIALIZER.to_json(payload, exclude_none=True)


def redact_messages(results: list[RecipeResult], redact: Callable[[str], str]) -> None:
    """Secrets out of the rows' error messages, in place, before the payload is written or sent
    (bounded again: a mask may be longer than a short secret it replaces)."""
    for row in results:
        message = row.get("error_message")
        if message:
            row["error_message"] = bound_message(redact(message), MAX_ERROR_MESSAGE)
