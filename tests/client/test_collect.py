"""Collectors on the real-world fixtures, plus globbing, detection by content and every kind of bad input.

Expected numbers were read off the fixtures by hand (see tests/fixtures/README.md).
"""

from __future__ import annotations

import gc
import json
import os
import shutil
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from batch_metrics.client.collect import (
    COLLECTORS,
    FORMATS,
    MAX_WARNINGS_PER_FILE,
    CollectWarning,
    bound_message,
    collect,
    normalise_result,
    parse_timestamp,
)

FAILURES = "tsuku/failures"


def copy_fixture(fixtures: Path, relative: str, workspace: Path, name: str | None = None) -> Path:
    target = workspace / (name or Path(relative).name)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(fixtures / relative, target)
    return target


def write_lines(path: Path, values: Sequence[object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(value) + "\n" for value in values))
    return path


def record(recipe: str = "fd", **fields: object) -> dict[str, object]:
    """A per-record NDJSON line as tsuku writes it."""
    return {
        "schema_version": 1,
        "recipe": recipe,
        "platform": "linux-debian-glibc-x86_64",
        "exit_code": 6,
        "category": "deterministic",
        "timestamp": "2026-02-19T14:31:25Z",
        **fields,
    }


def test_one_collector_per_format_in_one_table() -> None:
    assert tuple(COLLECTORS) == FORMATS
    assert all(collector.name == name for name, collector in COLLECTORS.items())


# --- the real-world fixtures, format by format---------------------------------------------------------


def test_per_record_ndjson_from_tsuku(fixtures: Path) -> None:
    got = collect(f"{FAILURES}/batch-*.jsonl", fixtures, ecosystem="npm")
    assert got.warnings == []
    assert got.files == [
        f"{FAILURES}/batch-2026-02-19T14-31-25Z.jsonl",
        f"{FAILURES}/batch-2026-05-07T14-08-47Z.jsonl",
    ]
    assert len(got.results) == 14 + 10
    first = got.results[0]
    assert (first["recipe_name"], first.get("platform"), first["result"], first["ecosystem"]) == (
        "bpmnlint",
        "linux-alpine-musl-x86_64",
        "failed",
        "npm",
    )
    # tsuku's canonical category (`deterministic` was renamed), and its subcategory for exit code 6
    assert (first.get("error_category"), first.get("error_message")) == ("generation_failed", "exit code 6")
    assert first.get("error_subcategory") == "install_failed"
    assert Counter(row.get("error_category") for row in got.results) == {"generation_failed": 14 + 10}
    assert {row["result"] for row in got.results} == {"failed"}  # exit code 6 throughout
    assert sum(row.get("platform") == "darwin-arm64" for row in got.results) == 1
    assert got.earliest == datetime(2026, 2, 19, 14, 31, 25, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "failures", "first_recipe", "earliest"),
    [
        (
            "crates.io-2026-03-15T02-09-52Z.jsonl",
            1,
            "bindgen-cli",
            datetime(2026, 3, 15, 2, 9, 5, 755434, UTC),
        ),
        (
            "github-2026-03-14T07-38-16Z.jsonl",
            1,
            "sharkdp/bat",
            datetime(2026, 3, 14, 7, 35, 58, 125753, UTC),
        ),
        ("homebrew-2026-02-21T07-22-39Z.jsonl", 44, "afl++", datetime(2026, 2, 21, 7, 20, 43, 747924, UTC)),
        ("homebrew-2026-03-08T01-58-35Z.jsonl", 1, "go-task", datetime(2026, 3, 8, 1, 56, 6, 815600, UTC)),
        ("npm-2026-03-14T20-28-53Z.jsonl", 1, "q", datetime(2026, 3, 14, 20, 28, 42, 629889, UTC)),
        ("pypi-2026-03-16T07-16-37Z.jsonl", 1, "lib3mf", datetime(2026, 3, 16, 7, 16, 37, tzinfo=UTC)),
        ("rubygems-2026-03-14T20-28-53Z.jsonl", 1, "flash", datetime(2026, 3, 14, 20, 28, 26, 822821, UTC)),
    ],
)
def test_failure_records_from_tsuku(
    fixtures: Path, name: str, failures: int, first_recipe: str, earliest: datetime
) -> None:
    got = collect(f"{FAILURES}/{name}", fixtures, ecosystem="ignored-when-the-record-has-one")
    assert got.warnings == []
    assert len(got.results) == failures
    ecosystem = name.split("-20", maxsplit=1)[0]
    assert {(row["ecosystem"], row.get("platform"), row["result"]) for row in got.results} == {
        (ecosystem, "linux-glibc-x86_64", "failed")
    }
    assert got.results[0]["recipe_name"] == first_recipe
    assert got.earliest == earliest  # the earlier of `updated_at` and the failures' own timestamps


