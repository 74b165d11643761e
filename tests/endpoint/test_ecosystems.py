"""The dashboard, its JSON and /metrics group by the rows' ecosystems, on SQLite and PostgreSQL.

A tsuku batch covers several ecosystems under one label; each appears under its own line, with its
own counts and rate. Platform validations are counted apart from generation failures, and the
results a run summary counts beyond the rows (unlisted) count wherever they belong.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from batch_metrics.endpoint.answers import dashboard, flaky, metrics
from batch_metrics.endpoint.answers.dashboard import Window
from batch_metrics.endpoint.answers.shapes import DashboardSummary, RunFailures
from tests.live import Storage

pytest_plugins = ["tests.live"]

NOW = datetime(2026, 3, 12, 12, tzinfo=UTC)
SIX = ("crates.io", "github", "homebrew", "npm", "pypi", "rubygems")


def row(recipe: str, ecosystem: str, result: str, platform: str, **extra: Any) -> dict[str, Any]:
    return {"recipe_name": recipe, "ecosystem": ecosystem, "result": result, "platform": platform, **extra}


def batch(number: int, results: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    validations = [r for r in results if r.get("stage") != "generation"]
    unlisted = fields.get("unlisted", [])
    passed = sum(r["result"] == "passed" for r in validations) + sum(u.get("passed", 0) for u in unlisted)
    failed = sum(r["result"] == "failed" for r in validations) + sum(u.get("failed", 0) for u in unlisted)
    skipped = sum(r["result"] == "skipped" for r in validations)
    started = (NOW - timedelta(days=10 - number)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"batch_id": f"tsuku-{number}", "ecosystem": "mixed", "started_at": started,
            "total_recipes": passed + failed + skipped, "passed": passed, "failed": failed,
            "skipped": skipped, "success_rate": round(passed / max(passed + failed, 1), 4),
            "results": results, **fields}  # fmt: skip


def six_ecosystems() -> list[dict[str, Any]]:
    """One validated recipe per ecosystem (npm's fails on alpine), and one generation failure each."""
    results = []
    for eco in SIX:
        for platform in ("linux-debian-glibc-x86_64", "linux-alpine-musl-x86_64", "darwin-arm64"):
            failed = eco == "npm" and "alpine" in platform
            error = {"error_category": "generation_failed", "error_subcategory": "install_failed"}
            results.append(row(f"{eco}-tool", eco, "failed" if failed else "passed", platform,
                               duration_seconds=60.0, **(error if failed else {})))  # fmt: skip
        results.append(row(f"{eco}-lib", eco, "failed", "linux-glibc-x86_64", stage="generation",
                           error_category="install_failed", blocked_by=["openssl@3"]))  # fmt: skip
    return results


def test_a_batch_of_six_ecosystems_appears_under_each_with_its_own_counts(storage: Storage) -> None:
    run_id, _ = storage.insert_batch(batch(1, six_ecosystems()), None)  # type: ignore[arg-type]
    window = Window(days=30, now=NOW)
    status = {item["ecosystem"]: item for item in dashboard.ecosystems(storage, window)}
    assert set(status) == set(SIX)  # the label `mixed` is not an ecosystem of the data
    npm, pypi = status["npm"]["latest_run"], status["pypi"]["latest_run"]
    assert (npm["passed"], npm["failed"], npm["success_rate"], npm["generation_failed"]) == (2, 1, 0.6667, 1)
    assert (pypi["passed"], pypi["failed"], pypi["success_rate"], npm["id"]) == (3, 0, 1.0, run_id)
    assert (status["pypi"]["runs_since_green"], status["npm"]["runs_since_green"]) == (0, 1)
    daily = {item["ecosystem"]: item for item in dashboard.daily(storage, window)}
    assert set(daily) == set(SIX)
    assert (daily["npm"]["passed"], daily["npm"]["failed"], daily["npm"]["generation_failed"]) == (2, 1, 1)
    assert daily["npm"]["linux_minutes"] == 2.0 and daily["npm"]["macos_minutes"] == 1.0  # its own rows
    platforms = {(item["ecosystem"], item["platform"]) for item in dashboard.platforms(storage, window)}
    assert ("npm", "linux-alpine-musl-x86_64") in platforms
    assert not any(platform == "linux-glibc-x86_64" for _, platform in platforms)  # generation: no platform
    failing = {
        (item["ecosystem"], item["name"]): item["failures"]
        for item in dashboard.failing_recipes(storage, window, 20)
    }
    assert failing[("npm", "npm-tool")] == 1 and failing[("crates.io", "crates.io-lib")] == 1
    only_npm = Window(days=30, ecosystem="npm", now=NOW)
    assert {item["ecosystem"] for item in dashboard.daily(storage, only_npm)} == {"npm"}
    assert [item["ecosystem"] for item in dashboard.ecosystems(storage, only_npm)] == ["npm"]
    assert storage.get_run(run_id)["ecosystem"] == "mixed"  # type: ignore[index]  # the label kept


def test_metrics_have_a_line_per_ecosystem_and_no_rate_where_nothing_was_validated(storage: Storage) -> None:
    storage.insert_batch(batch(1, six_ecosystems()), None)  # type: ignore[arg-type]
    only_generation = [row("hub", "github", "failed", "linux-glibc-x86_64", stage="generation")]
    storage.insert_batch(batch(2, only_generation), None)  # type: ignore[arg-type]
    body, _ = metrics.exposition(storage, None, None)
    families = text_string_to_metric_families(body.decode())
    samples = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
               for family in families for sample in family.samples}  # fmt: skip
    rates = {labels[0][1] for name, labels in samples if name == "batch_metrics_last_batch_success_rate"}
    assert rates == set(SIX) - {"github"}  # github's latest batch validated nothing: no rate to alert
    assert samples["batch_metrics_last_batch_generation_failures", (("ecosystem", "github"),)] == 1
    assert samples["batch_metrics_last_batch_results", (("ecosystem", "npm"), ("result", "failed"))] == 1


