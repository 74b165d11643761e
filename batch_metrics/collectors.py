"""Collectors: find result files by glob and turn what they hold into result rows.

Finding files. `patterns` holds one glob per line, relative to the workspace:
`**` crosses directories, `{a,b}` expands, a leading `!` excludes, blank lines and
lines starting with `#` are ignored. `**` does not enter hidden directories
(`.git`, `.venv`) or follow symlinked directories; name them in the pattern to read
them. An absolute pattern is accepted when it lies inside the workspace (it is made
relative, so `${{ github.workspace }}/results/*.json` works) and ignored with a
warning otherwise; so is any pattern holding `..`, and a matched symlink that
resolves outside the workspace is skipped with a warning. Directories are never
matched; files are read in sorted order.

Telling formats apart, by content only (the file name never counts), from the
first bytes after a UTF-8 BOM and blank space:

- `<` is JUnit XML (`junit`);
- `[` is a validation-results array (`validation-results`);
- `{` is decided by the keys of the first JSON value: `batch_id` + `results` is a
  ready payload (`payload`), `failures` + `schema_version` a failure record
  (`failure-records`), `recipe` + `platform` a per-record line (`ndjson`).

JSON files may hold one document, one value per line, or pretty-printed values
one after another. A file whose first value has none of those shapes (tsuku's
run summaries, say) gives one warning naming the file and nothing is guessed.
`fmt` forces one collector for every file.

Mapping (one row = one recipe on one platform):

- validation results and per-record lines: `recipe`, `platform`, `status`
  (per-record lines carry none: they list failures, so a record is `failed`
  unless its `exit_code` is 0); a failed row's `error_category` is the record's
  `category`, else `blocked` when `blocked_by` is set, else `exit_code_<n>`; its
  `error_message` says `exit code <n> after <k> attempt(s) blocked by <recipes>`;
- failure records: one failed row per entry of `failures`; the recipe is the
  `package_id` after its `<ecosystem>:` prefix, the platform the record's
  `environment`, the category the entry's `category`;
- JUnit: a testcase with `<failure>` or `<error>` is failed (category: the
  element's `type`, else its tag; message: its `message` and text; an error
  outranks a failure), with `<skipped>` skipped, else its `status` attribute
  decides when it is a known spelling (tst's `disabled`, GoogleTest's `notrun`), else passed. The
  recipe is `classname.name` (or `name`), the duration `time`, the platform and
  ecosystem a `platform` / `ecosystem` property of the testcase or its suite. A
  suite's `system-out`/`system-err` (Bazel writes the test log there) is added
  to the message when the suite has exactly one failed case.
- a ready payload is validated and kept whole in `Collection.payloads`.

Results are normalised to `passed` (pass, passed, success, succeeded, ok),
`failed` (fail, failed, failure, error, errored) or `skipped` (skip, skipped,
disabled, notrun); any other spelling is a warning naming file and line, and that row is
not counted: guessing would bend the success rate. The ecosystem is the
record's, else the `package_id` prefix, else the `ecosystem` argument, else
`unknown`. An `error_message` longer than `max_message_chars` keeps its start
and its end (where the command and the final error of a build log are) with a
marker saying how much was cut in between.

Nothing here raises for bad input: a malformed file, line or row becomes a
`CollectWarning` naming the file and line (at most `MAX_WARNINGS_PER_FILE` per
file, then one saying how many more), and everything else still counts.
Timestamps (record `timestamp`, `updated_at`, a payload's `started_at`, a
JUnit suite's `timestamp`) are read leniently, without a zone meaning UTC, and
the earliest becomes `Collection.earliest`.
"""

from __future__ import annotations

import gc
import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePath, PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from pydantic_core import ValidationError, from_json
from wcmatch import glob as wcglob

from batch_metrics.wire import PAYLOAD_VALIDATOR, RESULTS_VALIDATOR

if TYPE_CHECKING:
    from batch_metrics.models import BatchPayload, RecipeResult

FORMATS = ("payload", "validation-results", "ndjson", "failure-records", "junit")
MAX_WARNINGS_PER_FILE = 20

RESULT_SPELLINGS = {
    **dict.fromkeys(("pass", "passed", "success", "succeeded", "ok"), "passed"),
    **dict.fromkeys(("fail", "failed", "failure", "error", "errored"), "failed"),
    **dict.fromkeys(("skip", "skipped", "disabled", "notrun"), "skipped"),
}
_GLOB_FLAGS = wcglob.GLOBSTAR | wcglob.BRACE | wcglob.NODIR
_CUT_MARK = "\n[... {} characters cut ...]\n"
_HEAD_BYTES = 8192
_BOM = b"\xef\xbb\xbf"
_BLANK = b" \t\r\n"