def test_failure_record_rows_carry_category_and_message(fixtures: Path) -> None:
    got = collect(f"{FAILURES}/homebrew-2026-02-21T07-22-39Z.jsonl", fixtures)
    assert Counter(row.get("error_category") for row in got.results) == {  # tsuku's canonical names
        "recipe_not_found": 27,
        "generation_failed": 13,  # deterministic_insufficient
        "install_failed": 4,  # validation_failed
    }
    assert {row.get("stage") for row in got.results} == {"generation"}
    afl = got.results[0]
    assert afl.get("error_category") == "recipe_not_found"
    assert "not found in homebrew" in (afl.get("error_message") or "")


def test_failure_record_ecosystem_falls_back_to_the_package_prefix(tmp_path: Path) -> None:
    failure = {
        "package_id": "cargo:ripgrep",
        "category": "install_failed",
        "message": "boom",
        "timestamp": "2026-01-01T00:00:00Z",
        "subcategory": "timeout",
        "blocked_by": ["rust"],
    }
    write_lines(
        tmp_path / "f.jsonl", [{"schema_version": 1, "environment": "darwin-arm64", "failures": [failure]}]
    )
    [row] = collect("f.jsonl", tmp_path, ecosystem="fallback").results
    assert (row["recipe_name"], row["ecosystem"], row.get("platform")) == ("ripgrep", "cargo", "darwin-arm64")
    assert row.get("error_category") == "install_failed"
    # subcategory and blocked_by are fields of their own, no longer folded into the message
    assert (row.get("error_message"), row.get("error_subcategory"), row.get("blocked_by")) == (
        "boom",
        "timeout",
        ["rust"],
    )


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
        ("surefire-flaky.xml", 4, 2, 0),
        ("tst-disabled.xml", 31, 20, 5),
        ("with-xml-entities.xml", 4, 2, 2),
        ("xunit-xunit.xml", 2, 0, 0),
    ],
)
def test_junit_from_many_runners(fixtures: Path, name: str, total: int, failed: int, skipped: int) -> None:
    got = collect(f"junit/{name}", fixtures, ecosystem="pypi")
    assert got.warnings == []
    assert got.files == [f"junit/{name}"]
    counts = Counter(row["result"] for row in got.results)
    assert (len(got.results), counts["failed"], counts["skipped"]) == (total, failed, skipped)
    assert counts["passed"] == total - failed - skipped
    assert all(row["ecosystem"] == "pypi" for row in got.results)


def test_every_junit_fixture_at_once(fixtures: Path) -> None:
    got = collect("junit/*.xml", fixtures)
    assert got.warnings == []
    assert len(got.files) == 12
    assert len(got.results) == 1 + 1 + 2 + 4 + 4 + 0 + 5 + 97 + 4 + 31 + 4 + 2
    assert got.earliest == datetime(2020, 8, 31, 9, 23, 36, 729636, UTC)  # pytest-junit.mpi.standalone.xml


