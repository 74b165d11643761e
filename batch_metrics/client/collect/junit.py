"""JUnit XML into rows, streamed through expat's handlers.

A testcase with `<failure>` or `<error>` is failed (category: the element's `type`, else its
tag; an error outranks a failure), with `<skipped>` skipped, else its `status` attribute decides
when it is a known spelling, else passed. The recipe is `classname.name` (or `name`), the
duration `time`, the platform a `platform` property of the testcase or its suite (the ecosystem is
the caller's); a suite's `system-out`/`system-err` joins the message of its only failed case.

Retries count in `attempts`: Surefire's `<flakyFailure>`/`<flakyError>` (failed, then passed on a
rerun) and `<rerunFailure>`/`<rerunError>` (failed on every rerun) add one each, and a testcase
repeated under its name in its suite (as Gradle's test-retry writes them) is one result, passed
when any attempt passed, its durations added up.

Time is linear in the file however deeply suites nest: every element costs O(1) (a
suite's platform reaches its testcases through a table resolved once at the end, and
"the suite's only failure" is told by counting). A document that declares entities in
its DTD is refused (no runner writes them; expanded, a few MB become GBs), and the text
of a failure or a suite log is kept only as far as the message limit can hold, its
start and its end, so memory stays bounded whatever one element holds. A testcase with
neither `name` nor `classname` is named after its suite and position (`<suite>#3`); a
suite that declares tests but holds no testcase is a warning. A file that does not
parse to its end adds no rows (`FileRows.reject`).
"""

from __future__ import annotations

import math
from typing import Any, BinaryIO
from xml.parsers import expat

from batch_metrics.client.collect.bounds import bound_message
from batch_metrics.client.collect.rows import FileRows, brief, normalise_result
from batch_metrics.client.collect.source import Source

_XML_CHUNK = 1 << 16
_RETRIES = frozenset(("flakyFailure", "flakyError", "rerunFailure", "rerunError"))
_ERROR_FIELDS = ("error_category", "error_message")


class JunitCollector:
    name = "junit"

    def sniff(self, source: Source) -> bool:
        return source.start == b"<"

    def read(self, source: Source, rows: FileRows) -> None:
        source.stream.seek(0)
        read_junit(source.stream, rows)


def read_junit(stream: BinaryIO, rows: FileRows) -> None:
    """Every testcase of the JUnit document in `stream` as a row of `rows`, or a warning why not."""
    rows.whole = True
    try:
        _JunitReader(rows).parse(stream)
    except _NotJunit as error:
        rows.warn(1, f"<{error.tag[:40]}> is not JUnit XML (no testsuites or testsuite root); skipped")
    except _EntityDeclared as error:
        rows.reject(error.line, f"declares the entity {error.name[:40]!r} in its DTD, which is refused")
    except expat.ExpatError as error:
        rows.reject(error.lineno, f"malformed XML: {error}")


class _NotJunit(Exception):
    def __init__(self, tag: str) -> None:
        super().__init__(tag)
        self.tag = tag


class _EntityDeclared(Exception):
    def __init__(self, name: str, line: int) -> None:
        super().__init__(name)
        self.name, self.line = name, line


class _Text:
    """The character data of one element, holding only what `bound_message` keeps: its start and end."""

    __slots__ = ("dropped", "head", "limit", "tail")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.head = ""
        self.tail = ""
        self.dropped = 0  # characters streamed past between head and tail

    def add(self, data: str) -> None:
        room = self.limit - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
            if not data:
                return
        tail = self.tail + data
        if len(tail) > self.limit:
            self.dropped += len(tail) - self.limit
            tail = tail[-self.limit :]
        self.tail = tail

    def value(self) -> str:
        return self.head + self.tail


class _Suite:
    __slots__ = (
        "cases",
        "declared",
        "depth",
        "failed_before",
        "first_row",
        "index",
        "line",
        "logs",
        "name",
        "timestamp",
    )  # fmt: skip

    def __init__(self, attrs: dict[str, str], line: int, depth: int, index: int, first_row: int,
                 failed_before: int) -> None:  # fmt: skip
        self.name = attrs.get("name") or "testsuite"
        self.line, self.depth, self.index = line, depth, index
        self.first_row, self.failed_before = first_row, failed_before
        self.cases = 0
        self.declared = attrs.get("tests")
        self.timestamp = attrs.get("timestamp")
        self.logs: list[_Text] = []


