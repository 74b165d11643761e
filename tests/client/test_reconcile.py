"""The rows beside tsuku's run summary: what it adds that no row names, and where the two disagree.

The batches are the committed ones (tests/fixtures/tsuku/batches/), read as a workspace.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from batch_metrics.client.collect import collect
from batch_metrics.client.payload import build_payload
from batch_metrics.client.summary import render_summary
from tests.tsuku import BATCHES, run_summary

ALL = "data/**/*.jsonl"


def build(workspace: Path, patterns: str = ALL, **options: Any) -> tuple[Any, list[str]]:
    collection = collect(patterns, workspace)
    payload = build_payload(collection, batch_id="b", **options)
    return payload, [str(warning) for warning in collection.warnings if "empty file" not in warning.message]


@pytest.mark.parametrize("batch", sorted(BATCHES.iterdir()), ids=lambda path: path.name)
def test_each_committed_batch_counts_exactly_its_run_summary(batch: Path) -> None:
    payload, warnings = build(batch)
    summary = run_summary(batch)
    assert warnings == []
    for key in ("passed", "failed"):
        assert payload[key] == sum(counts[key] for counts in summary["platforms"].values())
    assert payload["run_summary"]["generated"] == summary["generated"]
    assert payload["completed_at"] == summary["timestamp"]


@pytest.mark.parametrize(
    ("batch", "ecosystems"),
    [
        ("2026-02-22T22-42-09Z", {"homebrew"}),  # the summary names one ecosystem
        ("2026-02-19T08-54-37Z", {"unknown"}),  # every validated recipe is named, none by ecosystem
        ("2026-03-02T14-05-09Z", {None}),  # two ecosystems, no row: nobody's (the batch's label)
    ],
)
def test_unlisted_results_carry_an_ecosystem_only_when_the_files_say_which(
    batch: str, ecosystems: set[str | None]
) -> None:
    payload, _ = build(BATCHES / batch)
    assert {entry.get("ecosystem") for entry in payload["unlisted"]} == ecosystems
    assert all(entry["failed"] == 0 for entry in payload["unlisted"])  # the lines name every failure


def test_a_map_names_the_ecosystem_of_every_validated_recipe_and_so_of_the_unlisted() -> None:
    names = ("agent-browser", "aws-cdk", "azurite", "bash-language-server")
    payload, _ = build(BATCHES / "2026-02-19T08-54-37Z", ecosystem_map=dict.fromkeys(names, "npm"))
    assert {entry.get("ecosystem") for entry in payload["unlisted"]} == {"npm"}
    assert payload["ecosystem"] == "mixed"  # crates.io, npm and rubygems rows


def _with_artifact(tmp_path: Path, passes: list[str]) -> Path:
    """The 2026-02-22 batch (libgit2) with a validation-results file holding `passes`."""
    shutil.copytree(BATCHES / "2026-02-22T22-42-09Z" / "data", tmp_path / "data")
    rows = [
        {"recipe": "libgit2", "platform": platform, "status": "pass", "exit_code": 0} for platform in passes
    ]
    (tmp_path / "validation-results-linux.json").write_text(json.dumps(rows))
    return tmp_path


def test_rows_with_passes_are_the_record_and_agree_with_the_summary(tmp_path: Path) -> None:
    passes = ["linux-debian-glibc-x86_64", "linux-arch-glibc-x86_64", "linux-debian-glibc-arm64"]
    payload, warnings = build(_with_artifact(tmp_path, passes), f"{ALL}\n*.json")
    assert warnings == []
    assert (payload["passed"], payload["failed"], payload.get("unlisted")) == (3, 8, None)


def test_rows_that_differ_from_the_summary_are_a_warning_naming_it_and_the_platform(tmp_path: Path) -> None:
    passes = ["linux-debian-glibc-x86_64", "linux-arch-glibc-x86_64", "linux-suse-glibc-arm64"]
    payload, warnings = build(_with_artifact(tmp_path, passes), f"{ALL}\n*.json")
    assert (payload["passed"], payload["failed"]) == (3, 7)  # the rows are counted
    summary = "data/metrics/batch-runs-2026-02-22T22-42-09Z.jsonl:1"
    assert [w for w in warnings if w.startswith(summary)] == [
        f"{summary}: the run summary counts 1 passed, 3 failed, 0 skipped on linux-arm64, the rows 1 passed, "
        "2 failed, 0 skipped; the rows are counted (docs/tsuku.md)"
    ]
    # The artifact's pass and the committed failure line disagree about suse on arm64: named too.
    assert any("linux-suse-glibc-arm64: passed here, failed in data/failures/" in w for w in warnings)


def test_rows_counting_more_failures_than_the_summary_are_kept_with_a_warning(tmp_path: Path) -> None:
    shutil.copytree(BATCHES / "2026-02-22T22-42-09Z" / "data", tmp_path / "data")
    extra = {"schema_version": 1, "recipe": "other", "platform": "darwin-arm64", "exit_code": 6}
    (tmp_path / "data" / "failures" / "more.jsonl").write_text(json.dumps(extra) + "\n")
    payload, warnings = build(tmp_path)
    assert payload["failed"] == 8 + 1  # nothing is taken off the rows
    assert any(
        "on darwin-arm64, the rows 0 passed, 2 failed" in w and "none taken off" in w for w in warnings
    )


def test_several_summaries_are_a_warning_and_none_is_used(tmp_path: Path) -> None:
    for name in ("2026-02-22T22-42-09Z", "2026-03-11T21-36-10Z"):
        shutil.copytree(BATCHES / name / "data", tmp_path / "data", dirs_exist_ok=True)
    payload, warnings = build(tmp_path)
    assert "run_summary" not in payload and "unlisted" not in payload
    assert any(
        w.startswith("data/metrics/batch-runs-2026-02-22T22-42-09Z.jsonl: 2 run summaries") for w in warnings
    )


def test_the_job_summary_counts_validations_and_generation_failures_apart() -> None:
    payload, _ = build(BATCHES / "2026-02-22T22-42-09Z")
    text = render_summary(payload, status="dry-run", detail="not sent", warnings=[])
    assert "Generation failures (not platform validations): 9" in text
    assert "| homebrew | linux-x86&#95;64 | 2 | 0 | 0 |" in text  # the unlisted passes of the job
    assert "| homebrew | linux-rhel-glibc-x86&#95;64 | 0 | 1 | 0 |" in text
    by_platform = text.split("### By ecosystem and platform")[1].split("###")[0]
    assert "| linux-glibc-x86&#95;64 |" not in by_platform  # the generation environment is no platform