def test_junit_names_durations_and_suite_timestamp(fixtures: Path) -> None:
    got = collect("junit/empty-system-out-err.xml", fixtures)
    [row] = got.results
    assert (row["recipe_name"], row.get("duration_seconds"), row["result"], row.get("error_message")) == (
        "Suite.test",
        1.234,
        "passed",
        None,
    )
    assert got.earliest == datetime(2020, 9, 10, 13, 34, 55, tzinfo=UTC)  # no zone in the file: UTC
    jest = collect("junit/jest-jest-junit.xml", fixtures).results
    assert [row["recipe_name"] for row in jest] == ["Load widget via link", "Mount iframe"]  # empty classname


def test_junit_keeps_entities_and_failure_text(fixtures: Path) -> None:
    got = collect("junit/with-xml-entities.xml", fixtures)
    by_name = {row["recipe_name"]: row for row in got.results}
    assert set(by_name) == {
        'Test with "quotes" in the test name',
        "Test with 'apostrophe' in the test name",
        "Test with & in the test name",
        "Test with < and > in the test name",
    }
    failure = by_name["Test with 'apostrophe' in the test name"]
    assert (failure.get("error_category"), failure.get("error_message")) == (
        "failure",
        "A message with 'apostrophes'\nContent with 'apostrophes'",
    )
    error = by_name["Test with & in the test name"]
    assert (error.get("error_category"), error.get("error_message")) == (
        "error",
        "A message with &\nContent with &",
    )


def test_junit_error_outranks_failure_and_skipped(fixtures: Path) -> None:
    by_name = {row["recipe_name"]: row for row in collect("junit/junit.multiresult.xml", fixtures).results}
    errored = by_name["test class.test that errors"]
    assert (errored["result"], errored.get("error_category"), errored.get("duration_seconds")) == (
        "failed",
        "error",
        0.123,
    )
    assert by_name["test class.test that fails"].get("error_category") == "failure"
    assert by_name["test class.test that is skipped"]["result"] == "skipped"
    assert by_name["test class.test that succeeds"]["result"] == "passed"


def test_junit_status_attribute_marks_disabled_cases_skipped(fixtures: Path) -> None:
    by_name = {row["recipe_name"]: row for row in collect("junit/tst-disabled.xml", fixtures).results}
    assert by_name["disabled_test"]["result"] == "skipped"
    thrown = by_name["test_which_throws_unknown_exception"]
    assert (thrown["result"], thrown.get("error_category")) == ("failed", "error")
    assert thrown.get("error_message") == "uncaught (anonymous namespace)::some_unknown_exception"


def test_googletest_notrun_cases_are_skipped(tmp_path: Path) -> None:
    # GoogleTest writes a DISABLED_ test as status="notrun" with no <skipped> child.
    (tmp_path / "gtest.xml").write_text(
        '<testsuites><testsuite name="Math" tests="2">'
        '<testcase name="Adds" status="run" result="completed" time="0.001" classname="Math"/>'
        '<testcase name="DISABLED_Divides" status="notrun" result="suppressed" time="0" classname="Math"/>'
        "</testsuite></testsuites>"
    )
    got = collect("gtest.xml", tmp_path)
    assert [(row["recipe_name"], row["result"]) for row in got.results] == [
        ("Math.Adds", "passed"),
        ("Math.DISABLED_Divides", "skipped"),
    ]
    assert got.warnings == []


def test_bazel_suite_log_joins_its_only_failure(fixtures: Path) -> None:
    [row] = collect("junit/bazel-suite-logs.xml", fixtures).results
    assert (row["recipe_name"], row["result"], row.get("error_category")) == (
        "bazel/failing_absl_test",
        "failed",
        "error",
    )
    message = row.get("error_message") or ""
    assert message.startswith("exited with error code 1\nGenerated test.log")
    assert "ModuleNotFoundError: No module named 'non_existent_package'" in message
    assert message.endswith("Generated test.err")


