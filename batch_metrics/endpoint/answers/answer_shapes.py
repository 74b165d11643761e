"""The shapes of the answers to a pipeline owner's questions (what changed, where, why, how slow, how flaky),
for the OpenAPI document; tests check every answer against them. The comparison itself is the upload's
answer too, so its shape is the wire contract's (models.RunChanges)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from batch_metrics.endpoint.answers.shapes import FlakyRecipe
from batch_metrics.models import ChangeCounts, FixedFailure, NewFailure, PlatformChanges, StillFailing


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EcosystemChanges(_Answer):
    """One ecosystem's comparison of a run with its previous one (models.RunChanges), and both runs' times."""

    run_id: int
    ecosystem: str
    started_at: str
    previous_run_id: int | None = Field(description="Null for the ecosystem's first run: nothing to compare.")
    previous_started_at: str | None
    counts: ChangeCounts = Field(description="Whole counts; the lists may be cut (see each answer).")
    new_failures: list[NewFailure]
    fixed: list[FixedFailure]
    still_failing: list[StillFailing]
    new_recipes: list[str]
    gone_recipes: list[str]
    platforms: list[PlatformChanges]


class LatestChanges(_Answer):
    """Each ecosystem's latest comparison: the first 20 entries of each list (a run's answer has them all)."""

    ecosystems: list[EcosystemChanges]


class RunChangesAnswer(_Answer):
    """A run's comparison per ecosystem it validated (none for runs stored before migration 9): each list
    holds at most 1,000 entries."""

    run_id: int
    ecosystems: list[EcosystemChanges]


class Cell(_Answer):
    platform: str
    result: str = Field(description="`failed`, `passed` or `skipped` on that platform in that run.")


class RunMatrixRecipe(_Answer):
    ecosystem: str
    recipe_name: str
    platform_only: bool = Field(description="It also passed on another platform in this run.")
    cells: list[Cell]


class RunMatrix(_Answer):
    """The run's failing recipes (at most 500) on every platform they ran on."""

    run_id: int
    platforms: list[str]
    recipes: list[RunMatrixRecipe]
    truncated: bool


class WindowCell(_Answer):
    platform: str
    failed: int = Field(
        description="Runs (of those where the recipe failed somewhere) it failed on this platform."
    )
    passed: int
    skipped: int


class WindowMatrixRecipe(_Answer):
    ecosystem: str
    recipe_name: str
    failing_runs: int = Field(description="The window's runs in which it failed on some platform.")
    failures: int = Field(description="Failed platform validations in those runs.")
    platform_only_runs: int = Field(description="Those runs in which it also passed on another platform.")
    last_run_id: int
    last_failed_at: str
    failed_on: list[str]
    passed_on: list[str] = Field(description="Platforms where it passed in a run where it failed elsewhere.")
    cells: list[WindowCell]


class WindowMatrix(_Answer):
    """The window's most failing recipes, and those failing only on some platforms, per platform."""

    days: int
    platforms: list[str]
    recipes: list[WindowMatrixRecipe]
    platform_only: list[WindowMatrixRecipe]


class Example(_Answer):
    recipe_name: str
    platform: str
    stage: str | None
    message_head: str = Field(description="The message's first 240 characters (all of it when under 480).")
    message_tail: str = Field(description="Its last 240 characters; empty when the head holds it all.")
    run_url: str | None = Field(description="The CI run that produced it, as its uploader sent it (http(s)).")


class Reason(_Answer):
    ecosystem: str
    error_category: str = Field(description="Empty for failures without one.")
    error_subcategory: str = Field(description="Empty for failures without one.")
    failures: int
    runs: int = Field(description="The window's runs with such failures.")
    last_run_id: int
    last_run_recipes: int = Field(description="Recipes with such failures in that run.")
    first_seen_run_id: int
    first_seen_at: str = Field(description="Over every stored run, not only the window's.")
    last_seen_run_id: int
    last_seen_at: str
    example: Example = Field(description="The first such failure of the group's latest run in the window.")


class Reasons(_Answer):
    days: int
    reasons: list[Reason] = Field(description="The groups with the most failures in the window; at most 20.")


class RunReason(_Answer):
    ecosystem: str
    error_category: str
    error_subcategory: str
    failures: int
    recipes: int
    example: Example


class RunReasons(_Answer):
    run_id: int
    reasons: list[RunReason] = Field(description="By failures; at most 100.")


class SlowRecipe(_Answer):
    recipe_name: str
    runs: int = Field(description="Runs in the window where it was among its platform's 10 slowest.")
    mean_seconds: float = Field(description="Its mean duration in those runs.")
    longest_seconds: float
    last_run_id: int


class SlowPlatform(_Answer):
    ecosystem: str
    platform: str
    recipes: list[SlowRecipe] = Field(description="The 5 with the longest mean duration.")


class DurationDay(_Answer):
    line: str = Field(description="The ecosystem; with `ecosystem` given, the platform.")
    day: str
    results: int
    mean_seconds: float = Field(description="Mean duration of a platform validation that day.")


class SystemMinutes(_Answer):
    os: str = Field(description="`macos` or `linux`.")
    minutes: float
    budget: float | None = Field(description="The weekly budget (`serve --minutes-budget`); null when unset.")
    over: bool


class EcosystemMinutes(_Answer):
    ecosystem: str
    macos_minutes: float
    linux_minutes: float


class PlatformMinutes(_Answer):
    ecosystem: str
    platform: str
    minutes: float = Field(description="The platform's rows' durations, in minutes.")


class Minutes(_Answer):
    days: int = Field(description="The budget's period: the last 7 days, whatever the window.")
    since: str
    systems: list[SystemMinutes]
    ecosystems: list[EcosystemMinutes]
    platforms: list[PlatformMinutes]


class Speed(_Answer):
    days: int
    slowest: list[SlowPlatform]
    durations: list[DurationDay]
    minutes: Minutes


class RetriedRecipe(_Answer):
    ecosystem: str
    recipe_name: str
    retried_passes: int = Field(description="Results that passed after more than one attempt.")
    runs: int
    platforms: int
    most_attempts: int
    last_seen_at: str
    last_run_id: int


class FlakeRate(_Answer):
    ecosystem: str
    validations: int = Field(description="Passed and failed platform validations in the window.")
    failed: int
    passed_after_retries: int
    failure_rate: float
    flake_rate: float = Field(description="`passed_after_retries / validations`.")


class Flaky(_Answer):
    """Flaky by each definition, apart (docs/dashboard.md#flaky), and the rates per ecosystem."""

    days: int
    reset_runs: int = Field(description="Runs a result must hold to reset the count across runs.")
    across_runs: list[FlakyRecipe]
    within_run: list[RetriedRecipe]
    rates: list[FlakeRate]


ANSWER_MODELS = (LatestChanges, RunChangesAnswer, RunMatrix, WindowMatrix, Reasons, RunReasons, Speed, Flaky)
