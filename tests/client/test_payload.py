"""The payload builder: totals, rate, minutes, batch id, timestamps, ready payloads, the written file."""

from __future__ import annotations

import json
import os
import re
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from batch_metrics.client.collect import Collection, collect
from batch_metrics.client.disk import NotARegularFileError, write_bytes
from batch_metrics.client.payload import (
    build_payload,
    default_batch_id,
    payload_bytes,
    redact_messages,
)
from batch_metrics.client.redact import Redactor
from batch_metrics.models import PAYLOAD_ADAPTER, BatchPayload, RecipeResult, parse_rfc3339

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
GITHUB = {
    "GITHUB_REPOSITORY": "tsukumogami/tsuku",
    "GITHUB_RUN_ID": "123",
    "GITHUB_RUN_ATTEMPT": "2",
    "GITHUB_JOB": "validate",
}


def write_payload(payload: BatchPayload, path: Path) -> bytes:
    """The payload's bytes written as the job writes them (`write_bytes`), and returned."""
    body = payload_bytes(payload)
    write_bytes(body, path)
    return body


def row(
    result: str, platform: str | None = None, seconds: float | None = None, eco: str = "npm"
) -> RecipeResult:
    return RecipeResult(
        recipe_name="r", ecosystem=eco, result=result, duration_seconds=seconds, platform=platform
    )


def test_totals_rate_and_minutes_follow_the_rows() -> None:
    rows = [
        row("passed", "darwin-arm64", 120),
        row("passed", "linux-alpine-musl-arm64", 30),
        row("failed", "linux-debian-glibc-x86_64", 90),
        row("skipped", "windows-x86_64", 600),
        row("passed", "macos-14", 60),
        row("failed", "OSX-legacy", 6),
        row("passed", None, 1000),
    ]
    payload = build_payload(Collection(results=rows), batch_id="b", now=NOW)
    assert (payload["total_recipes"], payload["passed"], payload["failed"], payload["skipped"]) == (
        7,
        4,
        2,
        1,
    )
    assert payload["success_rate"] == 0.6667  # 4 / 6: skipped rows are left out of the rate
    assert payload["macos_minutes"] == 3.1  # (120 + 60 + 6) / 60
    assert payload["linux_minutes"] == 2.0  # windows and no platform count in neither
    assert payload["ecosystem"] == "npm"
    assert (payload["started_at"], payload["completed_at"]) == (
        "2026-11-28T12:00:00Z",
        "2026-11-28T12:00:00Z",
    )
    assert payload["results"] == rows


def test_nothing_ran_gives_a_zero_rate_and_mixed_ecosystems_say_so() -> None:
    payload = build_payload(
        Collection(results=[row("skipped"), row("skipped", eco="pypi")]), batch_id="b", now=NOW
    )
    assert (payload["success_rate"], payload["skipped"], payload["ecosystem"]) == (0.0, 2, "mixed")
    empty = build_payload(Collection(), batch_id="b", now=NOW)
    assert (empty["ecosystem"], empty["total_recipes"], empty["success_rate"], empty["results"]) == (
        "unknown",
        0,
        0.0,
        [],
    )
    assert (
        build_payload(Collection(results=[row("passed")]), ecosystem="cargo", batch_id="b")["ecosystem"]
        == "cargo"
    )


def test_started_at_from_the_earliest_timestamp_or_the_input() -> None:
    seen = Collection(results=[row("passed")], earliest=datetime(2026, 2, 19, 14, 31, 25, 900, tzinfo=UTC))
    assert build_payload(seen, batch_id="b", now=NOW)["started_at"] == "2026-02-19T14:31:25Z"
    given = build_payload(seen, batch_id="b", started_at="2026-03-01T10:00:00.5+01:00", now=NOW)
    assert given["started_at"] == "2026-03-01T09:00:00Z"
    for bad in ("last tuesday", "2026-03-01T10:00:00", "2026-03-08T01-58-35Z", "2026-03-01"):
        with pytest.raises(ValueError, match="is not an RFC 3339 timestamp with a zone"):
            build_payload(seen, batch_id="b", started_at=bad, now=NOW)


def test_started_at_from_the_fixtures(fixtures: Path) -> None:
    collection = collect("tsuku/failures/batch-*.jsonl", fixtures, ecosystem="homebrew")
    payload = build_payload(collection, batch_id="b", now=NOW)
    assert (payload["started_at"], payload["total_recipes"], payload["failed"], payload["success_rate"]) == (
        "2026-02-19T14:31:25Z",
        24,
        24,
        0.0,
    )
    assert payload["ecosystem"] == "homebrew"