def test_junit_platform_from_properties(tmp_path: Path) -> None:
    (tmp_path / "r.xml").write_text(
        '<testsuites><testsuite name="s">'
        '<properties><property name="platform" value="darwin-arm64"/></properties>'
        '<testcase name="a" time="2"/>'
        '<testcase name="b"><properties><property name="platform" value="linux-x"/></properties></testcase>'
        '</testsuite><testsuite name="t"><testcase name="c"/></testsuite></testsuites>'
    )
    got = collect("r.xml", tmp_path)
    assert [(row["recipe_name"], row.get("platform")) for row in got.results] == [
        ("a", "darwin-arm64"),
        ("b", "linux-x"),
        ("c", None),
    ]


def test_an_unknown_shape_is_one_warning_not_a_guess(fixtures: Path) -> None:
    # tsuku's queue summary is not a result file; its run summaries are read (tests/client/test_tsuku.py).
    got = collect("tsuku/metrics/batch-runs.jsonl\ntsuku/queues/*.json", fixtures)
    assert got.results == [] and got.payloads == []
    assert [(w.path, w.line) for w in got.warnings] == [("tsuku/queues/batch-results.json", 1)]
    assert got.warnings[0].message.startswith(
        "not a shape batch-metrics reads (the first value has keys: batch_id,"
    )
    assert "nothing guessed" in got.warnings[0].message
    assert got.files == ["tsuku/metrics/batch-runs.jsonl", "tsuku/queues/batch-results.json"]


def test_the_whole_fixture_tree(fixtures: Path) -> None:
    got = collect("**/*.jsonl\n**/*.json\n**/*.xml\n!**/schemas/**\n!tsuku/batches/**", fixtures)
    assert len(got.files) == 9 + 1 + 1 + 12
    assert len(got.results) == 24 + (1 + 1 + 44 + 1 + 1 + 1 + 1) + 155
    assert len(got.summaries) == 40  # tsuku/metrics/batch-runs.jsonl: run summaries are read now
    assert [w.path for w in got.warnings] == ["tsuku/queues/batch-results.json"]


# --- validation results and ready payloads (no real sample is kept: built from the documented shape) ---


def test_validation_results_arrays(tmp_path: Path) -> None:
    rows = [
        {"recipe": "fd", "platform": "darwin-arm64", "status": "pass", "exit_code": 0, "attempts": 1},
        {
            "recipe": "gh",
            "platform": "linux-alpine-musl-arm64",
            "status": "fail",
            "exit_code": 8,
            "attempts": 3,
            "blocked_by": ["go", "git"],
        },
        {
            "recipe": "jq",
            "platform": "linux-debian-glibc-x86_64",
            "status": "fail",
            "exit_code": 6,
            "attempts": 1,
        },
        {"recipe": "bat", "platform": "linux-debian-glibc-x86_64", "status": "skipped", "exit_code": 0},
    ]
    (tmp_path / "validation-results-mixed.json").write_text(json.dumps(rows, indent=2))
    got = collect("*.json", tmp_path, ecosystem="homebrew")
    assert got.warnings == []
    assert [(r["recipe_name"], r["result"], r.get("platform")) for r in got.results] == [
        ("fd", "passed", "darwin-arm64"),
        ("gh", "failed", "linux-alpine-musl-arm64"),
        ("jq", "failed", "linux-debian-glibc-x86_64"),
        ("bat", "skipped", "linux-debian-glibc-x86_64"),
    ]
    gh, jq = got.results[1], got.results[2]
    assert (gh.get("error_category"), gh.get("error_message")) == (
        "blocked",
        "exit code 8 after 3 attempt(s) blocked by go, git",
    )
    assert (jq.get("error_category"), jq.get("error_message")) == (
        "exit_code_6",
        "exit code 6 after 1 attempt(s)",
    )
    assert got.results[0].get("error_message") is None and got.results[0].get("error_category") is None
    assert {row["ecosystem"] for row in got.results} == {"homebrew"}


