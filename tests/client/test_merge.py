"""One row per recipe and platform, however many files describe it; then each row's ecosystem.

Every case writes real files in tsuku's shapes (validation results, failure lines, sandbox
results, failure records) and reads them with `collect`, then builds the payload as `run` does.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from batch_metrics.client.collect import collect
from batch_metrics.client.merge import MAX_DISAGREEMENTS, merge_rows
from batch_metrics.client.payload import build_payload

NOW = datetime(2026, 3, 11, 22, tzinfo=UTC)
X86 = "linux-alpine-musl-x86_64"


def validation(path: Path, *rows: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([{"exit_code": 0, "attempts": 1, "blocked_by": [], **row} for row in rows]))


def lines(path: Path, *rows: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"schema_version": 1, **row}) + "\n" for row in rows))


def sandbox(path: Path, **fields: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    value = {"tool": "x", "passed": True, "verified": True, "install_exit_code": 0, "verify_exit_code": 0,
             "duration_ms": 90_000, "error": None, **fields}  # fmt: skip
    path.write_text(json.dumps(value))


def build(workspace: Path, patterns: str = "**/*.json\n**/*.jsonl\n**/.result-*.json", **options: Any) -> Any:
    collection = collect(patterns, workspace, ecosystem=options.get("ecosystem"))
    payload = build_payload(collection, batch_id="b", now=NOW, **options)
    return payload, collection.warnings


def test_each_source_gives_what_it_knows_and_nothing_is_counted_twice(tmp_path: Path) -> None:
    """The merge job's three files about one failure: the artifact, the committed line, the sandbox log."""
    validation(tmp_path / "validation-results-linux-x86_64.json",
               {"recipe": "fastlane", "platform": X86, "status": "fail", "exit_code": 6, "attempts": 2},
               {"recipe": "fastlane", "platform": "linux-debian-glibc-x86_64", "status": "pass"})  # fmt: skip
    lines(tmp_path / "data/failures/batch-2026-03-11T21-36-05Z.jsonl",
          {"recipe": "fastlane", "platform": X86, "exit_code": 6, "category": "deterministic"})  # fmt: skip
    sandbox(tmp_path / "sandbox-results/linux-x86_64/.result-fastlane-alpine.json", passed=False,
            install_exit_code=6, error="installation failed with exit code 6", duration_ms=42_000,
            install_output="gem install fastlane\nERROR: musl is not supported")  # fmt: skip
    sandbox(tmp_path / "sandbox-results/linux-x86_64/.result-fastlane-debian.json", duration_ms=30_000)
    payload, warnings = build(tmp_path)
    assert warnings == []
    assert (payload["total_recipes"], payload["passed"], payload["failed"]) == (2, 1, 1)
    assert payload["linux_minutes"] == round((42 + 30) / 60, 4)  # the sandbox's durations
    failed = next(row for row in payload["results"] if row["result"] == "failed")
    assert failed["error_category"] == "generation_failed"  # from the line, tsuku's canonical name
    assert failed["error_subcategory"] == "install_failed"
    assert failed["error_message"].endswith("ERROR: musl is not supported")  # the build log
    assert (failed["attempts"], failed["duration_seconds"]) == (2, 42.0)
    passed = next(row for row in payload["results"] if row["result"] == "passed")
    assert "error_category" not in passed and passed["duration_seconds"] == 30.0


def test_the_same_file_matched_twice_or_copied_is_one_result(tmp_path: Path) -> None:
    row = {"recipe": "gh", "platform": X86, "status": "pass"}
    validation(tmp_path / "a/validation-results-linux-x86_64.json", row)
    validation(tmp_path / "b/validation-results-linux-x86_64.json", row)
    payload, warnings = build(tmp_path, "a/*.json\n**/validation-results-*.json")
    assert warnings == [] and (payload["total_recipes"], len(payload["results"])) == (1, 1)


def test_a_disagreement_is_a_warning_naming_both_files_and_the_rule_settles_it(tmp_path: Path) -> None:
    validation(
        tmp_path / "validation-results-linux-x86_64.json", {"recipe": "gh", "platform": X86, "status": "pass"}
    )
    lines(tmp_path / "failures.jsonl", {"recipe": "gh", "platform": X86, "exit_code": 6})
    payload, warnings = build(tmp_path)
    assert (payload["passed"], payload["failed"]) == (1, 0)  # a validation result outranks a failure line
    [warning] = warnings
    assert warning.path == "validation-results-linux-x86_64.json"
    assert "gh on linux-alpine-musl-x86_64: passed here, failed in failures.jsonl" in warning.message
    assert "error_category" not in payload["results"][0]  # a passed row keeps no error fields


