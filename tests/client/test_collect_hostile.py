"""Hostile result files (issue 8 §1-5): one bad file is one warning, everything else still counts.

Every file is real, written by the test; the runner's view drives `entrypoint.py` as a
runner does (tests/test_cli.py's `run_entrypoint`). Speed is shown in `python -m bench`
(bench/hostile.py), never here; memory is asserted with tracemalloc where it is the point.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from batch_metrics.client.collect import MAX_WARNINGS_PER_FILE, collect
from tests.client.test_actions import parse_command
from tests.test_cli import ROWS, run_entrypoint

DEEP = 100_000
HUGE_INT = "9" * 5_000  # past Python's 4,300-digit limit for int <-> str
TOO_EARLY = "0001-01-01T00:00:00+01:00"  # 0000-12-31T23:00:00Z: no such year in datetime
TOO_LATE = "9999-12-31T23:59:59-23:59"
ALL_OR_NOTHING = "a whole document counts all or nothing: nothing collected from this file"


def record(recipe: str, **fields: object) -> str:
    line = {"recipe": recipe, "platform": "linux-x86_64", "exit_code": 1, "timestamp": "2026-02-19T14:31:25Z"}
    return json.dumps({**line, **fields})


def good_results(workspace: Path) -> None:
    (workspace / "validation-results-all.json").write_text(json.dumps(ROWS, indent=2))


def names(workspace: Path, patterns: str = "*") -> list[str]:
    return [row["recipe_name"] for row in collect(patterns, workspace).results]


# --- §1: no failure inside a file crosses the file boundary --------------------------------------------


def test_json_nested_past_every_parser_limit_is_one_warning(tmp_path: Path) -> None:
    good_results(tmp_path)
    (tmp_path / "deep.json").write_text("[" * DEEP + "]" * DEEP)
    (tmp_path / "deep-line.jsonl").write_text(
        "\n".join([record("before"), '{"recipe": ' + "[" * DEEP + "]" * DEEP + "}", record("after")]) + "\n"
    )
    got = collect("*", tmp_path)
    assert [row["recipe_name"] for row in got.results] == ["before", "after", "jq", "fd", "rg"]
    assert [(w.path, w.line) for w in got.warnings] == [("deep-line.jsonl", 2), ("deep.json", 1)]
    line_warning, file_warning = (w.message for w in got.warnings)
    assert line_warning.startswith("unreadable JSON value (RecursionError: maximum recursion depth exceeded")
    assert line_warning.endswith("; skipped to the next value")
    assert file_warning.endswith(ALL_OR_NOTHING)
    assert "RecursionError" in file_warning


def test_an_integer_past_the_digit_limit_costs_its_line_or_its_document(tmp_path: Path) -> None:
    (tmp_path / "records.jsonl").write_text(
        "\n".join([record("a"), f'{{"recipe": "b", "platform": "p", "exit_code": {HUGE_INT}}}', record("c")])
    )
    (tmp_path / "validation-results-x.json").write_text(
        f'[{{"recipe": "d", "platform": "p", "status": "fail", "exit_code": {HUGE_INT}}}]'
    )
    got = collect("*", tmp_path)
    assert [row["recipe_name"] for row in got.results] == ["a", "c"]
    assert [(w.path, w.line) for w in got.warnings] == [
        ("records.jsonl", 2),
        ("validation-results-x.json", 1),
    ]
    assert all("Exceeds the limit (4300 digits)" in w.message for w in got.warnings)
    assert got.warnings[1].message.endswith(ALL_OR_NOTHING)


def test_out_of_range_timestamps_are_a_warning_and_the_row_is_kept(tmp_path: Path) -> None:
    (tmp_path / "records.jsonl").write_text(
        "\n".join([record("a", timestamp=TOO_EARLY), record("b", timestamp="2026-03-01T00:00:00Z")]) + "\n"
    )
    (tmp_path / "report.xml").write_text(
        '<testsuites>\n<testsuite name="s" timestamp="2026-02-01T00:00:00">\n<testcase name="x"/>\n'
        f'</testsuite>\n<testsuite name="t" timestamp="{TOO_LATE}">\n<testcase name="y"/>\n'
        "</testsuite>\n</testsuites>\n"
    )
    got = collect("*", tmp_path)
    assert [row["recipe_name"] for row in got.results] == ["a", "b", "x", "y"]
    assert [(w.path, w.line, w.message) for w in got.warnings] == [
        ("records.jsonl", 1, f"timestamp {TOO_EARLY!r} is out of range in UTC; ignored, the row is kept"),
        ("report.xml", 5, f"timestamp {TOO_LATE!r} is out of range in UTC; ignored, the row is kept"),
    ]
    assert got.earliest is not None and got.earliest.isoformat() == "2026-02-01T00:00:00+00:00"


def test_an_io_error_while_reading_is_one_warning_and_the_next_file_is_read(tmp_path: Path) -> None:
    # A real file whose read() fails with EIO: /proc/PID/mem of a live process is a regular
    # file, and reading it at offset 0 (never mapped) is an I/O error. No mock stands in.
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        proc = Path(f"/proc/{sleeper.pid}")
        assert (proc / "mem").is_file()
        got = collect("mem\nstatus", proc)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert got.files == ["mem", "status"]  # the second file was still read
    assert [(w.path, w.line) for w in got.warnings] == [("mem", None), ("status", 1)]
    assert got.warnings[0].message == f"cannot be read ({os.strerror(5)}); nothing collected from this file"
    assert got.warnings[1].message.startswith("not a shape batch-metrics reads")


@pytest.mark.parametrize(
    ("name", "text", "kept", "line"),
    [
        ("deep.json", "[" * DEEP + "]" * DEEP, 0, 1),
        (
            "huge.jsonl",
            f'{{"recipe": "h", "platform": "p", "exit_code": {HUGE_INT}}}\n{record("kept")}\n',
            1,
            1,
        ),
        ("early.jsonl", record("early", timestamp=TOO_EARLY) + "\n", 1, 1),
        (
            "late.xml",
            f'<testsuite name="s" timestamp="{TOO_LATE}">\n<testcase name="late"/>\n</testsuite>',
            1,
            1,
        ),
        ("cut.xml", '<testsuite name="s">\n<testcase name="a"/>\n<testcase name="b">\n<fail', 0, 4),
    ],
    ids=["deep-json", "huge-int", "early-timestamp", "late-suite-timestamp", "cut-junit"],
)
def test_from_a_runners_point_of_view(tmp_path: Path, name: str, text: str, kept: int, line: int) -> None:
    github = tmp_path / "github"
    for part in ("workspace/results", "home", "file_commands"):
        (github / part).mkdir(parents=True)
    good_results(github / "workspace/results")
    (github / "workspace/results" / name).write_text(text)
    run = run_entrypoint(github, {"results": "results/*", "dry-run": "true", "ecosystem": "npm"})
    assert run.code == 0, run.stdout + run.stderr
    payload = json.loads((github / "workspace/batch-metrics-payload.json").read_bytes())
    assert payload["total_recipes"] == len(ROWS) + kept
    assert run.outputs["status"] == "dry-run" and run.outputs["total"] == str(len(ROWS) + kept)
    commands = [parse_command(line) for line in run.stdout.splitlines() if line.startswith("::")]
    about_files = [
        properties for command, properties, _ in commands if command == "warning" and "file" in properties
    ]
    assert about_files == [{"file": f"results/{name}", "line": str(line)}]
    assert "unexpected" not in run.stdout + run.stderr


# --- §2: linear whatever the file holds (the time is in the bench; here, the answers) ------------------


def test_many_malformed_lines_each_cost_their_line(tmp_path: Path) -> None:
    lines = []
    for index in range(200):
        lines += [record(f"r{index}"), '{"recipe": "broken", ', "not json at all", "[1, 2"]
    (tmp_path / "r.jsonl").write_text("\n".join(lines) + "\n")
    got = collect("r.jsonl", tmp_path)
    assert [row["recipe_name"] for row in got.results] == [f"r{index}" for index in range(200)]
    assert len(got.warnings) == MAX_WARNINGS_PER_FILE + 1
    assert (
        got.warnings[-1].message == f"{200 * 2 - MAX_WARNINGS_PER_FILE} more warnings in this file not shown"
    )
    assert [w.line for w in got.warnings[:4]] == [2, 4, 6, 8]


def test_bad_lines_before_the_first_good_one_are_all_counted(tmp_path: Path) -> None:
    # Telling the format apart reads up to the first good value; the lines before it still count.
    bad = 3 * MAX_WARNINGS_PER_FILE
    (tmp_path / "r.jsonl").write_text('{"recipe": "cut\n' * bad + record("first") + "\n" + record("second"))
    got = collect("r.jsonl", tmp_path)
    assert [row["recipe_name"] for row in got.results] == ["first", "second"]
    assert [w.line for w in got.warnings[:-1]] == list(range(1, MAX_WARNINGS_PER_FILE + 1))
    assert got.warnings[-1].message == f"{bad - MAX_WARNINGS_PER_FILE} more warnings in this file not shown"


def test_nested_suites_give_platforms_and_logs_as_flat_ones_do(tmp_path: Path) -> None:
    depth = 300
    opening = "".join(
        f'<testsuite name="s{level}">'
        + ('<properties><property name="platform" value="darwin-arm64"/></properties>' if level == 3 else "")
        + f'<testcase name="c{level}"/>'
        for level in range(depth)
    )
    closing = "<system-out>suite log</system-out></testsuite>" * depth
    failing = '<testcase name="bad"><failure type="deterministic">it broke</failure></testcase>'
    (tmp_path / "nested.xml").write_text(f"<testsuites>{opening}{failing}{closing}</testsuites>")
    rows = {row["recipe_name"]: row for row in collect("nested.xml", tmp_path).results}
    assert len(rows) == depth + 1
    assert [rows[f"c{level}"].get("platform") for level in (0, 2, 3, 4, depth - 1)] == [
        None, None, "darwin-arm64", "darwin-arm64", "darwin-arm64"
    ]  # fmt: skip
    # Every suite holds the one failure, and every suite's log joins it, innermost first.
    assert (rows["bad"].get("error_message") or "").startswith("it broke\nsuite log\nsuite log")


# --- §3: memory bounded whatever one element holds --------------------------------------------------------


def test_xml_that_declares_entities_is_refused_without_expanding_them(tmp_path: Path) -> None:
    entity = "x" * 240
    body = "&e;" * 2_000_000  # 6 MB here; expanded, 480 MB of text
    (tmp_path / "bomb.xml").write_text(
        f'<!DOCTYPE testsuite [<!ENTITY e "{entity}">]>\n<testsuite name="s">\n'
        f'<testcase name="t"><failure>{body}</failure></testcase></testsuite>'
    )
    good_results(tmp_path)
    tracemalloc.start()
    try:
        got = collect("*", tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [row["recipe_name"] for row in got.results] == ["jq", "fd", "rg"]
    assert [(w.path, w.line, w.message) for w in got.warnings] == [
        ("bomb.xml", 1, f"declares the entity 'e' in its DTD, which is refused; {ALL_OR_NOTHING}")
    ]
    assert peak < 8 * 2**20


def test_a_huge_failure_text_is_streamed_keeping_its_start_and_end(tmp_path: Path) -> None:
    log = "START " + "log line\n" * 1_000_000 + "END"  # 9 MB of literal text in one element
    (tmp_path / "big.xml").write_text(
        f'<testsuite name="s"><testcase name="t"><failure message="m">{log}</failure></testcase></testsuite>'
    )
    tracemalloc.start()
    try:
        [row] = collect("big.xml", tmp_path, max_message_chars=4096).results
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = row.get("error_message") or ""
    assert len(message) == 4096
    assert message.startswith("m\nSTART log line") and message.endswith("log line\nEND")
    whole = len("m\n") + len(log)
    assert f"[... {whole - 4096} characters cut ...]" in message
    assert peak < 2 * 2**20  # the text alone is 9 MB


# --- §4: a whole document counts all or nothing; line formats keep their good lines ---------------------


def test_a_junit_report_cut_off_counts_nothing(tmp_path: Path) -> None:
    (tmp_path / "cut.xml").write_text(
        '<testsuites><testsuite name="s" tests="3" failures="1">\n'
        '<testcase name="a"/>\n<testcase name="b"/>\n<testcase name="c"><failure messa'
    )
    got = collect("cut.xml", tmp_path)
    assert got.results == []
    assert [(w.path, w.line, w.message) for w in got.warnings] == [
        ("cut.xml", 4, f"malformed XML: unclosed token: line 4, column 19; {ALL_OR_NOTHING}")
    ]


def test_a_validation_results_array_cut_off_counts_nothing(tmp_path: Path) -> None:
    text = json.dumps(ROWS * 50, indent=2)
    (tmp_path / "validation-results-cut.json").write_text(text[: len(text) * 2 // 3])
    got = collect("*.json", tmp_path)
    assert got.results == []
    [warning] = got.warnings
    assert warning.line == 1 and warning.message.startswith("malformed JSON (")
    assert warning.message.endswith(ALL_OR_NOTHING)


def test_line_formats_cut_off_keep_their_good_lines(tmp_path: Path) -> None:
    (tmp_path / "r.jsonl").write_text(record("a") + "\n" + record("b") + "\n" + record("c")[:30])
    got = collect("r.jsonl", tmp_path)
    assert [row["recipe_name"] for row in got.results] == ["a", "b"]
    assert [(w.line, w.message.split(" (")[0]) for w in got.warnings] == [(3, "malformed JSON")]


# --- §5: JUnit cases that used to be lost -------------------------------------------------------------------


def test_testcases_without_names_are_counted_by_suite_and_position(tmp_path: Path) -> None:
    # Shaped like EnricoMi/publish-unit-test-result-action's no-attributes.xml.
    (tmp_path / "no-attributes.xml").write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n<testsuites>\n  <testsuite>\n    <testcase/>\n'
        "    <testcase>\n      <skipped/>\n    </testcase>\n"
        "    <testcase>\n      <failure/>\n    </testcase>\n"
        "    <testcase>\n      <error/>\n    </testcase>\n  </testsuite>\n</testsuites>\n"
    )
    (tmp_path / "named-suite.xml").write_text('<testsuite name="unit"><testcase/><testcase/></testsuite>')
    got = collect("*.xml", tmp_path)
    assert [(row["recipe_name"], row["result"], row.get("error_category")) for row in got.results] == [
        ("unit#1", "passed", None),
        ("unit#2", "passed", None),
        ("testsuite#1", "passed", None),
        ("testsuite#2", "skipped", None),
        ("testsuite#3", "failed", "failure"),
        ("testsuite#4", "failed", "error"),
    ]
    assert got.warnings == []


def test_a_suite_that_declares_tests_but_holds_none_is_a_warning(tmp_path: Path) -> None:
    (tmp_path / "empty-suite.xml").write_text(
        '<testsuites>\n<testsuite name="lost" tests="6" failures="1">\n</testsuite>\n'
        '<testsuite name="fine" tests="1"><testcase name="ok"/></testsuite>\n</testsuites>'
    )
    got = collect("*.xml", tmp_path)
    assert [row["recipe_name"] for row in got.results] == ["ok"]
    assert [(w.path, w.line, w.message) for w in got.warnings] == [
        ("empty-suite.xml", 2, "testsuite 'lost' declares tests='6' but holds no testcase; none counted")
    ]


@pytest.mark.parametrize(
    "children",
    [
        '<failure type="assert">f</failure><error type="crash">e</error>',
        '<error type="crash">e</error><failure type="assert">f</failure>',
    ],
)
def test_an_error_outranks_a_failure_in_either_order(tmp_path: Path, children: str) -> None:
    (tmp_path / "r.xml").write_text(
        f'<testsuite name="s"><testcase name="t">{children}</testcase></testsuite>'
    )
    [row] = collect("r.xml", tmp_path).results
    assert (row["result"], row.get("error_category"), row.get("error_message")) == ("failed", "crash", "e")