def test_ready_payload_is_recognised_and_validated(tmp_path: Path) -> None:
    payload = {
        "batch_id": "b1",
        "ecosystem": "npm",
        "started_at": "2026-01-01T00:00:00Z",
        "results": [{"recipe_name": "q", "ecosystem": "npm", "result": "passed"}],
    }
    (tmp_path / "a.txt").write_text(json.dumps(payload))
    (tmp_path / "b.txt").write_text(json.dumps({**payload, "batch_id": "", "passed": -1}))
    got = collect("*.txt", tmp_path)
    assert [p["batch_id"] for p in got.payloads] == ["b1"]
    assert got.results == []
    assert [str(w) for w in got.warnings] == [
        "b.txt:1: invalid ready payload: batch_id: String should have at least 1 character "
        "(and 1 more problems); skipped"
    ]
    assert got.earliest == datetime(2026, 1, 1, tzinfo=UTC)


# --- finding files ----------------------------------------------------------------------------------


def test_globstar_exclusions_braces_and_directories(tmp_path: Path) -> None:
    line = [record()]
    for relative in (
        "a/one.jsonl",
        "a/b/two.jsonl",
        "a/b/skip-me.jsonl",
        "c/three.jsonl",
        "c/four.ndjson",
        ".hidden/five.jsonl",
        "a/.cache/six.jsonl",
    ):
        write_lines(tmp_path / relative, line)
    (tmp_path / "a" / "dir.jsonl").mkdir()  # a directory that matches is never read
    got = collect("a/**/*.jsonl\nc/*.{jsonl,ndjson}\n.hidden/*.jsonl\n!**/skip-*\n\n# a comment", tmp_path)
    # `**` does not enter hidden directories; naming one (.hidden/) does
    assert got.files == [
        ".hidden/five.jsonl",
        "a/b/two.jsonl",
        "a/one.jsonl",
        "c/four.ndjson",
        "c/three.jsonl",
    ]
    assert len(got.results) == 5
    assert got.warnings == []


def test_absolute_patterns_inside_the_workspace_are_accepted(tmp_path: Path) -> None:
    write_lines(tmp_path / "results" / "r.jsonl", [record()])
    got = collect(f"{tmp_path}/results/*.jsonl", tmp_path)
    assert got.files == ["results/r.jsonl"] and len(got.results) == 1


def test_patterns_cannot_leave_the_workspace(tmp_path: Path) -> None:
    workspace = tmp_path / "inside"
    write_lines(tmp_path / "outside.jsonl", [record()])
    write_lines(workspace / "mine.jsonl", [record()])
    os.symlink(tmp_path / "outside.jsonl", workspace / "link.jsonl")
    got = collect(f"../outside.jsonl\n{tmp_path}/outside.jsonl\n*.jsonl\nsub/../../outside.jsonl", workspace)
    assert got.files == ["mine.jsonl"]
    assert len(got.results) == 1
    assert [str(w) for w in got.warnings] == [
        "pattern '../outside.jsonl' reaches outside the workspace; ignored",
        f"pattern '{tmp_path}/outside.jsonl' reaches outside the workspace; ignored",
        "pattern 'sub/../../outside.jsonl' reaches outside the workspace; ignored",
        "link.jsonl: a link to outside the workspace; skipped",
    ]


def test_no_match_and_empty_patterns_are_warnings(tmp_path: Path) -> None:
    missing = collect("results/*.json\nmore/*.xml", tmp_path)
    assert (missing.results, missing.files) == ([], [])
    assert [w.message for w in missing.warnings] == [
        f"no files match results/*.json, more/*.xml in {tmp_path}"
    ]
    runaway = collect("{1..5000}.json", tmp_path)
    assert [w.message for w in runaway.warnings] == [
        "patterns cannot be expanded: Pattern limit exceeded the limit of 1000; nothing collected"
    ]
    for patterns in ("", "  \n\n", "# only a comment", "!only/exclusions"):
        empty = collect(patterns, tmp_path)
        assert [w.message for w in empty.warnings] == ["no result patterns given; nothing to collect"]