class _JunitReader:
    """One JUnit file, streamed through expat's handlers into rows.

    Every element costs O(1): a suite's platform reaches its testcases through a table
    resolved once at the end, and "the suite's only failure" is told by counting, so
    deeply nested suites stay linear. Text is kept in `_Text`, bounded.
    """

    def __init__(self, rows: FileRows) -> None:
        self.rows = rows
        self.parser = expat.ParserCreate()
        self.parser.buffer_text = True
        self.parser.buffer_size = _XML_CHUNK
        self.parser.StartElementHandler = self._start
        self.parser.EndElementHandler = self._end
        self.parser.CharacterDataHandler = self._characters
        self.parser.EntityDeclHandler = self._entity_declared
        self.depth = 0
        self.open: list[_Suite] = []  # the suites being read, innermost last
        self.parents: list[int] = []  # of every suite, in order: its parent's index (-1: none)
        self.platforms: list[str | None] = []  # of every suite, in order: its own platform property
        self.loose_cases = 0  # testcases right under <testsuites>
        self.case: dict[str, str] | None = None
        self.case_line = self.case_depth = 0
        self.problem: tuple[str, dict[str, str], _Text] | None = None
        self.retries = 0  # <flakyFailure>, <rerunFailure> and their errors: attempts before the last
        self.seen: dict[tuple[int, str], dict[str, Any]] = {}  # (suite, name) -> its row, for repeats
        self.skipped = False
        self.case_platform: str | None = None
        self.text: _Text | None = None
        self.text_depth = 0
        self.failed = 0
        self.last_failed: dict[str, Any] | None = None
        self.unplaced: list[tuple[dict[str, Any], int]] = []  # rows waiting for their suite's platform

    def parse(self, stream: BinaryIO) -> None:
        parser = self.parser
        try:
            while chunk := stream.read(_XML_CHUNK):
                self.rows.line = parser.CurrentLineNumber
                parser.Parse(chunk, False)
            parser.Parse(b"", True)
        finally:
            # The parser holds this reader's handlers and the reader the parser: break the
            # cycle, or each file's parser lives on while the cyclic GC is paused.
            del self.parser
        self._place_rows()

    def _entity_declared(self, name: str, *_: object) -> None:
        raise _EntityDeclared(name, self.parser.CurrentLineNumber)

    def _characters(self, data: str) -> None:
        if self.text is not None:
            self.text.add(data)

    def _keep_text(self) -> _Text:
        self.text, self.text_depth = _Text(self.rows.limit), self.depth
        return self.text

    def _start(self, tag: str, attrs: dict[str, str]) -> None:
        if self.depth == 0 and tag not in ("testsuites", "testsuite"):
            raise _NotJunit(tag)
        self.depth += 1
        if self.case is not None:
            self._case_child(tag, attrs)
        elif tag == "testcase":
            self.case, self.case_line, self.case_depth = attrs, self.parser.CurrentLineNumber, self.depth
            self.problem, self.skipped, self.case_platform, self.retries = None, False, None, 0
        elif tag == "testsuite":
            index, line = len(self.parents), self.parser.CurrentLineNumber
            self.parents.append(self.open[-1].index if self.open else -1)
            self.platforms.append(None)
            self.open.append(_Suite(attrs, line, self.depth, index, len(self.rows.rows), self.failed))
        elif self.open:
            suite = self.open[-1]
            if tag in ("system-out", "system-err") and self.depth == suite.depth + 1:
                suite.logs.append(self._keep_text())
            elif tag == "property" and attrs.get("name") == "platform" and attrs.get("value"):
                self.platforms[suite.index] = attrs["value"]

    def _case_child(self, tag: str, attrs: dict[str, str]) -> None:
        if tag in _RETRIES and self.depth == self.case_depth + 1:
            self.retries += 1
        elif tag in ("failure", "error"):
            if self.problem is None or (tag == "error" and self.problem[0] == "failure"):
                self.problem = (tag, attrs, self._keep_text())
        elif tag == "skipped":
            self.skipped = True
        elif tag == "property" and attrs.get("name") == "platform" and attrs.get("value"):
            self.case_platform = attrs["value"]

    def _end(self, tag: str) -> None:
        if self.text is not None and self.depth == self.text_depth:
            self.text = None
        if self.case is not None:
            if self.depth == self.case_depth:
                self._end_case(self.case)
                self.case = None
        elif tag == "testsuite":
            self._end_suite(self.open.pop())
        self.depth -= 1

    def _case_name(self, attrs: dict[str, str]) -> str:
        name, classname = attrs.get("name") or "", attrs.get("classname") or ""
        if self.open:
            suite = self.open[-1]
            suite.cases += 1
            where, position = suite.name, suite.cases
        else:
            self.loose_cases += 1
            where, position = "testsuites", self.loose_cases
        if classname and name:
            return f"{classname}.{name}"
        return name or classname or f"{where}#{position}"

    def _end_case(self, attrs: dict[str, str]) -> None:
        rows = self.rows
        row: dict[str, Any] = {"recipe_name": self._case_name(attrs), "ecosystem": rows.ecosystem,
                               "result": "passed"}  # fmt: skip
        if self.problem is not None:
            tag, problem, text = self.problem
            row["result"] = "failed"
            row["error_category"] = problem.get("type") or tag
            message = "\n".join(part for part in (problem.get("message"), text.value().strip()) if part)
            row["error_message"] = bound_message(message, rows.limit, text.dropped) if message else None
        elif self.skipped:
            row["result"] = "skipped"
        else:
            status = attrs.get("status")
            if status:  # no <failure>, <error> or <skipped> decided it
                row["result"] = normalise_result(status) or "passed"
        time = attrs.get("time")
        if time:
            try:
                seconds = float(time)
            except ValueError:
                seconds = math.nan
            if 0.0 <= seconds < math.inf:  # NaN, infinities and negatives are "not given"
                row["duration_seconds"] = seconds
        if self.retries:
            row["attempts"] = self.retries + 1
        key = (self.open[-1].index if self.open else -1, row["recipe_name"])
        first = self.seen.setdefault(key, row)
        if first is not row:  # the same test again in its suite: another attempt of one result
            self._another_attempt(first, row)
            return
        if row["result"] == "failed":
            self.failed += 1
            self.last_failed = row
        if self.case_platform:
            row["platform"] = self.case_platform
        elif self.open:
            self.unplaced.append((row, self.open[-1].index))
        rows.add(self.case_line, row)

    def _another_attempt(self, first: dict[str, Any], again: dict[str, Any]) -> None:
        """Fold a repeated testcase into its first row: passed when any attempt passed, else the last
        attempt's outcome and error; attempts and durations add up."""
        first["attempts"] = first.get("attempts", 1) + again.get("attempts", 1)
        if "duration_seconds" in again:
            first["duration_seconds"] = first.get("duration_seconds", 0.0) + again["duration_seconds"]
        was_failed = first["result"] == "failed"
        if first["result"] != "passed":
            for name in _ERROR_FIELDS:
                first.pop(name, None)
            first.update({name: again[name] for name in ("result", *_ERROR_FIELDS) if name in again})
        if first["result"] == "failed":
            self.failed += 0 if was_failed else 1
            self.last_failed = first
        elif was_failed:
            self.failed -= 1
            if self.last_failed is first:
                self.last_failed = None

    def _end_suite(self, suite: _Suite) -> None:
        """What a suite says about all its testcases: its timestamp, its log, or that it lost them."""
        rows = self.rows
        rows.stamp(suite.line, suite.timestamp)
        if suite.logs and self.failed - suite.failed_before == 1 and self.last_failed is not None:
            log = "\n".join(text for text in (kept.value().strip() for kept in suite.logs) if text)
            row = self.last_failed
            message = "\n".join(filter(None, (row.get("error_message"), log)))
            dropped = sum(kept.dropped for kept in suite.logs)
            row["error_message"] = bound_message(message, rows.limit, dropped) if message else None
        if len(rows.rows) == suite.first_row and (suite.declared or "0").strip() not in ("", "0"):
            rows.warn(
                suite.line,
                f"testsuite {brief(suite.name)} declares tests={brief(suite.declared, 12)} but holds no "
                "testcase; none counted",
            )

    def _place_rows(self) -> None:
        """Give each testcase without a platform of its own the one of its nearest suite that has one."""
        platforms = self.platforms
        for index, parent in enumerate(self.parents):  # a parent always comes before its children
            if platforms[index] is None and parent >= 0:
                platforms[index] = platforms[parent]
        for row, suite_index in self.unplaced:
            platform = platforms[suite_index]
            if platform:
                row["platform"] = platform