def test_unlisted_results_count_where_they_belong_and_fold_fine_platforms_into_the_job(
    storage: Storage,
) -> None:
    """The committed history: failures named on fine platforms, the passes only counted per job."""
    results = [row("libgit2", "homebrew", "failed", p, error_category="generation_failed")
               for p in ("linux-rhel-glibc-x86_64", "linux-alpine-musl-x86_64", "darwin-arm64")]  # fmt: skip
    unlisted = [{"platform": "linux-x86_64", "ecosystem": "homebrew", "passed": 2, "failed": 0, "skipped": 0},
                {"platform": "linux-arm64", "passed": 4, "failed": 0, "skipped": 0}]  # fmt: skip
    summary = {"batch_id": "2026-02-22", "generated": 1, "ecosystems": {"homebrew": 10},
               "platforms": {"linux-x86_64": {"tested": 5, "passed": 2, "failed": 3}}}  # fmt: skip
    run_id, _ = storage.insert_batch(batch(1, results, unlisted=unlisted, run_summary=summary), None)  # type: ignore[arg-type]
    window = Window(days=30, now=NOW)
    platforms = {(item["ecosystem"], item["platform"]): (item["passed"], item["failed"])
                 for item in dashboard.platforms(storage, window)}  # fmt: skip
    assert platforms == {
        ("homebrew", "linux-x86_64"): (2, 2),  # rhel and alpine count under the job: 2 passed, 2 failed
        ("homebrew", "darwin-arm64"): (0, 1),  # no unlisted results on this job: the row as it is
        ("mixed", "linux-arm64"): (4, 0),  # the files do not say whose: the batch's label
    }
    status = {item["ecosystem"]: item["latest_run"] for item in dashboard.ecosystems(storage, window)}
    assert (status["homebrew"]["passed"], status["homebrew"]["failed"]) == (2, 3)
    assert (status["mixed"]["passed"], status["mixed"]["failed"]) == (4, 0)
    run = dashboard.run_failures(storage, run_id)
    assert run is not None
    RunFailures.model_validate(run)
    assert run["run_summary"] == summary
    assert [(item["platform"], item["ecosystem"], item["passed"]) for item in run["unlisted"]] == [
        ("linux-arm64", None, 4), ("linux-x86_64", "homebrew", 2)
    ]  # fmt: skip
    assert {item["ecosystem"]: item["success_rate"] for item in run["ecosystems"]} == {
        "homebrew": 0.4,
        "mixed": 1.0,
    }