# --- telling formats apart ----------------------------------------------------------------------------


def test_format_is_detected_by_content_not_name(fixtures: Path, tmp_path: Path) -> None:
    copy_fixture(fixtures, "junit/jest-jest-junit.xml", tmp_path, "results.json")
    copy_fixture(fixtures, f"{FAILURES}/npm-2026-03-14T20-28-53Z.jsonl", tmp_path, "report.xml")
    copy_fixture(fixtures, f"{FAILURES}/batch-2026-05-07T14-08-47Z.jsonl", tmp_path, "payload.json")
    (tmp_path / "junit.xml").write_text(
        json.dumps([{"recipe": "fd", "platform": "darwin-arm64", "status": "ok"}])
    )
    got = collect("*", tmp_path)
    assert got.warnings == []
    assert Counter((row["ecosystem"], row["result"]) for row in got.results) == {
        ("unknown", "passed"): 2 + 1,  # jest's two cases, the validation result
        ("npm", "failed"): 1,  # the failure record
        ("unknown", "failed"): 10,  # the per-record lines
    }


def test_forced_format_reads_every_file_as_that_format(fixtures: Path, tmp_path: Path) -> None:
    copy_fixture(fixtures, f"{FAILURES}/batch-2026-05-07T14-08-47Z.jsonl", tmp_path)
    assert len(collect("*", tmp_path, fmt="ndjson").results) == 10
    # A failures file may mix tsuku's two line shapes (its dashboard reads each line by its shape).
    assert len(collect("*", tmp_path, fmt="failure-records").results) == 10
    copy_fixture(fixtures, "tsuku/queues/batch-results.json", tmp_path / "queue")
    as_records = collect("queue/*", tmp_path, fmt="failure-records")
    assert as_records.results == []
    assert [w.line for w in as_records.warnings] == [1]
    assert as_records.warnings[0].message.startswith(
        "not a failure record with a `failures` array (keys: batch_id,"
    )
    as_xml = collect("*", tmp_path, fmt="junit")
    assert [(w.line, w.message.split(":")[0]) for w in as_xml.warnings] == [(1, "malformed XML")]
    with pytest.raises(ValueError, match="unknown format 'csv'"):
        collect("*", tmp_path, fmt="csv")


def test_pretty_printed_values_back_to_back(fixtures: Path, tmp_path: Path) -> None:
    records = [json.loads(line) for line in (fixtures / FAILURES / "npm-2026-03-14T20-28-53Z.jsonl").open()]
    records += [json.loads(line) for line in (fixtures / FAILURES / "pypi-2026-03-16T07-16-37Z.jsonl").open()]
    text = "\ufeff" + "\n".join(json.dumps(value, indent=2) for value in records) + "\n"
    (tmp_path / "records.json").write_text(text, encoding="utf-8")
    got = collect("records.json", tmp_path)
    assert got.warnings == []
    assert [(row["recipe_name"], row["ecosystem"]) for row in got.results] == [
        ("q", "npm"),
        ("lib3mf", "pypi"),
    ]


# --- bad input: a warning naming file and line, and everything else still counts ----------------------


def test_malformed_lines_name_file_and_line_and_the_rest_counts(tmp_path: Path) -> None:
    lines = [
        json.dumps(record("a")),
        '{"recipe": "broken", ',
        json.dumps(record("b")),
        json.dumps(record("")),
        json.dumps(record("c", status="exploded")),
        "[1, 2]",
        json.dumps(record("d", exit_code=0)),
    ]
    (tmp_path / "records.jsonl").write_text("\n".join(lines) + "\n")
    got = collect("*.jsonl", tmp_path)
    assert [(row["recipe_name"], row["result"]) for row in got.results] == [
        ("a", "failed"),
        ("b", "failed"),
        ("d", "passed"),
    ]
    assert [(w.path, w.line) for w in got.warnings] == [("records.jsonl", line) for line in (2, 5, 6, 4)]
    messages = [w.message for w in got.warnings]
    assert messages[0].startswith(
        "malformed JSON (Expecting property name enclosed in double quotes at line 3)"
    )
    assert messages[1].startswith("unknown status 'exploded'")
    assert messages[2] == "not a per-record line with a recipe (a JSON list); skipped"
    assert messages[3] == "row 3 (''): recipe_name: String should have at least 1 character; row skipped"


