"""What changed since the previous run reaches the workflow: the action's outputs (`new-failures`, `fixed`,
`changes-path`), the file they name and the job summary, from the project's own endpoint on loopback;
nothing when the endpoint does not say (tsuku's Worker), and never a secret or live markup."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from batch_metrics.client.upload import upload
from batch_metrics.endpoint.storage import open_storage
from tests.live import running
from tests.test_cli import TOKEN, Run, github_layout, run_entrypoint

HOSTILE = "<img src=x onerror=alert(1)>"


def results(github: Path, rows: list[tuple[str, str, str]]) -> None:
    """The workspace's validation results, replaced: (recipe, platform, status)."""
    records = [
        {"recipe": recipe, "platform": platform, "status": status, "exit_code": 0 if status == "pass" else 6}
        for recipe, platform, status in rows
    ]
    (github / "workspace/results/validation-results-all.json").write_text(json.dumps(records))


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[str]:
    storage = open_storage(str(tmp_path / "metrics.db"))
    storage.migrate()
    with running(storage, [TOKEN]) as url:
        yield url
    storage.close()


def job(github: Path, endpoint: str, **inputs: str) -> Run:
    """One run of the action's job; each its own batch (ids apart: two runs in one second read alike)."""
    batch_id = f"nightly-{secrets.token_hex(4)}"
    return run_entrypoint(
        github,
        {"endpoint": endpoint, "token": TOKEN, "ecosystem": "homebrew", "batch-id": batch_id, **inputs},
    )


def test_the_job_says_what_broke_and_what_was_fixed_since_the_previous_run(
    tmp_path: Path, endpoint: str
) -> None:
    github = github_layout(tmp_path)
    results(github, [("jq", "linux-debian-glibc-x86_64", "pass"), ("fd", "darwin-arm64", "fail"),
                     ("zstd", "linux-alpine-musl-arm64", "fail")])  # fmt: skip
    first = job(github, endpoint)
    assert first.outputs["status"] == "uploaded"
    assert (first.outputs["new-failures"], first.outputs["fixed"]) == ("0", "0")  # nothing to compare with
    assert "homebrew**: its first run, nothing to compare with" in first.summary

    secret_named = f"leak-{TOKEN}"
    results(github, [
        ("jq", "linux-debian-glibc-x86_64", "fail"), ("fd", "darwin-arm64", "pass"),
        ("zstd", "linux-alpine-musl-arm64", "fail"), (HOSTILE, "darwin-arm64", "fail"),
        (secret_named, "darwin-arm64", "fail"),
    ])  # fmt: skip
    second = job(github, endpoint)
    assert second.code == 0 and second.outputs["status"] == "uploaded"
    assert (second.outputs["new-failures"], second.outputs["fixed"]) == ("3", "1")
    assert second.outputs["changes-path"] == "batch-metrics-changes.json"
    written = json.loads((github / "workspace" / second.outputs["changes-path"]).read_text())
    assert written["batch_run_id"] == int(second.outputs["batch-run-id"])
    [homebrew] = written["changes"]
    assert homebrew["previous_run_id"] == int(first.outputs["batch-run-id"])
    assert [(entry["recipe_name"], entry["platform"]) for entry in homebrew["new_failures"]] == [
        (HOSTILE, "darwin-arm64"), ("jq", "linux-debian-glibc-x86_64"), (secret_named, "darwin-arm64"),
    ]  # fmt: skip
    assert [(entry["recipe_name"], entry["failed_runs"]) for entry in homebrew["fixed"]] == [("fd", 1)]
    assert [(entry["recipe_name"], entry["failed_runs"]) for entry in homebrew["still_failing"]] == [
        ("zstd", 2)
    ]
    # The job summary says it, with outside text inert and the secret masked.
    summary = second.summary
    assert "### Since the previous run" in summary
    assert "3 new failures, 1 fixed, 1 still failing, 2 new recipes, 0 gone recipes" in summary
    assert "| fd | darwin-arm64 | after 1 failed runs |" in summary
    assert "| zstd | linux-alpine-musl-arm64 | 2 runs |" in summary
    assert "&lt;img src=x onerror=alert&#40;1&#41;&gt;" in summary and "<img" not in summary
    assert TOKEN not in second.shown()

    # A later run's globs that reach the changes file leave it out: it is this job's own.
    third = job(github, endpoint, results="**/*.json")
    assert third.outputs["status"] == "uploaded"
    assert not [warning for warning in third.warnings if "batch-metrics-changes" in warning]
    assert "this run's changes file (batch-metrics-changes.json)" in third.stdout
    assert third.outputs["total"] == "5"  # the results file alone


def test_an_endpoint_that_does_not_say_leaves_the_outputs_empty(
    tmp_path: Path, httpserver_ipv4: HTTPServer
) -> None:
    github = github_layout(tmp_path)
    httpserver_ipv4.expect_request("/batch-metrics").respond_with_json(
        {"batch_run_id": 7}, status=201
    )  # the Worker
    run = job(github, httpserver_ipv4.url_for("/").rstrip("/"))
    assert run.outputs["status"] == "uploaded" and run.outputs["batch-run-id"] == "7"
    assert (run.outputs["new-failures"], run.outputs["fixed"], run.outputs["changes-path"]) == ("", "", "")
    assert "Since the previous run" not in run.summary
    assert not (github / "workspace/batch-metrics-changes.json").exists()


@pytest.mark.parametrize(
    "changes",
    [
        "not a list",
        [{"ecosystem": "homebrew"}],  # no counts, no lists
        [{"ecosystem": "x", "previous_run_id": 1, "counts": {"new_failures": "many"}}],
    ],
)
def test_changes_that_are_not_the_contracts_are_ignored(httpserver_ipv4: HTTPServer, changes: Any) -> None:
    httpserver_ipv4.expect_request("/batch-metrics").respond_with_json(
        {"batch_run_id": 3, "changes": changes}, status=201
    )
    result = upload(b'{"batch_id": "b"}', endpoint=httpserver_ipv4.url_for("/"), token=secrets.token_hex(8))
    assert (result.status, result.batch_run_id, result.changes) == ("uploaded", 3, None)
