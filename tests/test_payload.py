"""The payload builder: totals, rate, runner minutes, batch id, timestamps, the written file."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from batch_metrics.collectors import Collection, collect
from batch_metrics.models import BatchPayload, RecipeResult
from batch_metrics.payload import build_payload, default_batch_id, write_payload

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


def row(result: str, platform: str | None = None, seconds: float | None = None, eco: str = "npm") -> RecipeResult:
    return RecipeResult(recipe_name="r", ecosystem=eco, result=result, platform=platform, duration_seconds=seconds)


def test_totals_rate_and_minutes_follow_the_rows() -> None:
    rows = [
        row("passed", "darwin-arm64", 120),
        row("passed", "linux-alpine-musl-arm64", 30),
        row("failed", "linux-debian-glibc-x86_64", 90),
        row("skipped", "windows-x86_64", 600),
        row("passed", "macos-14", 60),
    ]
    payload = build_payload(Collection(results=rows), batch_id="b", now=NOW)
    assert (payload.total_recipes, payload.passed, payload.failed, payload.skipped) == (5, 3, 1, 1)
    assert payload.success_rate == 0.75  # skipped rows are left out of the rate
    assert (payload.macos_minutes, payload.linux_minutes) == (3.0, 2.0)  # windows counts in neither
    assert payload.ecosystem == "npm"
    assert payload.completed_at == "2026-11-28T12:00:00Z"
    assert payload.started_at == "2026-11-28T12:00:00Z"  # nothing earlier was seen


def test_nothing_ran_gives_a_zero_rate_and_mixed_ecosystems_say_so() -> None:
    payload = build_payload(Collection(results=[row("skipped"), row("skipped", eco="pypi")]), batch_id="b", now=NOW)
    assert payload.success_rate == 0.0
    assert payload.ecosystem == "mixed"
    assert build_payload(Collection(), batch_id="b", now=NOW).ecosystem == "unknown"


def test_started_at_from_the_earliest_timestamp_or_the_input() -> None:
    seen = Collection(results=[row("passed")], earliest=datetime(2026, 2, 19, 14, 31, 25, tzinfo=UTC))
    assert build_payload(seen, batch_id="b", now=NOW).started_at == "2026-02-19T14:31:25Z"
    given = build_payload(seen, batch_id="b", started_at="2026-03-01T10:00:00+01:00", now=NOW)
    assert given.started_at == "2026-03-01T09:00:00Z"
    with pytest.raises(ValueError, match="not an RFC 3339 timestamp"):
        build_payload(seen, batch_id="b", started_at="last tuesday", now=NOW)


def test_default_batch_id_is_unique_per_run_attempt_and_job() -> None:
    env = {"GITHUB_REPOSITORY": "tsukumogami/tsuku", "GITHUB_RUN_ID": "123", "GITHUB_RUN_ATTEMPT": "2",
           "GITHUB_JOB": "validate"}  # fmt: skip
    assert default_batch_id(env) == "tsukumogami/tsuku#123.2:validate"
    assert default_batch_id({**env, "GITHUB_RUN_ATTEMPT": "3"}) != default_batch_id(env)
    local = {default_batch_id({}) for _ in range(50)}
    assert len(local) == 50 and all(item.startswith("local-") for item in local)


def test_a_lone_ready_payload_is_used_as_is(tmp_path: Path) -> None:
    ready = {"batch_id": "2026-02-03-homebrew", "ecosystem": "homebrew", "started_at": "2026-02-03T04:58:07Z",
             "total_recipes": 7, "passed": 7, "success_rate": 1, "linux_minutes": 4.5,
             "results": [{"recipe_name": "fd", "ecosystem": "homebrew", "result": "passed"}]}  # fmt: skip
    (tmp_path / "payload.json").write_text(json.dumps(ready))
    payload = build_payload(collect("*.json", tmp_path), now=NOW)
    assert payload.model_dump(exclude_none=True) == BatchPayload.model_validate(ready).model_dump(exclude_none=True)


def test_ready_payloads_mixed_with_other_rows_are_merged(tmp_path: Path) -> None:
    ready = {"batch_id": "x", "ecosystem": "npm", "started_at": "2026-02-03T04:58:07Z",
             "results": [{"recipe_name": "q", "ecosystem": "npm", "result": "failed"}]}  # fmt: skip
    (tmp_path / "payload.json").write_text(json.dumps(ready))
    (tmp_path / "more.json").write_text(json.dumps([{"recipe": "r", "platform": "linux", "status": "pass"}]))
    payload = build_payload(collect("*.json", tmp_path, ecosystem="npm"), batch_id="merged", now=NOW)
    assert (payload.batch_id, payload.total_recipes, payload.passed, payload.failed) == ("merged", 2, 1, 1)
    assert payload.started_at == "2026-02-03T04:58:07Z"


def test_write_payload_is_atomic_and_round_trips(tmp_path: Path) -> None:
    payload = build_payload(Collection(results=[row("failed", "linux-x", 1.5)]), batch_id="b", now=NOW)
    target = tmp_path / "deep" / "dir" / "payload.json"
    body = write_payload(payload, target)
    assert target.read_bytes() == body
    assert BatchPayload.model_validate_json(body) == payload
    assert os.listdir(target.parent) == ["payload.json"]  # no temp file left behind
    assert b"error_message" not in body  # nulls are left out of the wire body


def test_write_payload_failure_leaves_no_partial_file(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file where a directory should be")
    payload = build_payload(Collection(results=[row("passed")]), batch_id="b", now=NOW)
    with pytest.raises(OSError):
        write_payload(payload, tmp_path / "taken" / "payload.json")
    assert sorted(os.listdir(tmp_path)) == ["taken"]