def test_broken_pretty_printed_value_costs_one_warning(fixtures: Path, tmp_path: Path) -> None:
    value = json.loads((fixtures / FAILURES / "npm-2026-03-14T20-28-53Z.jsonl").read_text())
    pretty = json.dumps(value, indent=2)
    half = pretty[: len(pretty) // 2]
    (tmp_path / "values.json").write_text(pretty + "\n" + half + "\n" + pretty + "\n")
    got = collect("values.json", tmp_path)
    assert len(got.results) == 2
    opened_at = pretty.count("\n") + 2
    assert [(w.line, w.message.split(" (")[0]) for w in got.warnings] == [(opened_at, "malformed JSON")]


def test_bad_files_never_stop_the_others(fixtures: Path, tmp_path: Path) -> None:
    copy_fixture(fixtures, f"{FAILURES}/pypi-2026-03-16T07-16-37Z.jsonl", tmp_path)
    (tmp_path / "binary.json").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (tmp_path / "empty.json").write_text("  \n")
    (tmp_path / "broken.xml").write_text("<testsuites><testsuite>\n<testcase name='a'/>\n<testcase name=")
    (tmp_path / "page.html").write_text("<html><body>results</body></html>")
    (tmp_path / "number.json").write_text("42")
    (tmp_path / "latin1.jsonl").write_bytes(
        json.dumps(record("ok")).encode() + b"\n" + b'{"recipe": "caf\xe9", "platform":\n "x"}\n'
    )
    got = collect("*", tmp_path)
    assert Counter(row["recipe_name"] for row in got.results) == {
        "lib3mf": 1,
        "ok": 1,
        "caf\ufffd": 1,
    }
    assert {w.path: (w.line, w.message) for w in got.warnings} == {
        "binary.json": (None, "binary file (it holds NUL bytes), not JSON or XML; skipped"),
        "broken.xml": (
            3,
            "malformed XML: unclosed token: line 3, column 0; a whole document counts all or nothing: "
            "nothing collected from this file",
        ),
        "empty.json": (None, "empty file; nothing collected"),
        "latin1.jsonl": (2, "not UTF-8 text; undecodable bytes replaced"),
        "number.json": (
            1,
            "not a shape batch-metrics reads (it starts with '4', not JSON or XML); "
            "nothing collected, nothing guessed",
        ),
        "page.html": (1, "<html> is not JUnit XML (no testsuites or testsuite root); skipped"),
    }
    assert len(got.files) == 7


def test_warnings_per_file_are_capped_but_counted(tmp_path: Path) -> None:
    bad = MAX_WARNINGS_PER_FILE + 7
    write_lines(tmp_path / "r.jsonl", [record(status="weird")] * bad + [record("kept")])
    got = collect("r.jsonl", tmp_path)
    assert [row["recipe_name"] for row in got.results] == ["kept"]
    assert [w.line for w in got.warnings[:-1]] == list(range(1, MAX_WARNINGS_PER_FILE + 1))
    assert got.warnings[-1] == CollectWarning("r.jsonl", None, "7 more warnings in this file not shown")


def test_error_messages_are_bounded_keeping_both_ends(tmp_path: Path) -> None:
    log = "START " + "x" * 50_000 + " END"
    failure = {
        "package_id": "npm:big",
        "category": "install_failed",
        "message": log,
        "timestamp": "2026-01-01T00:00:00Z",
    }
    write_lines(
        tmp_path / "f.jsonl",
        [
            {
                "schema_version": 1,
                "ecosystem": "npm",
                "environment": "linux",
                "updated_at": "2026-01-01T00-00-00Z",
                "failures": [failure],
            }
        ],
    )
    (tmp_path / "j.xml").write_text(
        f"<testsuite><testcase name='t'><failure>{log}</failure></testcase></testsuite>"
    )
    got = collect("*", tmp_path, max_message_chars=500)
    for row in got.results:
        message = row.get("error_message") or ""
        assert len(message) == 500 and message.startswith("START") and message.endswith("END")
        assert f"[... {len(log) - 500} characters cut ...]" in message


# --- the small pieces ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("pass", "passed"),
        ("passed", "passed"),
        ("SUCCESS", "passed"),
        ("ok", "passed"),
        (" Succeeded ", "passed"),
        ("fail", "failed"),
        ("failed", "failed"),
        ("failure", "failed"),
        ("error", "failed"),
        ("errored", "failed"),
        ("skip", "skipped"),
        ("Skipped", "skipped"),
        ("disabled", "skipped"),
        ("weird", None),
        ("", None),
        (None, None),
        (1, None),
    ],
)
def test_result_spellings(spelling: object, expected: str | None) -> None:
    assert normalise_result(spelling) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-08T01-58-35Z", datetime(2026, 3, 8, 1, 58, 35, tzinfo=UTC)),
        ("2026-02-21T07:20:43.74792481Z", datetime(2026, 2, 21, 7, 20, 43, 747924, tzinfo=UTC)),
        ("2022-12-29T15:34:28", datetime(2022, 12, 29, 15, 34, 28, tzinfo=UTC)),
        ("2026-01-01T02:00:00+02:00", datetime(2026, 1, 1, 0, 0, tzinfo=UTC)),
        ("2026-01-01t02:00:00z", datetime(2026, 1, 1, 2, 0, tzinfo=UTC)),
        ("yesterday", None),
        ("", None),
        (1700000000, None),
    ],
)
def test_timestamps_pipelines_write(text: object, expected: datetime | None) -> None:
    assert parse_timestamp(text) == expected


