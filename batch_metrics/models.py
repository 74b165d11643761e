"""The wire contract: the one module the client and the endpoint share.

`POST /batch-metrics` carries one `BatchPayload`. The models mirror what the
Cloudflare Worker endpoint accepts, so anything the Worker stores is valid
here too: free-form strings stay strings (the Worker does not check them),
and `null` in an optional number means "not given" (stored as 0). The rules
the contract states are here too, written once: the success rate, RFC 3339
times, the limits on every text, number and time (the endpoint refuses what
lies beyond them, the client trims and leaves out what would), and the stable
text of the documents generated from the models.

The request body and its rows are TypedDicts, not models: batches hold 100k+ rows, and plain
dicts validate and serialise about four times faster than a model per row, in a fraction of the
memory. An optional key may be absent: read it with `.get()`. The client validates and serialises
with the pydantic-core validators and serializer of their TypeAdapters (the names in capitals at
the end), the endpoint with the adapters themselves. The answer (`BatchCreated`) is a model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, NotRequired

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, with_config
from pydantic_core import PydanticCustomError, ValidationError
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

# The limits (docs/endpoint.md#limits). Texts are counted in characters, up to 4 bytes each in UTF-8:
# the widest index key, recipe_latest's (ecosystem, recipe_name, platform, result), is then at most
# (64 + 384 + 96 + 32) x 4 = 2,304 bytes, under PostgreSQL's 2,704-byte limit on a btree row.
MAX_BATCH_ID = 256
MAX_ECOSYSTEM = 64
MAX_RECIPE_NAME = 384
MAX_RESULT = 32
MAX_ERROR_CATEGORY = 256
MAX_ERROR_MESSAGE = 4096
MAX_PLATFORM = 96
MAX_BLOCKED_BY = 64  # recipes named as blocking one result
MAX_SUMMARY_ENTRIES = 64  # platforms, and ecosystems, a run summary names
MAX_SOURCE = 1024  # a file's path in the workspace
MAX_URL = 2048
MAX_TIME_TEXT = 64
# Counts are stored in INTEGER columns: 32-bit on PostgreSQL.
MAX_COUNT = 2**31 - 1
# Numbers are bounded so that no sum the endpoint makes can leave the finite doubles (~1.8e308), however
# many rows, batches and days it adds up: ~116 days for one result, 1e12 minutes for one batch (every row
# of the largest body the endpoint reads, 256 MiB, at the longest duration).
MAX_DURATION_SECONDS = 1e7
MAX_MINUTES = 1e12
# Batch times: RFC 3339, from 2000 to a day ahead of the endpoint's clock (a client's clock may run ahead).
EARLIEST_TIME = datetime(2000, 1, 1, tzinfo=UTC)
CLOCK_SKEW = timedelta(days=1)


def none_to_zero(value: Any) -> Any:
    """`null` is 0 ("not given", as the Worker stores it); a boolean or numeric string is a client bug,
    refused with a 400 naming it. Anything else goes on to the number's own validation."""
    return 0 if value is None else no_text(value)


def no_text(value: Any) -> Any:
    """A boolean or numeric string where a number belongs is a client bug, refused with a 400 naming it."""
    if isinstance(value, bool | str):
        raise PydanticCustomError("number_type", "Input should be a number")
    return value


_Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
_Minutes = Annotated[float, Field(ge=0, le=MAX_MINUTES)]
_Rate = Annotated[float, Field(ge=0, le=1)]
# `null` means "not given", stored as 0 as the Worker does; the JSON Schema says null is allowed.
Count = Annotated[_Count, BeforeValidator(none_to_zero, json_schema_input_type=_Count | None)]
Minutes = Annotated[_Minutes, BeforeValidator(none_to_zero, json_schema_input_type=_Minutes | None)]
Rate = Annotated[_Rate, BeforeValidator(none_to_zero, json_schema_input_type=_Rate | None)]
# Strict (in Rust, per result row): JSON numbers only, integers included; no strings or booleans.
Seconds = Annotated[float, Field(ge=0, le=MAX_DURATION_SECONDS, strict=True)] | None


