"""The shapes of the dashboard's JSON answers, for the OpenAPI document; tests check answers against them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from batch_metrics.models import RunSummary, RunUploader


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
    flips: int = Field(description="Changes between passed and failed on one platform, run after run.")
    platforms: int
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