def test_between_equals_a_failure_seen_anywhere_is_a_failure(tmp_path: Path) -> None:
    validation(tmp_path / "generation/validation-results-linux-debian-glibc-x86_64.json",
               {"recipe": "gh", "platform": "linux-debian-glibc-x86_64", "status": "pass"})  # fmt: skip
    validation(tmp_path / "validation-results-linux-x86_64.json",
               {"recipe": "gh", "platform": "linux-debian-glibc-x86_64", "status": "fail", "exit_code": 8,
                "blocked_by": ["openssl"]})  # fmt: skip
    payload, warnings = build(tmp_path)
    assert (payload["passed"], payload["failed"], payload["results"][0]["blocked_by"]) == (0, 1, ["openssl"])
    assert len(warnings) == 1 and "failed here, passed in generation/" in warnings[0].message


def test_rows_without_a_platform_are_never_merged(tmp_path: Path) -> None:
    suite = '<testsuite name="s"><testcase classname="t" name="a"/></testsuite>'
    (tmp_path / "one.xml").write_text(suite)
    (tmp_path / "two.xml").write_text(suite)  # a second matrix leg, same test names
    payload, _ = build(tmp_path, "*.xml")
    assert payload["total_recipes"] == 2


def test_files_that_name_different_ecosystems_describe_different_results(tmp_path: Path) -> None:
    validation(
        tmp_path / "npm.json", {"recipe": "yaml", "platform": X86, "status": "pass", "ecosystem": "npm"}
    )
    validation(
        tmp_path / "pypi.json", {"recipe": "yaml", "platform": X86, "status": "fail", "ecosystem": "pypi"}
    )
    payload, warnings = build(tmp_path)
    assert warnings == [] and payload["total_recipes"] == 2
    assert {(row["ecosystem"], row["result"]) for row in payload["results"]} == {
        ("npm", "passed"),
        ("pypi", "failed"),
    }


def test_ecosystems_come_from_the_same_recipe_then_the_summary_then_the_map_then_the_input(
    tmp_path: Path,
) -> None:
    validation(tmp_path / "validation-results-linux-x86_64.json",
               {"recipe": "azion", "platform": X86, "status": "fail", "exit_code": 6},
               {"recipe": "fastlane", "platform": X86, "status": "pass"},
               {"recipe": "mystery", "platform": X86, "status": "pass"})  # fmt: skip
    failure = {"package_id": "npm:azion", "category": "validation_failed", "message": "boom"}
    record = {"ecosystem": "npm", "environment": "linux-glibc-x86_64", "updated_at": "2026-03-11T20-35-53Z"}
    lines(tmp_path / "npm-2026.jsonl", {**record, "failures": [failure]})
    payload, _ = build(
        tmp_path, ecosystem_map={"fastlane": "rubygems", "azion": "homebrew"}, ecosystem="tsuku"
    )
    by_recipe = {(row["recipe_name"], row.get("stage")): row["ecosystem"] for row in payload["results"]}
    assert by_recipe == {
        ("azion", None): "npm",  # another source of the same recipe names it, before the map
        ("azion", "generation"): "npm",
        ("fastlane", None): "rubygems",  # the user's map
        ("mystery", None): "tsuku",  # the input
    }
    assert payload["ecosystem"] == "tsuku"  # the batch keeps the label the user set


def test_the_category_map_renames_after_tsukus_names(tmp_path: Path) -> None:
    lines(tmp_path / "f.jsonl", {"recipe": "a", "platform": X86, "exit_code": 6, "category": "deterministic"},
          {"recipe": "b", "platform": X86, "exit_code": 5, "category": "build"})  # fmt: skip
    payload, _ = build(tmp_path, category_map={"generation_failed": "recipe", "build": "compile"})
    assert sorted(row["error_category"] for row in payload["results"]) == ["compile", "recipe"]


def test_disagreements_past_the_limit_are_counted_not_listed(tmp_path: Path) -> None:
    many = MAX_DISAGREEMENTS + 5
    validation(
        tmp_path / "v.json", *({"recipe": f"r{n}", "platform": X86, "status": "pass"} for n in range(many))
    )
    lines(tmp_path / "f.jsonl", *({"recipe": f"r{n}", "platform": X86, "exit_code": 6} for n in range(many)))
    merged = merge_rows(collect("*", tmp_path))
    assert len(merged.warnings) == MAX_DISAGREEMENTS + 1 and merged.merged == many
    assert merged.warnings[-1].message == "5 more disagreements"


@pytest.mark.parametrize("copies", [1, 3])
def test_merging_keeps_the_order_rows_were_read_in(tmp_path: Path, copies: int) -> None:
    rows = [{"recipe": f"r{n}", "platform": X86, "status": "pass"} for n in range(5)]
    for copy in range(copies):
        validation(tmp_path / f"{copy}.json", *rows)
    payload, _ = build(tmp_path)
    assert [row["recipe_name"] for row in payload["results"]] == [f"r{n}" for n in range(5)]
