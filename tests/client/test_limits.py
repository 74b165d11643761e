"""The client never sends what the endpoint refuses: every text a collector produces fits its limit, a
number out of range is left out, a time out of its window is not the batch's start (issue 19).

The payloads built here are checked with the contract's own validator, the one the endpoint runs;
tests/endpoint/test_limits.py sends one such batch to the endpoint on both databases.
"""

from __future__ import annotations

import json
from pathlib import Path
from xml.sax.saxutils import quoteattr

from batch_metrics.client.actions import read_inputs
from batch_metrics.client.collect import collect
from batch_metrics.client.payload import build_payload
from batch_metrics.models import (
    MAX_BATCH_ID,
    MAX_ECOSYSTEM,
    MAX_ERROR_CATEGORY,
    MAX_ERROR_MESSAGE,
    MAX_PLATFORM,
    MAX_RECIPE_NAME,
    PAYLOAD_ADAPTER,
    BatchPayload,
)

LONG = 4000


def junit_of_long_values(path: Path) -> None:
    """What a JUnit collector met in the wild: 4,000-character names, types and platforms, twice, alike
    but for the middle of the name (parametrised test names)."""
    cases = "".join(
        f"<testcase classname={quoteattr('c' * LONG)} name={quoteattr('a' * LONG + middle + 'z' * LONG)}>"
        f"<properties><property name='platform' value={quoteattr('p' * LONG)}/></properties>"
        f"<failure type={quoteattr('t' * LONG)} message={quoteattr('m' * 3 * LONG)}/></testcase>"
        for middle in ("[x]", "[y]")
    )
    path.write_text(f"<testsuite name='s'>{cases}</testsuite>")


def test_junits_long_names_types_and_platforms_fit_their_limits_and_stay_apart(tmp_path: Path) -> None:
    junit_of_long_values(tmp_path / "junit.xml")
    got = collect("junit.xml", tmp_path, ecosystem="e" * LONG)
    assert got.warnings == []
    first, second = got.results
    assert first["recipe_name"] != second["recipe_name"]  # the digest of the whole keeps them apart
    for row in got.results:
        assert len(row["recipe_name"]) == MAX_RECIPE_NAME and row["recipe_name"].startswith("c" * 100)
        assert row["recipe_name"].endswith("z" * 100)
        assert (len(row["platform"] or ""), len(row["error_category"] or "")) == (
            MAX_PLATFORM,
            MAX_ERROR_CATEGORY,
        )
        assert len(row["ecosystem"]) == MAX_ECOSYSTEM
        assert len(row["error_message"] or "") == MAX_ERROR_MESSAGE
    payload = build_payload(got, batch_id="b" * LONG)
    assert len(payload["batch_id"]) == MAX_BATCH_ID
    PAYLOAD_ADAPTER.validate_python(payload)  # what the endpoint runs: it would store this batch


def test_a_duration_out_of_range_is_left_out_and_its_row_kept(tmp_path: Path) -> None:
    rows = [{"recipe": name, "platform": "linux", "status": "pass", "duration_seconds": seconds}
            for name, seconds in (("huge", 1e308), ("negative", -1), ("fine", 12.5))]  # fmt: skip
    (tmp_path / "validation-results.json").write_text(json.dumps(rows))
    got = collect("*.json", tmp_path, ecosystem="npm")
    assert [(row["recipe_name"], row.get("duration_seconds")) for row in got.results] == [
        ("huge", None), ("negative", None), ("fine", 12.5)
    ]  # fmt: skip
    assert [warning.message for warning in got.warnings] == [
        "row 1 ('huge'): duration_seconds 1e+308 is outside 0 to 1e+07 seconds; left out; the row is kept",
        "row 2 ('negative'): duration_seconds -1 is outside 0 to 1e+07 seconds; left out; the row is kept",
    ]
    PAYLOAD_ADAPTER.validate_python(build_payload(got))


def test_a_ready_payloads_long_values_are_fitted_and_it_is_sent(tmp_path: Path) -> None:
    ready = {"batch_id": "r" * LONG, "ecosystem": "npm", "started_at": "2026-02-19T14:31:25Z",
             "results": [{"recipe_name": "n" * LONG, "ecosystem": "npm", "result": "failed",
                          "error_message": "m" * LONG * 2, "duration_seconds": 1e308}]}  # fmt: skip
    (tmp_path / "payload.json").write_text(json.dumps(ready))
    got = collect("payload.json", tmp_path)
    assert [warning.message for warning in got.warnings] == [
        "results.0: duration_seconds 1e+308 is outside 0 to 1e+07 seconds; left out"
    ]
    [payload] = got.payloads
    assert (len(payload["batch_id"]), len(payload["results"][0]["recipe_name"])) == (
        MAX_BATCH_ID,
        MAX_RECIPE_NAME,
    )
    assert "characters cut" in (payload["results"][0].get("error_message") or "")
    PAYLOAD_ADAPTER.validate_python(build_payload(got))


def test_timestamps_outside_the_window_never_become_the_batchs_start(tmp_path: Path) -> None:
    lines = [
        {"recipe": "old", "platform": "linux", "exit_code": 1, "timestamp": "1970-01-01T00:00:00Z"},
        {"recipe": "ahead", "platform": "linux", "exit_code": 1, "timestamp": "9999-12-31T00:00:00Z"},
        {"recipe": "real", "platform": "linux", "exit_code": 1, "timestamp": "2026-02-19T14:31:25Z"},
    ]
    (tmp_path / "failures.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    got = collect("*.jsonl", tmp_path, ecosystem="npm")
    payload: BatchPayload = build_payload(got)
    assert payload["started_at"] == "2026-02-19T14:31:25Z"
    assert sorted(warning.message for warning in got.warnings) == [
        "timestamp '1970-01-01T00:00:00Z': 1970-01-01T00:00:00Z is before 2000-01-01T00:00:00Z; "
        "ignored, the row is kept",
        "timestamp '9999-12-31T00:00:00Z': 9999-12-31T00:00:00Z is more than a day in the future; "
        "ignored, the row is kept",
    ]
    assert len(payload["results"]) == 3


def test_inputs_out_of_the_contract_are_cut_or_refused_with_a_word_each() -> None:
    inputs, problems = read_inputs(
        {"INPUT_BATCH-ID": "b" * 300, "INPUT_ECOSYSTEM": "e" * 65, "INPUT_STARTED-AT": "1999-12-31T00:00:00Z"}
    )
    assert (len(inputs.batch_id or ""), len(inputs.ecosystem or ""), inputs.started_at) == (
        MAX_BATCH_ID,
        MAX_ECOSYSTEM,
        None,
    )
    assert [problem.split(";")[0].split(" is ")[0] for problem in problems] == [
        "input ecosystem", "input batch-id", "input started-at: 1999-12-31T00:00:00Z"
    ]  # fmt: skip