def test_green_means_something_passed_and_nothing_failed(storage: Storage) -> None:
    plan = [
        [row("a", "npm", "passed", "linux")],  # green
        [row("a", "npm", "failed", "linux")],  # red
        [row("b", "npm", "failed", "linux-glibc-x86_64", stage="generation")],  # validated nothing: neither
        [row("a", "npm", "skipped", "linux")],  # neither
    ]
    for number, results in enumerate(plan, 1):
        storage.insert_batch(batch(number, results), None)  # type: ignore[arg-type]
    [npm] = dashboard.ecosystems(storage, Window(days=30, now=NOW))
    assert (npm["runs_since_green"], npm["last_green_at"]) == (1, batch(1, [])["started_at"])
    assert (npm["latest_run"]["generation_failed"], npm["latest_run"]["skipped"]) == (0, 1)


def test_a_batch_with_no_rows_counts_under_its_label_with_its_own_numbers(storage: Storage) -> None:
    storage.insert_batch({**batch(1, []), "ecosystem": "homebrew", "passed": 7, "failed": 1,
                          "macos_minutes": 3.0}, None)  # type: ignore[arg-type]  # fmt: skip
    [homebrew] = dashboard.ecosystems(storage, Window(days=30, now=NOW))
    assert (homebrew["ecosystem"], homebrew["latest_run"]["passed"], homebrew["latest_run"]["failed"]) == (
        "homebrew", 7, 1,
    )  # fmt: skip
    [day] = dashboard.daily(storage, Window(days=30, now=NOW))
    assert day["macos_minutes"] == 3.0


def test_a_runs_failures_show_stage_subcategory_and_blocked_by(storage: Storage) -> None:
    run_id, _ = storage.insert_batch(batch(1, six_ecosystems()), None)  # type: ignore[arg-type]
    run = dashboard.run_failures(storage, run_id)
    assert run is not None
    RunFailures.model_validate(run)
    failures = {(item["recipe_name"], item["stage"]): item for item in run["failures"]}
    assert failures["npm-tool", None]["error_subcategory"] == "install_failed"
    assert failures["npm-lib", "generation"]["blocked_by"] == ["openssl@3"]
    assert len(run["ecosystems"]) == 6 and run["unlisted"] == [] and run["run_summary"] is None
    stored = storage.get_run(run_id)
    assert stored is not None
    assert {r["stage"] for r in stored["results"]} == {None, "generation"}


def test_the_whole_summary_keeps_its_shape(storage: Storage) -> None:
    storage.insert_batch(batch(1, six_ecosystems()), None)  # type: ignore[arg-type]
    window = Window(days=30, now=NOW)
    DashboardSummary.model_validate({
        "days": 30, "ecosystem": None, "generated_at": "2026-03-12T12:00:00Z",
        "ecosystems": dashboard.ecosystems(storage, window), "daily": dashboard.daily(storage, window),
        "platforms": dashboard.platforms(storage, window), "platform_days": [],
        "failing_recipes": dashboard.failing_recipes(storage, window),
        "error_categories": dashboard.error_categories(storage, window),
        "flaky_recipes": flaky.across_runs(storage, window),
    })  # fmt: skip


def test_a_field_of_migration_7_on_the_last_row_only_is_stored(storage: Storage) -> None:
    """A batch whose rows carry none of them writes only the Worker's columns; one row is enough not to."""
    results = [row(f"r{n}", "npm", "passed", "linux") for n in range(50)]
    results.append(row("last", "npm", "failed", "linux", attempts=3, blocked_by=["x"], error_subcategory="s"))
    run_id, _ = storage.insert_batch(batch(1, results), None)  # type: ignore[arg-type]
    stored = storage.get_run(run_id)
    assert stored is not None
    last = stored["results"][-1]
    assert (last["attempts"], last["blocked_by"], last["error_subcategory"]) == (3, ["x"], "s")
    assert {(r["attempts"], r["blocked_by"], r["stage"]) for r in stored["results"][:-1]} == {
        (None, None, None)
    }
