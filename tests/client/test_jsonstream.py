"""The JSON reader every JSON format shares, tested directly: where each value starts, what a malformed
one costs, and that reading always goes on (docs/formats.md: what a bad file costs)."""

from __future__ import annotations

import io
from typing import Any

import pytest

from batch_metrics.client.collect.jsonstream import Problem, json_values


def read(data: bytes) -> list[tuple[int, Any]]:
    return list(json_values(io.BytesIO(data)))


def test_one_value_per_line_each_with_its_line() -> None:
    assert read(b'{"a":1}\n{"a":2}\n\n{"a":3}\n') == [(1, {"a": 1}), (2, {"a": 2}), (4, {"a": 3})]


def test_pretty_printed_values_one_after_another_start_where_they_open() -> None:
    assert read(b'{\n  "a": 1\n}\n{\n  "a": 2\n}\n') == [(1, {"a": 1}), (4, {"a": 2})]


def test_an_array_whose_items_start_at_column_0_is_one_value() -> None:
    """The items open lines of their own, so the array spans several pieces: read as one value."""
    data = b"[\n" + b"".join(b'{"n":%d},\n' % n for n in range(199)) + b'{"n":199}\n]\n'
    [(line, value)] = read(data)
    assert line == 1 and value == [{"n": n} for n in range(200)]


def test_a_malformed_line_is_one_problem_and_the_next_line_is_read() -> None:
    assert read(b'garbage\n{"a":1}\n') == [(1, Problem("malformed JSON (Expecting value)")), (2, {"a": 1})]
    found = read(b'{"a":1}\n{"a": tru}\n{"a":3}\n')
    assert found[0] == (1, {"a": 1}) and found[-1] == (3, {"a": 3})
    assert found[1][0] == 2 and isinstance(found[1][1], Problem) and found[1][1].skipped


def test_the_error_line_is_counted_within_the_file_not_the_piece() -> None:
    """Many good lines first: the problem's line is where it is in the file."""
    data = b"".join(b'{"n":%d}\n' % n for n in range(1000)) + b"{oops\n"
    *good, (line, problem) = read(data)
    assert len(good) == 1000 and line == 1001 and isinstance(problem, Problem)


def test_two_values_on_one_line_are_both_read() -> None:
    assert read(b'{"a":1} {"b":2}\n') == [(1, {"a": 1}), (1, {"b": 2})]


def test_a_bom_and_leading_blank_lines_are_not_values() -> None:
    assert read(b'\xef\xbb\xbf{"a":1}\n') == [(1, {"a": 1})]
    assert read(b'  \n\n{"a":1}\n') == [(3, {"a": 1})]
    assert read(b"") == [] and read(b"\n\n  \n") == []


def test_undecodable_bytes_are_replaced_and_said_once() -> None:
    found = read(b'{"a":"\xff"}\n{"b":"\xfe"}\n{"c":3}\n')
    notes = [item for item in found if isinstance(item[1], Problem)]
    assert notes == [(1, Problem("not UTF-8 text; undecodable bytes replaced", skipped=False))]
    assert [value for _, value in found if not isinstance(value, Problem)] == [
        {"a": "\ufffd"}, {"b": "\ufffd"}, {"c": 3},
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"[" * 100_000 + b"\n", "RecursionError"),  # nested past every parser's limit
        (b'{"n": ' + b"9" * 5000 + b"}\n", "ValueError"),  # past Python's 4,300-digit limit
    ],
)
def test_a_value_no_parser_can_hold_is_one_problem_and_reading_goes_on(data: bytes, why: str) -> None:
    (line, problem), after = read(data + b'{"a":1}\n')
    assert line == 1 and isinstance(problem, Problem) and why in problem.message
    assert after == (2, {"a": 1})