def test_default_batch_id_is_unique_per_run_attempt_and_job() -> None:
    assert default_batch_id(GITHUB) == "tsukumogami/tsuku#123.2:validate"
    assert default_batch_id({**GITHUB, "GITHUB_RUN_ATTEMPT": "3"}) == "tsukumogami/tsuku#123.3:validate"
    assert default_batch_id({**GITHUB, "GITHUB_JOB": "other"}) == "tsukumogami/tsuku#123.2:other"
    assert default_batch_id({"GITHUB_RUN_ID": "9"}) == "github#9.1"


def test_default_batch_id_outside_github_is_local_and_unique() -> None:
    ids = {default_batch_id({}) for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"local-\d{8}T\d{6}Z-[0-9a-f]{8}", batch_id) for batch_id in ids)


def test_build_payload_takes_the_batch_id_from_env_or_argument() -> None:
    collection = Collection(results=[row("passed")])
    assert build_payload(collection, env=GITHUB)["batch_id"] == "tsukumogami/tsuku#123.2:validate"
    assert build_payload(collection, env=GITHUB, batch_id="mine")["batch_id"] == "mine"
    assert build_payload(collection)["batch_id"].startswith(
        "local-"
    )  # no env given: not read from os.environ


READY = {
    "batch_id": "2026-02-03-homebrew",
    "ecosystem": "homebrew",
    "started_at": "2026-02-03T04:58:07Z",
    "completed_at": "2026-02-03T05:10:00Z",
    "total_recipes": 1,
    "passed": 1,
    "success_rate": 1,
    "linux_minutes": 4.5,
    "macos_minutes": 0,
    "failed": 0,
    "skipped": 0,
    "results": [{"recipe_name": "fd", "ecosystem": "homebrew", "result": "passed"}],
}


def test_a_lone_complete_ready_payload_is_used_as_is(tmp_path: Path) -> None:
    (tmp_path / "payload.json").write_text(json.dumps(READY))
    payload = build_payload(collect("*.json", tmp_path), now=NOW, env=GITHUB)
    assert payload == PAYLOAD_ADAPTER.validate_python(READY)


def test_a_lone_ready_payload_gets_what_it_lacks(tmp_path: Path) -> None:
    lacking = {key: READY[key] for key in ("batch_id", "ecosystem", "started_at")}
    lacking["results"] = [
        {
            "recipe_name": "fd",
            "ecosystem": "homebrew",
            "result": "failed",
            "platform": "darwin-arm64",
            "duration_seconds": 90,
        }
    ]
    (tmp_path / "payload.json").write_text(json.dumps(lacking))
    payload = build_payload(collect("*.json", tmp_path), now=NOW)
    assert (payload["batch_id"], payload["started_at"], payload["completed_at"]) == (
        "2026-02-03-homebrew",
        "2026-02-03T04:58:07Z",
        "2026-11-28T12:00:00Z",
    )
    assert (
        payload["total_recipes"],
        payload["failed"],
        payload["success_rate"],
        payload["macos_minutes"],
    ) == (
        1,
        1,
        0.0,
        1.5,
    )
    explicit = build_payload(collect("*.json", tmp_path), batch_id="again", started_at="2026-02-03T00:00:00Z")
    assert (explicit["batch_id"], explicit["started_at"], explicit["ecosystem"]) == (
        "again",
        "2026-02-03T00:00:00Z",
        "homebrew",
    )


def test_ready_payloads_mixed_with_other_rows_are_merged(tmp_path: Path) -> None:
    (tmp_path / "payload.json").write_text(json.dumps(READY))
    (tmp_path / "more.json").write_text(json.dumps([{"recipe": "r", "platform": "linux", "status": "fail"}]))
    payload = build_payload(collect("*.json", tmp_path, ecosystem="homebrew"), batch_id="merged", now=NOW)
    assert (payload["batch_id"], payload["total_recipes"], payload["passed"], payload["failed"]) == (
        "merged",
        2,
        1,
        1,
    )
    assert [r["recipe_name"] for r in payload["results"]] == ["fd", "r"]
    assert payload["linux_minutes"] == 0.0  # counted from rows, not copied from the ready payload
    assert payload["started_at"] == "2026-02-03T04:58:07Z"  # the ready payload's start is the earliest seen


