"""The shapes of the endpoint's JSON answers (the read API, `/health`, a 500, the dashboard), for the
OpenAPI document; tests check answers against them. What an upload carries and gets back is the
wire contract (models.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from batch_metrics.models import RunSummary, UnlistedResults


class StoredResult(BaseModel):
    """A stored result row, as the read API answers it."""

    id: int
    recipe_name: str
    ecosystem: str
    result: str
    error_category: str | None
    error_message: str | None
    duration_seconds: float
    platform: str | None
    error_subcategory: str | None = None
    blocked_by: list[str] | None = None
    attempts: int | None = None
    stage: str | None = None


class RunUploader(BaseModel):
    """Who uploaded a run: a token by its name, or a GitHub Actions OIDC token by the rule that let it in
    and the claims of the run it was issued to (these are null for a token)."""

    kind: Literal["token", "oidc"]
    name: str = Field(description="The token's name in the credentials file, or the OIDC rule's name.")
    repository: str | None
    workflow: str | None = Field(description="The `job_workflow_ref` claim: the workflow file and its ref.")
    run_id: str | None
    run_attempt: str | None
    ref: str | None
    sha: str | None


class StoredRun(BaseModel):
    """A stored batch run, as the read API answers it."""

    id: int
    batch_id: str
    ecosystem: str
    started_at: str
    completed_at: str | None
    total_recipes: int
    passed: int
    failed: int
    skipped: int
    success_rate: float
    macos_minutes: float
    linux_minutes: float
    received_at: str | None = Field(description="When the endpoint stored it; null on rows from D1.")
    uploader: RunUploader | None = Field(
        description="Who uploaded it; null on runs stored before migration 8 or from D1."
    )
    run_url: str | None = Field(description="The CI run's page as the uploader sent it; http(s) only.")


class StoredRunWithResults(StoredRun):
    """A stored run and one page of its results, in the order they were stored."""

    results: list[StoredResult]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page of results; null on the last page."
    )
    run_summary: RunSummary | None = None
    unlisted: list[UnlistedResults] = Field(default_factory=list)


class RunPage(BaseModel):
    """One page of runs, newest first."""

    runs: list[StoredRun]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class Health(BaseModel):
    """Whether the database can be read and written now, and how far the dashboard's roll-ups lag."""

    status: Literal["ok", "unavailable"]
    reason: str | None = Field(default=None, description="Why the endpoint is unavailable.")
    rollups_queued: int | None = Field(
        default=None, description="Stored batches not yet in the dashboard's roll-ups (set aside included)."
    )
    rollups_set_aside: int | None = Field(
        default=None,
        description="Stored batches whose roll-up failed: kept, retried later, and left out of the dashboard "
        "until then.",
    )


class ServerError(BaseModel):
    """A 500: nothing internal, only an id to find the details in the server's log."""

    error: str
    request_id: str


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LatestRun(_Answer):
    """The ecosystem's own counts in its latest run: platform validations, and generation failures apart."""

    id: int
    started_at: str
    success_rate: float
    passed: int
    failed: int
    skipped: int
    total_recipes: int
    generation_failed: int = Field(description="Recipes that failed to be generated (not validations).")


class EcosystemStatus(_Answer):
    ecosystem: str
    latest_run: LatestRun
    runs_since_green: int = Field(
        description="Runs that validated something since the last green one: something passed, nothing "
        "failed (all of them if none)."
    )
    last_green_at: str | None = Field(description="`started_at` of the last green run.")
    stale: bool = Field(description="No batch for longer than `stale_after_seconds`.")
    stale_after_seconds: float | None = Field(
        description="`serve --stale-after`, else twice the median gap between the latest runs (at least an "
        "hour); null with fewer than two runs."
    )


class DayPoint(_Answer):
    ecosystem: str
    day: str = Field(description="UTC day of `started_at`, YYYY-MM-DD.")
    runs: int
    passed: int
    failed: int
    generation_failed: int
    success_rate: float
    macos_minutes: float
    linux_minutes: float


class PlatformRate(_Answer):
    ecosystem: str
    platform: str = Field(description="Empty for rows that named no platform.")
    runs: int
    passed: int
    failed: int
    skipped: int
    success_rate: float
    minutes: float = Field(description="Summed `duration_seconds` of the platform's rows, in minutes.")


class PlatformDay(_Answer):
    ecosystem: str
    platform: str
    day: str = Field(description="UTC day of `started_at`, YYYY-MM-DD.")
    passed: int
    failed: int
    success_rate: float


class FailureCount(_Answer):
    ecosystem: str
    name: str = Field(description="The recipe, or the error category ('' for failures without one).")
    failures: int
    earlier: int = Field(description="Failures in the window's first half.")
    recent: int = Field(description="Failures in the window's second half: `recent - earlier` is the trend.")
    last_run_id: int


class FlakyRecipe(_Answer):
    ecosystem: str
    recipe_name: str
    flips: int = Field(
        description="Changes between passed and failed on one platform, run after run, in the window, since "
        "the last time the result held for 10 runs of the ecosystem (the reset)."
    )
    platforms: int
    platform_names: list[str]
    last_flip_at: str


class DashboardSummary(_Answer):
    """Every panel of the page for one window."""

    days: int
    ecosystem: str | None
    generated_at: str
    ecosystems: list[EcosystemStatus]
    daily: list[DayPoint]
    platforms: list[PlatformRate]
    platform_days: list[PlatformDay] = Field(
        description="The success rate per platform and day: only with `ecosystem`, else empty."
    )
    failing_recipes: list[FailureCount]
    error_categories: list[FailureCount]
    flaky_recipes: list[FlakyRecipe]


class RecipeRow(_Answer):
    batch_run_id: int
    ecosystem: str
    started_at: str
    platform: str
    result: str
    error_category: str | None
    error_subcategory: str | None
    stage: str | None


class RecipeHistory(_Answer):
    recipe_name: str
    days: int
    history: list[RecipeRow] = Field(description="Oldest first; at most 2,000 rows.")


class FailedRow(_Answer):
    recipe_name: str
    platform: str
    error_category: str | None
    error_subcategory: str | None
    blocked_by: list[str] | None
    stage: str | None = Field(description="`generation` for a failure to generate the recipe.")
    error_message: str | None


class EcosystemCounts(_Answer):
    ecosystem: str
    passed: int
    failed: int
    skipped: int
    generation_failed: int
    success_rate: float


class StoredUnlisted(_Answer):
    platform: str
    ecosystem: str | None
    passed: int
    failed: int
    skipped: int


class RunFailures(_Answer):
    id: int
    batch_id: str
    ecosystem: str = Field(description="The batch's own label.")
    started_at: str
    success_rate: float
    passed: int
    failed: int
    skipped: int
    ecosystems: list[EcosystemCounts] = Field(description="Each ecosystem's own counts in the run.")
    run_summary: RunSummary | None = Field(description="The pipeline's own account of the batch, as sent.")
    unlisted: list[StoredUnlisted] = Field(description="Results the run summary counts that no row names.")
    uploader: RunUploader | None = Field(description="Who uploaded it, as in `GET /batch-runs/{id}`.")
    run_url: str | None = Field(description="The CI run's page (http or https), as the uploader sent it.")
    failures: list[FailedRow] = Field(description="By recipe name; at most 500.")
    truncated: bool


DASHBOARD_MODELS = (DashboardSummary, RecipeHistory, RunFailures)