BatchId = Annotated[str, Field(min_length=1, max_length=MAX_BATCH_ID)]
Ecosystem = Annotated[str, Field(min_length=1, max_length=MAX_ECOSYSTEM)]
RecipeName = Annotated[str, Field(min_length=1, max_length=MAX_RECIPE_NAME)]
ResultText = Annotated[str, Field(min_length=1, max_length=MAX_RESULT)]
ErrorCategory = Annotated[str, Field(max_length=MAX_ERROR_CATEGORY)] | None
ErrorMessage = Annotated[str, Field(max_length=MAX_ERROR_MESSAGE)] | None
Platform = Annotated[str, Field(max_length=MAX_PLATFORM)] | None
Stage = Annotated[str, Field(max_length=MAX_RESULT)] | None
_ENTRIES = Field(max_length=MAX_SUMMARY_ENTRIES)
BlockedBy = Annotated[
    list[Annotated[str, Field(max_length=MAX_RECIPE_NAME)]], Field(max_length=MAX_BLOCKED_BY)
]
Attempts = Annotated[_Count | None, BeforeValidator(no_text, json_schema_input_type=_Count | None)]


def time_window_problem(moment: datetime, now: datetime | None = None) -> str | None:
    """Why `moment` cannot be a batch's time (before 2000, or over a day ahead of `now`), else None."""
    latest = (now or datetime.now(UTC)) + CLOCK_SKEW
    if moment < EARLIEST_TIME:
        return f"{rfc3339(moment)} is before {rfc3339(EARLIEST_TIME)}"
    if moment > latest:
        return f"{rfc3339(moment)} is more than a day in the future"
    return None


def batch_time(text: str) -> str:
    """A batch time as sent, once it is RFC 3339 within the window (surrounding blanks dropped)."""
    try:
        moment = parse_rfc3339(text)
    except ValueError as error:
        raise PydanticCustomError("rfc3339", str(error)) from None
    problem = time_window_problem(moment)
    if problem:
        raise PydanticCustomError("time_window", problem)
    return text.strip()


_TIME_DESCRIPTION = (
    "RFC 3339 timestamp with a zone, e.g. 2026-02-19T14:31:25Z, from 2000-01-01T00:00:00Z to a day "
    "ahead of the endpoint's clock."
)
BatchTime = Annotated[
    str, Field(min_length=1, max_length=MAX_TIME_TEXT, json_schema_extra={"format": "date-time"}),
    AfterValidator(batch_time),
]  # fmt: skip
_WIRE_CONFIG = ConfigDict(extra="ignore", allow_inf_nan=False)


@with_config(_WIRE_CONFIG)
class RecipeResult(TypedDict):
    """One recipe (package) validated on one platform."""

    recipe_name: RecipeName
    ecosystem: Ecosystem
    result: Annotated[
        ResultText,
        Field(
            description="`passed`, `failed` or `skipped` as the client writes it; "
            "other strings are stored as sent, as the Worker does."
        ),
    ]
    error_category: NotRequired[ErrorCategory]
    error_message: NotRequired[ErrorMessage]
    duration_seconds: NotRequired[Seconds]
    platform: NotRequired[
        Annotated[
            Platform,
            Field(
                description="Platform id such as `linux-alpine-musl-arm64`; "
                "unknown to the Worker, which ignores it."
            ),
        ]
    ]
    # The fields below are unknown to the Worker too, which ignores them.
    error_subcategory: NotRequired[
        Annotated[ErrorCategory, Field(description="Detail within `error_category`, e.g. `verify_failed`.")]
    ]
    blocked_by: NotRequired[
        Annotated[BlockedBy | None, Field(description="Recipes whose absence blocked this one.")]
    ]
    attempts: NotRequired[
        Annotated[
            Attempts,
            Field(description="How many times the validation ran for this result, when more than once."),
        ]
    ]
    stage: NotRequired[
        Annotated[
            Stage,
            Field(
                description="`generation` for a failure to generate the recipe (counted apart: not in "
                "`passed`/`failed`/`skipped` or any rate); absent or `validation` for a platform validation."
            ),
        ]
    ]


