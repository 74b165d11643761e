"""Collectors on the real-world fixtures, plus globbing, detection and every kind of bad input."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from batch_metrics.collectors import bound_message, collect, normalise_result, parse_timestamp


def copy_fixture(shared: Path, relative: str, workspace: Path, name: str | None = None) -> Path:
    target = workspace / (name or Path(relative).name)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shared / relative, target)
    return target


def test_per_record_ndjson_from_tsuku(shared_fixtures: Path) -> None:
    got = collect("tsuku/failures/batch-*.jsonl", shared_fixtures, ecosystem="npm")
    assert got.warnings == []
    assert len(got.results) == 24  # 14 + 10 lines
    first = got.results[0]
    assert (first.recipe_name, first.platform, first.result) == ("bpmnlint", "linux-alpine-musl-x86_64", "failed")
    assert first.error_category == "deterministic"
    assert first.ecosystem == "npm"
    assert {row.error_category for row in got.results} == {"deterministic", "generation_failed"}
    assert got.earliest == datetime(2026, 2, 19, 14, 31, 25, tzinfo=UTC)


def test_failure_records_take_ecosystem_and_platform_from_the_record(shared_fixtures: Path) -> None:
    got = collect("tsuku/failures/homebrew-*.jsonl\ntsuku/failures/crates.io-*.jsonl", shared_fixtures)
    assert got.warnings == []
    assert len(got.results) == 46  # 44 + 1 + 1 failures
    assert Counter(row.ecosystem for row in got.results) == {"homebrew": 45, "crates.io": 1}
    assert {row.platform for row in got.results} == {"linux-glibc-x86_64"}
    assert all(row.result == "failed" for row in got.results)
    afl = next(row for row in got.results if row.recipe_name == "afl++")
    assert afl.error_category == "recipe_not_found"
    assert afl.error_message is not None and "not found in homebrew" in afl.error_message
    # updated_at is not RFC 3339 (2026-02-21T07-22-39Z); the failures' own timestamps are earlier still
    assert got.earliest is not None and got.earliest.date().isoformat() == "2026-02-21"


@pytest.mark.parametrize(
    ("name", "total", "failed", "skipped"),
    [
        ("bazel-suite-logs.xml", 1, 1, 0),
        ("empty-system-out-err.xml", 1, 0, 0),
        ("jest-jest-junit.xml", 2, 0, 0),
        ("junit.multiresult.xml", 4, 2, 1),
        ("minimal-attributes.xml", 4, 2, 1),
        ("no-cases.xml", 0, 0, 0),
        ("pytest-junit.fail.xml", 5, 1, 1),
        ("pytest-junit.mpi.standalone.xml", 97, 0, 1),
        ("tst-disabled.xml", 31, 20, 5),
        ("with-xml-entities.xml", 4, 2, 2),
        ("xunit-xunit.xml", 2, 0, 0),
    ],
)
def test_junit_from_many_runners(shared_fixtures: Path, name: str, total: int, failed: int, skipped: int) -> None:
    got = collect(f"junit/{name}", shared_fixtures, ecosystem="pypi")
    assert got.warnings == []
    counts = Counter(row.result for row in got.results)
    assert (len(got.results), counts["failed"], counts["skipped"]) == (total, failed, skipped)
    assert all(row.ecosystem == "pypi" for row in got.results)


def test_junit_keeps_entities_names_and_messages(shared_fixtures: Path) -> None:
    got = collect("junit/with-xml-entities.xml", shared_fixtures)
    names = [row.recipe_name for row in got.results]
    assert 'Test with "quotes" in the test name' in names
    assert "Test with & in the test name" in names
    failure = next(row for row in got.results if row.result == "failed" and "apostrophe" in row.recipe_name)
    assert failure.error_message == "A message with 'apostrophes'\nContent with 'apostrophes'"


def test_junit_multiresult_error_wins_and_durations_are_kept(shared_fixtures: Path) -> None:
    got = collect("junit/junit.multiresult.xml", shared_fixtures)
    by_name = {row.recipe_name: row for row in got.results}
    errored = by_name["test class.test that errors"]
    assert (errored.result, errored.error_category, errored.duration_seconds) == ("failed", "error", 0.123)
    assert by_name["test class.test that succeeds"].result == "passed"


def test_run_summaries_are_a_warning_not_a_guess(shared_fixtures: Path) -> None:
    got = collect("tsuku/metrics/batch-runs.jsonl\ntsuku/queues/batch-results.json", shared_fixtures)
    assert got.results == []
    assert [(w.path, w.line) for w in got.warnings] == [
        ("tsuku/metrics/batch-runs.jsonl", 1),
        ("tsuku/queues/batch-results.json", 1),
    ]
    assert "not a shape batch-metrics knows" in got.warnings[0].message


def test_validation_results_arrays(tmp_path: Path) -> None:
    rows = [
        {"recipe": "fd", "platform": "darwin-arm64", "status": "pass", "exit_code": 0, "attempts": 1},
        {"recipe": "gh", "platform": "linux-alpine-musl-arm64", "status": "fail", "exit_code": 6, "attempts": 3,
         "blocked_by": ["go", "git"]},
        {"recipe": "bat", "platform": "linux-debian-glibc-x86_64", "status": "skipped", "exit_code": 0},
    ]  # fmt: skip
    (tmp_path / "validation-results-mixed.json").write_text(json.dumps(rows, indent=2))
    got = collect("*.json", tmp_path, ecosystem="homebrew")
    assert got.warnings == []
    assert [(r.recipe_name, r.result) for r in got.results] == [("fd", "passed"), ("gh", "failed"), ("bat", "skipped")]
    gh = got.results[1]
    assert gh.error_category == "blocked"
    assert gh.error_message == "exit code 6 after 3 attempt(s) blocked by go, git"
    assert gh.platform == "linux-alpine-musl-arm64"
    assert got.results[0].error_message is None


def test_ready_payload_is_recognised_and_validated(tmp_path: Path) -> None:
    payload = {"batch_id": "b1", "ecosystem": "npm", "started_at": "2026-01-01T00:00:00Z",
               "results": [{"recipe_name": "q", "ecosystem": "npm", "result": "passed"}]}  # fmt: skip
    (tmp_path / "a.txt").write_text(json.dumps(payload))
    (tmp_path / "b.txt").write_text(json.dumps({**payload, "batch_id": ""}))
    got = collect("*.txt", tmp_path)
    assert [p.batch_id for p in got.payloads] == ["b1"]
    assert got.results == []
    assert [str(w) for w in got.warnings] == ["b.txt:1: ready payload is invalid: batch_id: "
                                              "String should have at least 1 character; skipped"]  # fmt: skip


def test_format_is_detected_by_content_not_name(shared_fixtures: Path, tmp_path: Path) -> None:
    copy_fixture(shared_fixtures, "junit/jest-jest-junit.xml", tmp_path, "results.json")
    copy_fixture(shared_fixtures, "tsuku/failures/npm-2026-03-14T20-28-53Z.jsonl", tmp_path, "report.xml")
    got = collect("*", tmp_path)
    assert got.warnings == []
    assert Counter(row.ecosystem for row in got.results) == {"unknown": 2, "npm": 1}


def test_forced_format_reads_only_that_shape(shared_fixtures: Path, tmp_path: Path) -> None:
    copy_fixture(shared_fixtures, "tsuku/failures/batch-2026-05-07T14-08-47Z.jsonl", tmp_path)
    assert len(collect("*", tmp_path, fmt="ndjson").results) == 10
    forced_wrong = collect("*", tmp_path, fmt="failure-records")
    assert forced_wrong.results == []
    assert "failure record without a `failures` list" in forced_wrong.warnings[0].message
    with pytest.raises(ValueError, match="unknown format 'csv'"):
        collect("*", tmp_path, fmt="csv")


def test_globstar_and_exclusions(tmp_path: Path) -> None:
    row = json.dumps({"recipe": "x", "platform": "linux-x", "exit_code": 1, "category": "c"})
    for relative in ("a/one.jsonl", "a/b/two.jsonl", "a/b/skip-me.jsonl", "c/three.jsonl", ".hidden/four.jsonl"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(row + "\n")
    got = collect("a/**/*.jsonl\n.hidden/*.jsonl\n!**/skip-*\n\n# a comment", tmp_path)
    assert got.files == [".hidden/four.jsonl", "a/b/two.jsonl", "a/one.jsonl"]
    assert len(got.results) == 3


def test_patterns_cannot_leave_the_workspace(tmp_path: Path) -> None:
    (tmp_path / "inside").mkdir()
    (tmp_path / "outside.json").write_text("[]")
    got = collect("../outside.json\n/etc/passwd", tmp_path / "inside")
    assert got.files == []
    assert sum("leaves the workspace" in w.message for w in got.warnings) == 2


def test_no_match_and_empty_patterns_are_warnings(tmp_path: Path) -> None:
    assert "no files match results/*.json" in collect("results/*.json", tmp_path).warnings[0].message
    assert "no result patterns given" in collect("  \n", tmp_path).warnings[0].message


def test_malformed_lines_name_file_and_line_and_the_rest_counts(tmp_path: Path) -> None:
    good = {"recipe": "ok", "platform": "linux-x", "exit_code": 6, "category": "c"}
    lines = [json.dumps(good), '{"recipe": "broken", ', json.dumps(good), json.dumps({**good, "recipe": ""}),
             json.dumps({**good, "status": "exploded"}), json.dumps(good)]  # fmt: skip
    (tmp_path / "records.jsonl").write_text("\n".join(lines) + "\n")
    got = collect("*.jsonl", tmp_path)
    assert len(got.results) == 3
    assert [(w.path, w.line) for w in got.warnings] == [("records.jsonl", 2), ("records.jsonl", 5), ("records.jsonl", 4)]
    assert "malformed JSON" in got.warnings[0].message
    assert "unknown status 'exploded'" in got.warnings[1].message
    assert "recipe_name" in got.warnings[2].message


def test_broken_pretty_printed_value_costs_one_warning(shared_fixtures: Path, tmp_path: Path) -> None:
    text = (shared_fixtures / "tsuku/failures/npm-2026-03-14T20-28-53Z.jsonl").read_text()
    record = json.loads(text)
    pretty = json.dumps(record, indent=2)
    (tmp_path / "values.json").write_text(pretty[: len(pretty) // 2] + "\n" + pretty + "\n" + pretty + "\n")
    got = collect("values.json", tmp_path)
    assert len(got.results) == 2
    assert len(got.warnings) == 1 and got.warnings[0].line is not None


def test_bad_files_never_stop_the_others(shared_fixtures: Path, tmp_path: Path) -> None:
    copy_fixture(shared_fixtures, "tsuku/failures/pypi-2026-03-16T07-16-37Z.jsonl", tmp_path)
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    (tmp_path / "empty.json").write_text("")
    (tmp_path / "broken.xml").write_text("<testsuites><testsuite><testcase name='a'/><testcase name=")
    (tmp_path / "number.json").write_text("42")
    got = collect("*", tmp_path)
    # the pypi failure, and the XML testcase read before the break
    assert Counter(row.ecosystem for row in got.results) == {"pypi": 1, "unknown": 1}
    messages = {w.path: w.message for w in got.warnings}
    assert "not UTF-8" in messages["binary.json"]
    assert "empty file" in messages["empty.json"]
    assert "malformed XML" in messages["broken.xml"]
    assert "not a shape" in messages["number.json"]


def test_error_messages_are_bounded_keeping_both_ends(tmp_path: Path) -> None:
    log = "START " + "x" * 50_000 + " END"
    record = {"schema_version": 1, "ecosystem": "npm", "environment": "linux", "updated_at": "2026-01-01T00-00-00Z",
              "failures": [{"package_id": "npm:big", "category": "install_failed", "message": log,
                            "timestamp": "2026-01-01T00:00:00Z"}]}  # fmt: skip
    (tmp_path / "f.jsonl").write_text(json.dumps(record) + "\n")
    message = collect("*", tmp_path, max_message_chars=500).results[0].error_message
    assert message is not None and len(message) == 500
    assert message.startswith("START") and message.endswith("END") and "characters cut" in message


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [("pass", "passed"), ("SUCCESS", "passed"), ("ok", "passed"), ("fail", "failed"), ("failure", "failed"),
     ("error", "failed"), ("skip", "skipped"), ("Skipped", "skipped"), ("disabled", "skipped"), ("weird", None)],
)  # fmt: skip
def test_result_spellings(spelling: str, expected: str | None) -> None:
    assert normalise_result(spelling) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-08T01-58-35Z", datetime(2026, 3, 8, 1, 58, 35, tzinfo=UTC)),
        ("2026-02-21T07:20:43.74792481Z", datetime(2026, 2, 21, 7, 20, 43, 747924, tzinfo=UTC)),
        ("2022-12-29T15:34:28", datetime(2022, 12, 29, 15, 34, 28, tzinfo=UTC)),
        ("2026-01-01T02:00:00+02:00", datetime(2026, 1, 1, 0, 0, tzinfo=UTC)),
        ("yesterday", None),
    ],
)
def test_timestamps_pipelines_write(text: str, expected: datetime | None) -> None:
    assert parse_timestamp(text) == expected


def test_bound_message_leaves_short_text_alone() -> None:
    assert bound_message("short", 10) == "short"
    assert bound_message(None, 10) is None