def test_payload_bytes_are_compact_without_nulls() -> None:
    payload = build_payload(
        Collection(results=[row("passed"), row("failed", "linux-x", 1.5)]), batch_id="b", now=NOW
    )
    body = payload_bytes(payload)
    assert b": " not in body and b", " not in body and b"\n" not in body
    assert b"null" not in body and b"error_message" not in body
    assert payload_bytes(PAYLOAD_ADAPTER.validate_json(body)) == body  # a missing key reads as null


def test_write_payload_is_atomic_and_round_trips(tmp_path: Path) -> None:
    payload = build_payload(Collection(results=[row("failed", "linux-x", 1.5)]), batch_id="b", now=NOW)
    target = tmp_path / "deep" / "dir" / "payload.json"
    body = write_payload(payload, target)
    assert target.read_bytes() == body == payload_bytes(payload)
    assert payload_bytes(PAYLOAD_ADAPTER.validate_json(target.read_bytes())) == body
    assert os.listdir(target.parent) == ["payload.json"]  # no temporary file left behind
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # readable by later steps running as another user

    second = build_payload(Collection(results=[row("passed")]), batch_id="c", now=NOW)
    write_payload(second, target)
    assert PAYLOAD_ADAPTER.validate_json(target.read_bytes())["batch_id"] == "c"
    assert os.listdir(target.parent) == ["payload.json"]


def test_write_payload_failure_leaves_no_partial_file(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file where a directory should be")
    payload = build_payload(Collection(results=[row("passed")]), batch_id="b", now=NOW)
    with pytest.raises(OSError):
        write_payload(payload, tmp_path / "taken" / "payload.json")
    target = tmp_path / "payload.json"
    target.mkdir()  # the rename itself fails: the temporary file must go
    with pytest.raises(OSError):
        write_payload(payload, target)
    assert sorted(os.listdir(tmp_path)) == ["payload.json", "taken"]
    assert os.listdir(target) == []


def test_fixtures_end_to_end(fixtures: Path, tmp_path: Path) -> None:
    collection = collect("tsuku/failures/*.jsonl\njunit/*.xml", fixtures)
    payload = build_payload(collection, batch_id="e2e", now=NOW)
    # the 50 failure-record rows are the generation stage: stored, but not platform validations
    assert len(payload["results"]) == 24 + 50 + 155  # 155 JUnit results: surefire-flaky.xml has 4
    assert payload["total_recipes"] == 24 + 155
    assert payload["total_recipes"] == payload["passed"] + payload["failed"] + payload["skipped"]
    assert payload["success_rate"] == round(payload["passed"] / (payload["passed"] + payload["failed"]), 4)
    assert payload["ecosystem"] == "mixed"
    assert payload["started_at"] == "2020-08-31T09:23:36Z"  # the oldest JUnit suite
    body = write_payload(payload, tmp_path / "payload.json")
    assert payload_bytes(PAYLOAD_ADAPTER.validate_json(body)) == body  # a missing key reads as null


def test_only_a_regular_file_is_replaced(tmp_path: Path) -> None:
    fifo, directory = tmp_path / "fifo", tmp_path / "dir"
    os.mkfifo(fifo)
    directory.mkdir()
    for target in (fifo, directory):
        with pytest.raises(NotARegularFileError, match="exists and is not a regular file"):
            write_bytes(b"{}", target)
    assert stat.S_ISFIFO(fifo.stat().st_mode) and directory.is_dir()
    assert sorted(os.listdir(tmp_path)) == ["dir", "fifo"]  # no temporary file either

    link = tmp_path / "link"
    link.symlink_to(tmp_path / "regular")
    (tmp_path / "regular").write_bytes(b"old")
    write_bytes(b"new", link)  # a link to a regular file is replaced by the file, as before
    assert link.read_bytes() == b"new" and not link.is_symlink()


@pytest.mark.parametrize(
    "text", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-23:59", "2026-13-01T00:00:00Z"]
)
def test_started_at_out_of_range_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="in years 1 to 9999 UTC"):
        parse_rfc3339(text)
    with pytest.raises(ValueError):
        build_payload(Collection(results=[row("passed")]), started_at=text, now=NOW)


def test_error_messages_are_redacted_in_place() -> None:
    redact = Redactor()
    redact.add("s3cret")
    rows = [
        RecipeResult(recipe_name="a", ecosystem="npm", result="failed", error_message="got s3cret back"),
        RecipeResult(recipe_name="b", ecosystem="npm", result="failed", error_message="Bearer abc rejected"),
        RecipeResult(recipe_name="c", ecosystem="npm", result="passed"),
    ]
    redact_messages(rows, redact)
    assert [row.get("error_message") for row in rows] == ["got *** back", "Bearer *** rejected", None]