def test_bound_message() -> None:
    assert bound_message("short", 10) == "short"
    assert bound_message(None, 10) is None
    bounded = bound_message("a" * 100 + "b" * 100, 60)
    assert bounded == "a" * 15 + "\n[... 140 characters cut ...]\n" + "b" * 15
    assert len(bounded) == 60
    assert bound_message("x" * 100, 5) == "\n[..."  # a limit below the marker still holds


def test_warning_text() -> None:
    assert str(CollectWarning("a/b.json", 3, "bad")) == "a/b.json:3: bad"
    assert str(CollectWarning("a/b.json", None, "bad")) == "a/b.json: bad"
    assert str(CollectWarning("", None, "no files")) == "no files"


def test_collect_restores_the_garbage_collector(tmp_path: Path) -> None:
    write_lines(tmp_path / "r.jsonl", [record()])
    assert gc.isenabled()
    assert len(collect("r.jsonl", tmp_path).results) == 1
    assert gc.isenabled()
    gc.disable()
    try:
        collect("r.jsonl", tmp_path)
        assert not gc.isenabled()  # left as the caller had it
    finally:
        gc.enable()


def test_a_record_with_neither_status_nor_exit_code_is_failed(tmp_path: Path) -> None:
    """Per-record lines list failures: with no status and no exit code to say otherwise, it failed."""
    (tmp_path / "batch.jsonl").write_text('{"recipe": "jq", "platform": "linux-x86_64"}\n')
    collection = collect("*.jsonl", tmp_path)
    assert collection.warnings == []
    [row] = collection.results
    assert (row["recipe_name"], row["result"], row.get("error_category")) == ("jq", "failed", None)