@dataclass(frozen=True)
class CollectWarning:
    path: str  # workspace-relative; empty for a warning about the patterns themselves
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.message}" if where else self.message


@dataclass
class Collection:
    results: list[RecipeResult] = field(default_factory=list)
    warnings: list[CollectWarning] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    earliest: datetime | None = None
    payloads: list[BatchPayload] = field(default_factory=list)


def normalise_result(value: object) -> str | None:
    """`passed`, `failed` or `skipped` for a known spelling of an outcome, else None."""
    if not isinstance(value, str):
        return None
    return RESULT_SPELLINGS.get(value) or RESULT_SPELLINGS.get(value.strip().lower())


def parse_timestamp(value: object) -> datetime | None:
    """A UTC datetime from RFC 3339 or the near misses pipelines write, else None.

    Accepted besides ISO 8601: dashes in the time (`2026-03-08T01-58-35Z`, tsuku's
    `updated_at`), more than 6 fractional digits, lower-case `t` and `z`, no zone (UTC).
    """
    if not isinstance(value, str):
        return None
    text = value.strip().upper()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        date, sep, clock = text.partition("T")
        if sep and clock[2:3] == "-" and clock[5:6] == "-":
            clock = f"{clock[:2]}:{clock[3:5]}:{clock[6:]}"
        try:
            parsed = datetime.fromisoformat(date + sep + clock)
        except ValueError:
            return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def bound_message(message: str | None, limit: int) -> str | None:
    """At most `limit` characters: the start and the end of a long log, and how much was cut."""
    if message is None or len(message) <= limit:
        return message
    mark = _CUT_MARK.format(len(message) - limit)
    keep = max(limit - len(mark), 0)
    head = keep - keep // 2
    return (message[:head] + mark + message[len(message) - keep // 2 :])[:limit]


class FileRows:
    """The rows of one file and the line each came from, validated in one pass at the end."""

    def __init__(self, display: str, collection: Collection, ecosystem: str, limit: int) -> None:
        self.display = display
        self.collection = collection
        self.ecosystem = ecosystem
        self.limit = limit
        self.rows: list[dict[str, Any]] = []
        self.lines: list[int | None] = []
        self.stamps: list[object] = []
        self.warned = 0

    def warn(self, line: int | None, message: str) -> None:
        if self.warned < MAX_WARNINGS_PER_FILE:
            self.collection.warnings.append(CollectWarning(self.display, line, message))
        self.warned += 1

    def add(self, line: int | None, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self.lines.append(line)

    def finish(self) -> None:
        """Validate every row at once; a row that fails is dropped with a warning naming its line.

        The warning also gives the row's position among the file's rows, which is all
        that names a JUnit testcase (ElementTree keeps no line numbers).
        """
        rows = self.rows
        try:
            self.collection.results.extend(RESULTS_VALIDATOR.validate_python(rows))
        except ValidationError as error:
            bad: dict[int, str] = {}
            for problem in error.errors(include_url=False):
                index = int(problem["loc"][0])
                where = ".".join(map(str, problem["loc"][1:]))
                bad.setdefault(index, f"{where}: {problem['msg']}")
            for index, reason in bad.items():
                name = str(rows[index].get("recipe_name"))[:80]
                self.warn(self.lines[index], f"row {index + 1} ({name!r}): {reason}; row skipped")
            good = [row for index, row in enumerate(rows) if index not in bad]
            self.collection.results.extend(RESULTS_VALIDATOR.validate_python(good))
        self._note_earliest()
        if self.warned > MAX_WARNINGS_PER_FILE:
            hidden = self.warned - MAX_WARNINGS_PER_FILE
            self.collection.warnings.append(
                CollectWarning(self.display, None, f"{hidden} more warnings in this file not shown")
            )

    def _note_earliest(self) -> None:
        texts = {stamp for stamp in self.stamps if isinstance(stamp, str)}
        moments = [moment for moment in map(parse_timestamp, texts) if moment is not None]
        earliest = self.collection.earliest
        if moments and (earliest is None or min(moments) < earliest):
            self.collection.earliest = min(moments)


def _keys_of(value: Any) -> str:
    if isinstance(value, dict):
        return "keys: " + (", ".join(sorted(map(str, value))[:10]) or "none")
    return f"a JSON {type(value).__name__}"


class Source:
    """One open result file: its first bytes for sniffing and, for JSON, its values, parsed once."""

    def __init__(self, stream: BinaryIO, head: bytes, rows: FileRows) -> None:
        self.stream = stream
        self.start = head.removeprefix(_BOM).lstrip(_BLANK)[:1]
        self.rows = rows
        self._values: Iterator[tuple[int, Any]] | None = None
        self._first: tuple[int, Any] | None = None

    def first_value(self) -> tuple[int, Any] | None:
        """The first well-formed JSON value and its line (None when there is none)."""
        if self._values is None:
            self._values = _json_values(self.stream, self.rows)
            self._first = next(self._values, None)
        return self._first

    def values(self) -> Iterator[tuple[int, Any]]:
        first = self.first_value()
        if first is not None and self._values is not None:
            yield first
            yield from self._values


def _json_values(stream: BinaryIO, rows: FileRows) -> Iterator[tuple[int, Any]]:
    """(line, value) for every JSON value: one per line, one document, or values back to back.

    Lines are parsed one by one (NDJSON streams); from the first line that is not
    a whole value on its own, the rest of the file is read and scanned instead.
    """
    number, text = 0, b""
    for number, raw in enumerate(stream, 1):
        text = raw.removeprefix(_BOM) if number == 1 else raw
        if not text.strip(_BLANK):
            continue
        try:
            value = from_json(text)
        except ValueError:
            break
        yield number, value
    else:
        return
    yield from _scan_values(text + stream.read(), number, rows)


def _scan_values(data: bytes, line: int, rows: FileRows) -> Iterator[tuple[int, Any]]:
    """The values in `data` (which starts at `line`); a malformed one costs one warning.

    After a malformed value, reading resumes at the next line that opens a value at
    column 0, so a broken pretty-printed object is one warning, not one per line.
    """
    try:
        value = from_json(data)
    except ValueError:
        pass
    else:
        yield line + data[: len(data) - len(data.lstrip(_BLANK))].count(b"\n"), value
        return
    try:
        text = data.decode()
    except UnicodeDecodeError as error:
        rows.warn(line + data.count(b"\n", 0, error.start), "not UTF-8 text; undecodable bytes replaced")
        text = data.decode(errors="replace")
    decoder = json.JSONDecoder()
    first_line, pos, end = line, 0, len(text)
    while True:
        start = pos
        while pos < end and text[pos] in " \t\r\n":
            pos += 1
        line += text.count("\n", start, pos)
        if pos >= end:
            return
        try:
            value, stop = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as error:
            broken_at = first_line + error.lineno - 1
            detail = f"{error.msg} at line {broken_at}" if broken_at != line else error.msg
            rows.warn(line, f"malformed JSON ({detail}); skipped to the next value")
            resume = pos
            while True:
                resume = text.find("\n", resume)
                if resume < 0 or text[resume + 1 : resume + 2] in ("{", "["):
                    break
                resume += 1
            if resume < 0:
                return
            line += text.count("\n", pos, resume)
            pos = resume
            continue
        yield line, value
        line += text.count("\n", pos, stop)
        pos = stop


# --- one collector per format, all behind one interface and listed in COLLECTORS -------------------


class Collector(Protocol):
    """One input format: recognises a file by its content and turns it into rows."""

    name: str

    def sniff(self, source: Source) -> bool:
        """Whether the file is in this format (looking at its first bytes or first JSON value)."""
        ...

    def read(self, source: Source, rows: FileRows) -> None:
        """Add the file's rows to `rows`, warning about (and skipping) what cannot be read."""
        ...


def _first_has(source: Source, *keys: str) -> bool:
    if source.start != b"{":
        return False
    first = source.first_value()
    return first is not None and isinstance(first[1], dict) and all(key in first[1] for key in keys)


def _record_message(exit_code: object, attempts: object, blocked_by: object) -> str | None:
    parts = [] if exit_code is None else [f"exit code {exit_code}"]
    if attempts:
        parts.append(f"after {attempts} attempt(s)")
    if blocked_by:
        blocked = blocked_by if isinstance(blocked_by, list) else [blocked_by]
        parts.append("blocked by " + ", ".join(map(str, blocked)))
    return " ".join(parts) or None


def _record_row(record: dict[str, Any], rows: FileRows) -> dict[str, Any] | str:
    """A validation result or a per-record line as a row, or why it cannot be one."""
    status = record.get("status")
    exit_code = record.get("exit_code")
    if status is None:
        result = "passed" if exit_code == 0 else "failed"
    else:
        found = normalise_result(status)
        if found is None:
            return f"unknown status {str(status)[:40]!r} (expected pass, fail or skipped)"
        result = found
    row = {
        "recipe_name": record.get("recipe"),
        "ecosystem": record.get("ecosystem") or rows.ecosystem,
        "result": result,
        "platform": record.get("platform"),
    }
    # Keys are set only when there is a value: validating fewer keys is measurably faster.
    duration = record.get("duration_seconds")
    if duration is not None:
        row["duration_seconds"] = duration
    if result == "failed":
        blocked_by = record.get("blocked_by")
        row["error_category"] = record.get("category") or (
            "blocked" if blocked_by else None if exit_code is None else f"exit_code_{exit_code}"
        )
        message = _record_message(exit_code, record.get("attempts"), blocked_by)
        row["error_message"] = bound_message(message, rows.limit)
    stamp = record.get("timestamp")
    if stamp is not None:
        rows.stamps.append(stamp)
    return row


class PayloadCollector:
    name = "payload"

    def sniff(self, source: Source) -> bool:
        return _first_has(source, "batch_id", "results")

    def read(self, source: Source, rows: FileRows) -> None:
        for line, value in source.values():
            try:
                payload: BatchPayload = PAYLOAD_VALIDATOR.validate_python(value)
            except ValidationError as error:
                problem = error.errors(include_url=False)[0]
                where = ".".join(map(str, problem["loc"])) or "payload"
                more = f" (and {error.error_count() - 1} more problems)" if error.error_count() > 1 else ""
                rows.warn(line, f"invalid ready payload: {where}: {problem['msg']}{more}; skipped")
                continue
            rows.stamps.append(payload["started_at"])
            rows.collection.payloads.append(payload)


class ValidationResultsCollector:
    name = "validation-results"

    def sniff(self, source: Source) -> bool:
        return source.start == b"["

    def read(self, source: Source, rows: FileRows) -> None:
        for line, value in source.values():
            if not isinstance(value, list):
                rows.warn(line, f"expected an array of validation results, found {_keys_of(value)}; skipped")
                continue
            for position, item in enumerate(value, 1):
                row = _record_row(item, rows) if isinstance(item, dict) else f"found {_keys_of(item)}"
                if isinstance(row, str):
                    rows.warn(line, f"array item {position}: {row}; skipped")
                else:
                    rows.add(line, row)


class NdjsonCollector:
    name = "ndjson"

    def sniff(self, source: Source) -> bool:
        return _first_has(source, "recipe", "platform")

    def read(self, source: Source, rows: FileRows) -> None:
        for line, value in source.values():
            if isinstance(value, dict) and "recipe" in value:
                row = _record_row(value, rows)
            else:
                row = f"not a per-record line with a recipe ({_keys_of(value)})"
            if isinstance(row, str):
                rows.warn(line, f"{row}; skipped")
            else:
                rows.add(line, row)


class FailureRecordsCollector:
    name = "failure-records"

    def sniff(self, source: Source) -> bool:
        return _first_has(source, "failures", "schema_version")

    def read(self, source: Source, rows: FileRows) -> None:
        for line, record in source.values():
            failures = record.get("failures") if isinstance(record, dict) else None
            if not isinstance(failures, list):
                rows.warn(line, f"not a failure record with a `failures` array ({_keys_of(record)}); skipped")
                continue
            rows.stamps.append(record.get("updated_at"))
            for position, failure in enumerate(failures, 1):
                if isinstance(failure, dict):
                    rows.add(line, self._row(record, failure, rows))
                else:
                    rows.warn(line, f"failures item {position}: found {_keys_of(failure)}; skipped")

    @staticmethod
    def _row(record: dict[str, Any], failure: dict[str, Any], rows: FileRows) -> dict[str, Any]:
        package_id = failure.get("package_id")
        prefix, name = "", package_id
        if isinstance(package_id, str) and ":" in package_id:
            prefix, name = package_id.split(":", 1)
        message = failure.get("message")
        subcategory, blocked_by = failure.get("subcategory"), failure.get("blocked_by")
        if isinstance(message, str) and (subcategory or blocked_by):
            extra = _record_message(None, None, blocked_by)
            message = "\n".join(filter(None, (f"[{subcategory}]" if subcategory else None, message, extra)))
        rows.stamps.append(failure.get("timestamp"))
        return {
            "recipe_name": name,
            "ecosystem": record.get("ecosystem") or prefix or rows.ecosystem,
            "result": "failed",
            "error_category": failure.get("category"),
            "error_message": bound_message(message, rows.limit) if isinstance(message, str) else message,
            "platform": record.get("environment"),
        }


class JunitCollector:
    name = "junit"

    def sniff(self, source: Source) -> bool:
        return source.start == b"<"

    def read(self, source: Source, rows: FileRows) -> None:
        """Stream the XML, clearing each testcase once read, so large reports stay small in memory.

        ElementTree never fetches external entities, and the expat it runs on
        (>= 2.4.1 in every supported CPython) refuses entity-expansion bombs.
        """
        source.stream.seek(0)
        suite_starts: list[int] = []  # index of the first row of each open testsuite
        try:
            events = ET.iterparse(source.stream, events=("start", "end"))  # noqa: S314 - see docstring
            _, root = next(events)
            if root.tag not in ("testsuites", "testsuite"):
                rows.warn(1, f"<{root.tag[:40]}> is not JUnit XML (no testsuites or testsuite root); skipped")
                return
            suite_starts += [0] if root.tag == "testsuite" else []
            for event, element in events:
                tag = element.tag
                if tag == "testcase":
                    if event == "end":
                        rows.add(None, self._row(element, rows))
                        element.clear()
                elif tag == "testsuite":
                    if event == "start":
                        suite_starts.append(len(rows.rows))
                    else:
                        self._end_suite(element, rows, suite_starts.pop())
                        element.clear()
        except ET.ParseError as error:
            rows.warn(error.position[0], f"malformed XML: {error}; the testcases before it are kept")

    @staticmethod
    def _row(case: ET.Element, rows: FileRows) -> dict[str, Any]:
        attributes = case.attrib
        name, classname = attributes.get("name") or "", attributes.get("classname") or ""
        row: dict[str, Any] = {
            "recipe_name": f"{classname}.{name}" if classname and name else name or classname,
            "ecosystem": rows.ecosystem,
            "result": "passed",
        }
        if len(case):
            JunitCollector._read_children(case, row, rows.limit)
        status = attributes.get("status")
        if status and row["result"] == "passed":  # no <failure>, <error> or <skipped> decided it
            row["result"] = normalise_result(status) or "passed"
        time = attributes.get("time")
        if time:
            try:
                seconds = float(time)
            except ValueError:
                seconds = math.nan
            if 0.0 <= seconds < math.inf:  # NaN, infinities and negatives are "not given"
                row["duration_seconds"] = seconds
        return row

    @staticmethod
    def _read_children(case: ET.Element, row: dict[str, Any], limit: int) -> None:
        """Failure, skip and platform from a testcase's children (most testcases have none)."""
        problem = skipped = None
        for child in case:
            if child.tag == "error" or (child.tag == "failure" and problem is None):
                problem = child
            elif child.tag == "skipped":
                skipped = child
            elif child.tag == "properties":
                platform = _properties(child).get("platform")
                if platform:
                    row["platform"] = platform
        if problem is not None:
            row["result"] = "failed"
            row["error_category"] = problem.get("type") or problem.tag
            text = "\n".join(part for part in (problem.get("message"), (problem.text or "").strip()) if part)
            row["error_message"] = bound_message(text, limit) if text else None
        elif skipped is not None:
            row["result"] = "skipped"

    @staticmethod
    def _end_suite(suite: ET.Element, rows: FileRows, first: int) -> None:
        """Apply what a suite says about all its testcases: time, platform, and its log."""
        rows.stamps.append(suite.get("timestamp"))
        properties = suite.find("properties")
        platform = None if properties is None else _properties(properties).get("platform")
        suite_rows = rows.rows[first:]
        if platform:
            for row in suite_rows:
                row.setdefault("platform", platform)
        log = "\n".join(
            text
            for text in ((suite.findtext(tag) or "").strip() for tag in ("system-out", "system-err"))
            if text
        )
        failed = [row for row in suite_rows if row["result"] == "failed"] if log else []
        if len(failed) == 1:
            row = failed[0]
            row["error_message"] = bound_message(
                "\n".join(filter(None, (row.get("error_message"), log))), rows.limit
            )


def _properties(properties: ET.Element) -> dict[str, str]:
    return {prop.get("name") or "": prop.get("value") or "" for prop in properties.iter("property")}


COLLECTORS: dict[str, Collector] = {
    collector.name: collector
    for collector in (
        PayloadCollector(),
        ValidationResultsCollector(),
        NdjsonCollector(),
        FailureRecordsCollector(),
        JunitCollector(),
    )
}


# --- finding and reading the files -------------------------------------------------------------------


def _inside(pattern: str, workspace: Path, root: Path) -> str | None:
    """The pattern relative to the workspace, or None when it could reach outside it."""
    path = PurePath(pattern)
    if path.is_absolute():
        for base in (workspace, root):
            if path.is_relative_to(base):
                pattern = path.relative_to(base).as_posix()
                break
        else:
            return None
    return None if ".." in PurePosixPath(pattern).parts else pattern


def find_files(patterns: str, workspace: Path) -> tuple[list[str], list[CollectWarning]]:
    """Workspace-relative paths of the files the globs match (exclusions applied), sorted; and warnings."""
    root = workspace.resolve()
    warnings: list[CollectWarning] = []
    include: list[str] = []
    exclude: list[str] = []
    for raw in patterns.splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        relative = _inside(pattern.removeprefix("!").strip(), workspace, root)
        if relative is None:
            warnings.append(
                CollectWarning("", None, f"pattern {pattern!r} reaches outside the workspace; ignored")
            )
        elif relative:
            (exclude if negated else include).append(relative)
    if not include:
        warnings.append(CollectWarning("", None, "no result patterns given; nothing to collect"))
        return [], warnings
    try:
        found = wcglob.glob(include, flags=_GLOB_FLAGS, root_dir=root, exclude=exclude)
    except Exception as error:  # wcmatch's PatternLimitException (braces expanding past 1000) is private
        warnings.append(CollectWarning("", None, f"patterns cannot be expanded: {error}; nothing collected"))
        return [], warnings
    files: list[str] = []
    for match in sorted({PurePath(path).as_posix() for path in found}):
        path = root / match
        if not path.resolve().is_relative_to(root):
            warnings.append(CollectWarning(match, None, "a link to outside the workspace; skipped"))
        elif path.is_file():
            files.append(match)
    if not files:
        warnings.append(CollectWarning("", None, f"no files match {', '.join(include)} in {workspace}"))
    return files, warnings


def _read_file(path: Path, fmt: str, rows: FileRows) -> None:
    try:
        stream = path.open("rb")
    except OSError as error:
        rows.warn(None, f"cannot read: {error.strerror or error}")
        return
    with stream:
        rows.collection.files.append(rows.display)
        head = stream.read(_HEAD_BYTES)
        stream.seek(0)
        if not head.strip(_BLANK):
            rows.warn(None, "empty file; nothing collected")
            return
        if b"\0" in head:
            rows.warn(None, "binary file (it holds NUL bytes), not JSON or XML; skipped")
            return
        source = Source(stream, head, rows)
        collector = COLLECTORS.get(fmt) or next(
            (candidate for candidate in COLLECTORS.values() if candidate.sniff(source)), None
        )
        if collector is None:
            line, shape = _shape(source)
            rows.warn(line, f"not a shape batch-metrics reads ({shape}); nothing collected, nothing guessed")
            return
        collector.read(source, rows)


def _shape(source: Source) -> tuple[int | None, str]:
    """Where and what the first value is, for a file no collector recognised."""
    first = source.first_value() if source.start == b"{" else None
    if first is not None:
        return first[0], f"the first value has {_keys_of(first[1])}"
    if source.start == b"{":
        return None, "no well-formed JSON value"
    return 1, f"it starts with {source.start.decode(errors='replace')!r}, not JSON or XML"


def collect(
    patterns: str,
    workspace: Path,
    *,
    fmt: str = "auto",
    ecosystem: str | None = None,
    max_message_chars: int = 4096,
) -> Collection:
    """Read every file the patterns match into one collection of rows, warnings and timestamps.

    Raises ValueError only for a `fmt` that is neither `auto` nor one of FORMATS.
    """
    if fmt != "auto" and fmt not in COLLECTORS:
        raise ValueError(f"unknown format {fmt!r}: use auto or one of {', '.join(FORMATS)}")
    collection = Collection()
    files, warnings = find_files(patterns, workspace)
    collection.warnings.extend(warnings)
    root = workspace.resolve()
    with _cyclic_gc_paused():
        for relative in files:
            rows = FileRows(relative, collection, ecosystem or "unknown", max_message_chars)
            _read_file(root / relative, fmt, rows)
            rows.finish()
    return collection


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while rows pile up.

    Rows, parsed values and models hold no reference cycles, so the collector frees
    nothing here; it only rescans the growing heap, which costs about a third of the
    collect time at 100k rows. Reference counting still frees everything as usual.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