@with_config(_WIRE_CONFIG)
class UnlistedResults(TypedDict):
    """Results a run summary counts on a platform that no row names (the committed history names only
    failures): counted in every total and rate, but with no recipe."""

    platform: Annotated[str, Field(min_length=1, max_length=MAX_PLATFORM)]
    ecosystem: NotRequired[
        Annotated[
            Ecosystem | None,
            Field(description="Absent when the files do not say: the batch's own `ecosystem` then."),
        ]
    ]
    passed: NotRequired[Count]
    failed: NotRequired[Count]
    skipped: NotRequired[Count]


@with_config(_WIRE_CONFIG)
class PlatformTotals(TypedDict):
    """One platform job's validations, as a run summary counts them."""

    tested: NotRequired[Count]
    passed: NotRequired[Count]
    failed: NotRequired[Count]


@with_config(_WIRE_CONFIG)
class RunSummary(TypedDict):
    """The pipeline's own account of the batch (tsuku's `data/metrics/batch-runs-<ts>.jsonl`), kept whole:
    generation (`ecosystems`, `generated`, `total`, `merged`, `excluded`, `constrained`) apart from
    platform validation (`platforms`)."""

    source: NotRequired[
        Annotated[str | None, Field(max_length=MAX_SOURCE, description="The file it was read from.")]
    ]
    batch_id: NotRequired[
        Annotated[str | None, Field(max_length=MAX_BATCH_ID, description="The pipeline's own batch id.")]
    ]
    platforms: NotRequired[
        Annotated[dict[Annotated[str, Field(max_length=MAX_PLATFORM)], PlatformTotals], _ENTRIES] | None
    ]
    ecosystems: NotRequired[
        Annotated[
            Annotated[dict[Annotated[str, Field(max_length=MAX_ECOSYSTEM)], Count], _ENTRIES] | None,
            Field(description="Packages taken from the queue, per ecosystem."),
        ]
    ]
    ecosystem: NotRequired[
        Annotated[Ecosystem | None, Field(description="Older summaries name one ecosystem, without a count.")]
    ]
    generated: NotRequired[Count]
    total: NotRequired[Count]
    merged: NotRequired[Count]
    excluded: NotRequired[Count]
    constrained: NotRequired[Count]
    timestamp: NotRequired[Annotated[str, Field(max_length=MAX_TIME_TEXT)] | None]
    duration_seconds: NotRequired[Seconds]


@with_config(_WIRE_CONFIG)
class BatchPayload(TypedDict):
    """One batch run and its per-recipe results; a count, rate or minutes left out or null is stored as 0."""

    batch_id: BatchId
    ecosystem: Ecosystem
    started_at: Annotated[BatchTime, Field(description=_TIME_DESCRIPTION)]
    completed_at: NotRequired[Annotated[BatchTime | None, Field(description=_TIME_DESCRIPTION)]]
    total_recipes: NotRequired[Count]
    passed: NotRequired[Count]
    failed: NotRequired[Count]
    skipped: NotRequired[Count]
    success_rate: NotRequired[Rate]
    macos_minutes: NotRequired[Minutes]
    linux_minutes: NotRequired[Minutes]
    run_url: NotRequired[
        Annotated[
            Annotated[str, Field(max_length=MAX_URL)] | None,
            Field(
                description="The CI run's page "
                "(`$GITHUB_SERVER_URL/<repository>/actions/runs/<id>/attempts/<n>`), linked from the "
                "dashboard; kept only when it is an http(s) URL. Unknown to the Worker, which ignores it."
            ),
        ]
    ]
    results: list[RecipeResult]
    # Unknown to the Worker, which ignores them.
    unlisted: NotRequired[list[UnlistedResults] | None]
    run_summary: NotRequired[RunSummary | None]


class NewFailure(BaseModel):
    """A recipe x platform that failed in this run, not in the ecosystem's previous one."""

    recipe_name: str
    platform: str = Field(description="Empty for rows that named no platform.")
    error_category: str | None
    error_subcategory: str | None
    new_recipe: bool = Field(description="The recipe was not in the previous run at all.")


class FixedFailure(BaseModel):
    """Failed in the previous run, passed in this one: `failed_runs` in a row before."""

    recipe_name: str
    platform: str
    failed_runs: int


