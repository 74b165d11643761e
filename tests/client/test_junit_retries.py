"""Retries in JUnit XML: Surefire's rerun elements and repeated testcases become one result with its attempts,
passed when a retry passed (flaky within a run), so the endpoint can tell that apart from a failure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from batch_metrics.client.collect import collect

SUITE = (
    '<testsuite name="{name}"><properties><property name="platform" value="linux"/></properties>'
    "{cases}</testsuite>"
)


def write(path: Path, *suites: str) -> str:
    path.write_text(f'<?xml version="1.0"?><testsuites>{"".join(suites)}</testsuites>', encoding="utf-8")
    return path.name


def rows(workspace: Path, name: str) -> dict[str, dict[str, Any]]:
    got = collect(name, workspace, ecosystem="gradle")
    assert got.warnings == []
    return {row["recipe_name"]: dict(row) for row in got.results}


def test_surefire_reruns_count_as_attempts_of_one_result(fixtures: Path) -> None:
    found = rows(fixtures, "junit/surefire-flaky.xml")
    assert {name: (row["result"], row.get("attempts")) for name, row in found.items()} == {
        "example.ExampleTests.throwsAlways": ("failed", 4),  # an error and three reruns that erred again
        "example.ExampleTests.failsAssertionAlways": ("failed", 4),
        "example.ExampleTests.failsAssertionOnlyFirstAttempt": ("passed", 2),  # flaky: passed on a rerun
        "example.ExampleTests.throwsOnlyFirstAttempt": ("passed", 2),
    }
    always = found["example.ExampleTests.failsAssertionAlways"]
    assert always["error_category"] == "org.opentest4j.AssertionFailedError"  # the first failure's, kept
    assert "error_message" not in found["example.ExampleTests.failsAssertionOnlyFirstAttempt"]


def test_a_testcase_repeated_in_its_suite_is_one_result_passed_when_a_retry_passed(tmp_path: Path) -> None:
    case = '<testcase classname="Cache" name="{}" time="{}">{}</testcase>'
    cases = "".join((
        case.format("evicts", 1.5, '<failure message="timeout">first</failure>'),
        case.format("evicts", 1.0, '<failure message="timeout">second</failure>'),
        case.format("evicts", 0.5, ""),
        case.format("loads", 2, '<failure message="a">one</failure>'),
        case.format("loads", 2, '<error type="IOError" message="b">two</error>'),
        case.format("stable", 1, ""),
    ))  # fmt: skip
    found = rows(tmp_path, write(tmp_path / "TEST-Cache.xml", SUITE.format(name="Cache", cases=cases)))
    assert set(found) == {"Cache.evicts", "Cache.loads", "Cache.stable"}
    evicts = found["Cache.evicts"]
    assert (evicts["result"], evicts["attempts"], evicts["duration_seconds"]) == ("passed", 3, 3.0)
    assert "error_message" not in evicts and "error_category" not in evicts
    loads = found["Cache.loads"]  # failed every time: the last attempt's error
    assert (loads["result"], loads["attempts"], loads["error_category"]) == ("failed", 2, "IOError")
    assert loads["error_message"] == "b\ntwo"
    assert "attempts" not in found["Cache.stable"]


def test_the_same_name_in_two_suites_is_two_results(tmp_path: Path) -> None:
    one = SUITE.format(name="A", cases='<testcase classname="T" name="t"><failure>x</failure></testcase>')
    two = SUITE.format(name="B", cases='<testcase classname="T" name="t"/>').replace('"linux"', '"darwin"')
    got = collect(write(tmp_path / "two.xml", one, two), tmp_path)
    assert sorted((row["recipe_name"], row["platform"], row["result"]) for row in got.results) == [
        ("T.t", "darwin", "passed"), ("T.t", "linux", "failed"),
    ]  # fmt: skip


def test_a_suite_log_joins_its_only_failure_when_another_passed_on_a_retry(tmp_path: Path) -> None:
    cases = (
        '<testcase classname="S" name="retried"><failure message="flake">f</failure></testcase>'
        '<testcase classname="S" name="retried"/>'
        '<testcase classname="S" name="broken"><failure message="boom">b</failure></testcase>'
        "<system-out>the suite's log</system-out>"
    )
    found = rows(tmp_path, write(tmp_path / "log.xml", SUITE.format(name="S", cases=cases)))
    assert found["S.broken"]["error_message"] == "boom\nb\nthe suite's log"
    assert found["S.retried"]["result"] == "passed" and "error_message" not in found["S.retried"]