class StillFailing(FixedFailure):
    """Failed in the previous run and in this one: `failed_runs` in a row, since run `since_run_id`."""

    since_run_id: int


class PlatformChanges(BaseModel):
    platform: str
    new_failures: int
    fixed: int
    still_failing: int


class ChangeCounts(BaseModel):
    new_failures: int
    fixed: int
    still_failing: int
    new_recipes: int
    gone_recipes: int


class RunChanges(BaseModel):
    """What changed in one ecosystem since its previous run (platform validations): each list by recipe and
    platform, at most 1,000 entries, `counts` whole. A failure skipped or not run now is neither fixed nor
    still failing."""

    ecosystem: str
    previous_run_id: int | None = Field(description="Null for the ecosystem's first run: nothing to compare.")
    counts: ChangeCounts
    new_failures: list[NewFailure]
    fixed: list[FixedFailure]
    still_failing: list[StillFailing]
    new_recipes: list[str] = Field(description="Recipes in this run and not in the previous one.")
    gone_recipes: list[str] = Field(description="Recipes in the previous run and not in this one.")
    platforms: list[PlatformChanges] = Field(description="The counts per platform.")


class BatchCreated(BaseModel):
    """The endpoint's answer to a stored (201) or re-delivered (200) batch."""

    batch_run_id: int
    duplicate: bool = False
    changes: list[RunChanges] | None = Field(
        default=None,
        description="What changed since the previous run of each of its ecosystems (not from the Worker).",
    )


PAYLOAD_ADAPTER: TypeAdapter[BatchPayload] = TypeAdapter(BatchPayload)
# What the client runs per file and per batch: pydantic-core's own validators and serializer.
PAYLOAD_VALIDATOR = PAYLOAD_ADAPTER.validator
PAYLOAD_SERIALIZER = PAYLOAD_ADAPTER.serializer
RESULTS_VALIDATOR = TypeAdapter(list[RecipeResult]).validator
RUN_SUMMARY_VALIDATOR = TypeAdapter(RunSummary).validator


def payload_json_schema() -> dict[str, Any]:
    """The JSON Schema of the request body, as committed in schema/."""
    schema = PAYLOAD_ADAPTER.json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def render_document(document: Mapping[str, Any]) -> str:
    """Stable text (sorted keys, trailing newline), so the drift tests compare byte for byte."""
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def first_problem(error: ValidationError, whole: str) -> str:
    """`where: what (and N more problems)` for the first problem found; `whole` names the document."""
    problem = error.errors(include_url=False)[0]
    where = ".".join(map(str, problem["loc"])) or whole
    more = error.error_count() - 1
    return f"{where}: {problem['msg']}" + (f" (and {more} more problems)" if more else "")


def success_rate(passed: int, failed: int) -> float:
    """passed / (passed + failed), 4 decimals: skipped rows are left out, and nothing run is 0.0."""
    return round(passed / (passed + failed), 4) if passed + failed else 0.0


_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)")


def rfc3339(moment: datetime, *, milliseconds: bool = False) -> str:
    """`2026-02-19T14:31:25Z` (or `...25.123Z`): UTC; a naive datetime is taken as UTC."""
    moment = in_utc(moment)
    if milliseconds:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def in_utc(moment: datetime) -> datetime:
    """The moment in UTC (naive: taken as UTC); OverflowError when that falls outside years 1-9999."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_rfc3339(text: str) -> datetime:
    """The moment an RFC 3339 timestamp names, in UTC; ValueError saying what is expected.

    A moment that has no UTC equivalent in years 1 to 9999 (`0001-01-01T00:00:00+01:00`) is refused
    the same way, not left to overflow later.
    """
    stripped = text.strip()
    try:
        moment = in_utc(datetime.fromisoformat(stripped.upper())) if _RFC3339.fullmatch(stripped) else None
    except (ValueError, OverflowError):
        moment = None
    if moment is None:
        raise ValueError(
            f"{text[:60]!r} is not an RFC 3339 timestamp with a zone, in years 1 to 9999 UTC, "
            "e.g. 2026-02-19T14:31:25Z"
        )
    return moment
