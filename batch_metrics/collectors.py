"""Collectors: find result files by glob and turn what they hold into result rows.

A file's format is told by its content, never its name: `<` opens JUnit XML;
anything else is read as one or more JSON values (a document, NDJSON, or
pretty-printed values one after another), and each value is recognised by its
keys. One collector per format turns a value into rows:

- `payload`: a ready batch payload (`batch_id` + `results`), used as it is;
- `validation-results`: `[{"recipe", "platform", "status", "exit_code", ...}]`;
- `ndjson`: per-record lines `{"recipe", "platform", "exit_code", "category", ...}`;
- `failure-records`: `{"ecosystem", "environment", "failures": [...]}` per line;
- `junit`: testsuites/testsuite/testcase with failure/error/skipped.

Nothing here raises for bad input: a malformed file, line or row becomes a
`CollectWarning` naming the file and line, and everything else still counts.
Patterns are workspace-relative globs; absolute patterns and `..` are refused
with a warning, so a workflow can never read files outside its workspace.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import ValidationError
from wcmatch import glob as wcglob

from batch_metrics.models import RESULTS_ADAPTER, BatchPayload, RecipeResult

FORMATS = ("payload", "validation-results", "ndjson", "failure-records", "junit")

_RESULT_SYNONYMS = {
    **dict.fromkeys(("pass", "passed", "success", "succeeded", "ok"), "passed"),
    **dict.fromkeys(("fail", "failed", "failure", "error", "errored"), "failed"),
    **dict.fromkeys(("skip", "skipped", "disabled"), "skipped"),
}
_GLOB_FLAGS = wcglob.GLOBSTAR | wcglob.NEGATE | wcglob.BRACE | wcglob.DOTGLOB | wcglob.SPLIT
_TRUNCATION_MARK = "\n[... {} characters cut ...]\n"
_MAX_SHAPE_WARNINGS_PER_FILE = 1


@dataclass(frozen=True)
class CollectWarning:
    path: str
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
    """Map the many spellings of an outcome to passed/failed/skipped (None if unknown)."""
    return _RESULT_SYNONYMS.get(str(value).strip().lower()) if value is not None else None


def parse_timestamp(value: object) -> datetime | None:
    """Parse RFC 3339 and the near misses pipelines write (`2026-03-08T01-58-35Z`, no zone, 9 digits)."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    text = value.strip()
    date, sep, clock = text.partition("T")
    if sep and clock[2:3] == "-" and clock[5:6] == "-":
        clock = clock[:2] + ":" + clock[3:5] + ":" + clock[6:]
    text = (date + sep + clock).replace("Z", "+00:00").replace("z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = head + dot + rest[: min(digits, 6)] + rest[digits:]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def bound_message(message: str | None, limit: int) -> str | None:
    """Keep the head and the tail of long logs: the cause is usually at one end."""
    if message is None or len(message) <= limit:
        return message
    mark = _TRUNCATION_MARK.format(len(message) - limit)
    keep = max(limit - len(mark), 0)
    return message[: keep // 2] + mark + message[len(message) - (keep - keep // 2) :]


class _FileReader:
    """Collects the rows of one file, with the line each came from, then validates them at once."""

    def __init__(self, display: str, collection: Collection, ecosystem: str | None, limit: int) -> None:
        self.display = display
        self.collection = collection
        self.ecosystem = ecosystem
        self.limit = limit
        self.rows: list[dict[str, Any]] = []
        self.lines: list[int | None] = []
        self.shape_warnings = 0

    def warn(self, line: int | None, message: str) -> None:
        self.collection.warnings.append(CollectWarning(self.display, line, message))

    def saw_time(self, value: object) -> None:
        moment = parse_timestamp(value)
        earliest = self.collection.earliest
        if moment is not None and (earliest is None or moment < earliest):
            self.collection.earliest = moment

    def add(self, line: int | None, row: dict[str, Any]) -> None:
        row["error_message"] = bound_message(row.get("error_message"), self.limit)
        self.rows.append(row)
        self.lines.append(line)

    def unrecognised(self, line: int | None, value: object) -> None:
        if self.shape_warnings < _MAX_SHAPE_WARNINGS_PER_FILE:
            keys = ", ".join(sorted(value)[:8]) if isinstance(value, dict) else type(value).__name__
            self.warn(line, f"not a shape batch-metrics knows (keys: {keys}); skipped, not guessed")
        self.shape_warnings += 1

    def finish(self) -> None:
        """Validate the file's rows in one pass; a bad row is dropped with a warning naming its line."""
        try:
            self.collection.results.extend(RESULTS_ADAPTER.validate_python(self.rows))
            return
        except ValidationError as error:
            bad = {err["loc"][0] for err in error.errors() if err["loc"]}
            for index, err in enumerate(error.errors()):
                if index < 5 and err["loc"]:
                    field_name = ".".join(str(part) for part in err["loc"][1:]) or "row"
                    self.warn(self.lines[int(err["loc"][0])], f"{field_name}: {err['msg']}; row skipped")
        good = [row for index, row in enumerate(self.rows) if index not in bad]
        self.collection.results.extend(RESULTS_ADAPTER.validate_python(good))


# --- the per-format collectors: each turns one JSON value (or one XML file) into rows --------------


def _record_row(reader: _FileReader, line: int | None, record: dict[str, Any]) -> None:
    """A validation result or a per-record NDJSON line: one recipe on one platform."""
    name = record.get("recipe") or record.get("recipe_name") or record.get("name")
    exit_code = record.get("exit_code")
    status = record.get("status", record.get("result"))
    if status is not None:
        result = normalise_result(status)
        if result is None:
            reader.warn(line, f"unknown status {str(status)[:40]!r} for {str(name)[:80]!r}; row skipped")
            return
    else:
        # Per-record NDJSON only lists what went wrong: a record is a failure unless it exited 0.
        result = "passed" if exit_code == 0 else "failed"
    blocked_by = record.get("blocked_by")
    category = record.get("category") or record.get("error_category")
    message = record.get("message") or record.get("error_message")
    if result == "failed":
        if blocked_by and not category:
            category = "blocked"
        if category is None and exit_code is not None:
            category = f"exit_code_{exit_code}"
        if message is None:
            parts = [f"exit code {exit_code}"] if exit_code is not None else []
            if record.get("attempts"):
                parts.append(f"after {record['attempts']} attempt(s)")
            if blocked_by:
                blocked = blocked_by if isinstance(blocked_by, list) else [blocked_by]
                parts.append("blocked by " + ", ".join(map(str, blocked)))
            message = " ".join(parts) or None
    reader.saw_time(record.get("timestamp"))
    reader.add(
        line,
        {
            "recipe_name": name,
            "ecosystem": record.get("ecosystem") or reader.ecosystem or "unknown",
            "result": result,
            "error_category": category if result == "failed" else None,
            "error_message": message if result == "failed" else None,
            "duration_seconds": record.get("duration_seconds"),
            "platform": record.get("platform") or record.get("environment"),
        },
    )


def _failure_record_rows(reader: _FileReader, line: int | None, record: dict[str, Any]) -> None:
    """One failure record: every entry of `failures` is a failed row on the record's environment."""
    reader.saw_time(record.get("updated_at"))
    failures = record.get("failures")
    if not isinstance(failures, list):
        reader.warn(line, "failure record without a `failures` list; skipped")
        return
    for failure in failures:
        if not isinstance(failure, dict):
            reader.warn(line, "a `failures` entry is not an object; skipped")
            continue
        prefix, sep, name = str(failure.get("package_id", "")).partition(":")
        if not sep:
            prefix, name = "", prefix
        category = failure.get("category")
        if failure.get("subcategory"):
            category = f"{category}/{failure['subcategory']}"
        reader.saw_time(failure.get("timestamp"))
        reader.add(
            line,
            {
                "recipe_name": name,
                "ecosystem": record.get("ecosystem") or prefix or reader.ecosystem or "unknown",
                "result": "failed",
                "error_category": category,
                "error_message": failure.get("message"),
                "platform": record.get("environment"),
            },
        )


def _payload_rows(reader: _FileReader, line: int | None, value: dict[str, Any]) -> None:
    try:
        payload = BatchPayload.model_validate(value)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "payload"
        reader.warn(line, f"ready payload is invalid: {where}: {first['msg']}; skipped")
        return
    reader.saw_time(payload.started_at)
    reader.collection.payloads.append(payload)


def _validation_results_rows(reader: _FileReader, line: int | None, value: Any) -> None:
    if not isinstance(value, list):
        reader.unrecognised(line, value)
        return
    for item in value:
        if isinstance(item, dict) and ("recipe" in item or "recipe_name" in item):
            _record_row(reader, line, item)
        else:
            reader.unrecognised(line, item)


def _ndjson_rows(reader: _FileReader, line: int | None, value: Any) -> None:
    if isinstance(value, dict) and ("recipe" in value or "recipe_name" in value):
        _record_row(reader, line, value)
    else:
        reader.unrecognised(line, value)


def _shape_of(value: Any) -> str | None:
    """Recognise a JSON value by its keys."""
    if isinstance(value, list):
        return "validation-results"
    if not isinstance(value, dict):
        return None
    if "batch_id" in value and "results" in value:
        return "payload"
    if "failures" in value and ("ecosystem" in value or "environment" in value):
        return "failure-records"
    if "recipe" in value or "recipe_name" in value:
        return "ndjson"
    return None


_JSON_COLLECTORS: dict[str, Callable[[_FileReader, int | None, Any], None]] = {
    "payload": lambda reader, line, value: (
        _payload_rows(reader, line, value) if isinstance(value, dict) else reader.unrecognised(line, value)
    ),
    "validation-results": _validation_results_rows,
    "ndjson": _ndjson_rows,
    "failure-records": lambda reader, line, value: (
        _failure_record_rows(reader, line, value)
        if isinstance(value, dict)
        else reader.unrecognised(line, value)
    ),
}


def _json_values(reader: _FileReader, text: str) -> Iterator[tuple[int, Any]]:
    """Yield (line, value) for each JSON value in the text: a document, NDJSON, or values back to back.

    After a malformed value, reading resumes at the next line that starts a value at column 0,
    so one broken line (or one broken pretty-printed object) costs one warning.
    """
    decoder = json.JSONDecoder()
    pos, line, end = 0, 1, len(text)
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
            error_line = line + text.count("\n", pos, error.pos)
            reader.warn(line, f"malformed JSON ({error.msg} at line {error_line}); skipped to the next record")
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


def _read_json(reader: _FileReader, text: str, fmt: str) -> None:
    for line, value in _json_values(reader, text):
        shape = fmt if fmt != "auto" else _shape_of(value)
        if shape is None or shape == "junit":
            reader.unrecognised(line, value)
        else:
            _JSON_COLLECTORS[shape](reader, line, value)


def _junit_text(element: ET.Element) -> str | None:
    message = element.get("message") or ""
    body = (element.text or "").strip()
    text = "\n".join(part for part in (message, body) if part)
    return text or None


def _read_junit(reader: _FileReader, path: Path) -> None:
    """Stream the XML: testcases are cleared once read, so large reports stay small in memory.

    ElementTree never fetches external entities, and expat >= 2.4.1 (bundled
    with every supported CPython) refuses entity-expansion bombs.
    """
    suite_names: list[str] = []
    try:
        for event, element in ET.iterparse(path, events=("start", "end")):  # noqa: S314 - see _read_junit
            if element.tag == "testsuite":
                if event == "start":
                    suite_names.append(element.get("name") or "")
                    reader.saw_time(element.get("timestamp"))
                else:
                    suite_names.pop()
                    element.clear()
            elif element.tag == "testcase" and event == "end":
                _junit_case(reader, element, suite_names[-1] if suite_names else "")
                element.clear()
    except ET.ParseError as error:
        reader.warn(error.position[0], f"malformed XML: {error}; rows before it are kept")


def _junit_case(reader: _FileReader, case: ET.Element, suite: str) -> None:
    failure = case.find("error")
    if failure is None:
        failure = case.find("failure")
    skipped = case.find("skipped")
    status = normalise_result(case.get("status")) if case.get("status") else None
    if failure is not None:
        result, category, message = "failed", failure.get("type") or failure.tag, _junit_text(failure)
    elif skipped is not None or status == "skipped":
        result, category, message = "skipped", None, None
    else:
        result, category, message = status or "passed", None, None
    classname = case.get("classname")
    name = case.get("name") or suite
    try:
        duration: float | None = float(case.get("time") or "")
    except ValueError:
        duration = None
    platform = None
    for prop in case.iter("property"):
        if prop.get("name") == "platform":
            platform = prop.get("value")
    reader.add(
        None,
        {
            "recipe_name": f"{classname}.{name}" if classname else name,
            "ecosystem": reader.ecosystem or "unknown",
            "result": result,
            "error_category": category,
            "error_message": message,
            "duration_seconds": duration if duration is not None and duration >= 0 else None,
            "platform": platform,
        },
    )


def _display(path: Path, workspace: Path) -> str:
    try:
        return path.relative_to(workspace).as_posix()
    except ValueError:
        return path.as_posix()


def _read_file(
    path: Path, workspace: Path, collection: Collection, fmt: str, ecosystem: str | None, limit: int
) -> None:
    display = _display(path, workspace)
    reader = _FileReader(display, collection, ecosystem, limit)
    try:
        data = path.read_bytes()
    except OSError as error:
        reader.warn(None, f"cannot read: {error.strerror or error}")
        return
    collection.files.append(display)
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head:
        reader.warn(None, "empty file; nothing collected")
        return
    if fmt == "junit" or (fmt == "auto" and head.startswith(b"<")):
        del data
        _read_junit(reader, path)
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            reader.warn(None, f"not UTF-8 text (byte {error.start}); skipped")
            return
        del data
        _read_json(reader, text, fmt)
    reader.finish()


def find_files(patterns: str, workspace: Path) -> tuple[list[Path], list[CollectWarning]]:
    """Expand newline-separated workspace-relative globs (`**`, `!exclusions`) into sorted files."""
    warnings: list[CollectWarning] = []
    include: list[str] = []
    exclude: list[str] = []
    for raw in patterns.splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        body = pattern[1:] if negated else pattern
        if PurePosixPath(body).is_absolute() or Path(body).is_absolute() or ".." in PurePosixPath(body).parts:
            warnings.append(CollectWarning("", None, f"pattern {pattern!r} leaves the workspace; ignored"))
            continue
        (exclude if negated else include).append(body)
    if not include:
        warnings.append(CollectWarning("", None, "no result patterns given; nothing to collect"))
        return [], warnings
    matches = wcglob.glob(include, flags=_GLOB_FLAGS, root_dir=str(workspace), exclude=exclude or None)
    root = workspace.resolve()
    files: list[Path] = []
    for match in sorted(set(matches)):
        path = (workspace / match).resolve()
        if path.is_file() and path.is_relative_to(root):
            files.append(workspace / match)
    if not files:
        shown = ", ".join(include)
        warnings.append(CollectWarning("", None, f"no files match {shown} in {workspace}"))
    return files, warnings


def collect(
    patterns: str,
    workspace: Path,
    *,
    fmt: str = "auto",
    ecosystem: str | None = None,
    max_message_chars: int = 4096,
) -> Collection:
    """Read every file the patterns match and return their rows, warnings and earliest timestamp."""
    if fmt != "auto" and fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: use auto or one of {', '.join(FORMATS)}")
    collection = Collection()
    files, warnings = find_files(patterns, workspace)
    collection.warnings.extend(warnings)
    for path in files:
        _read_file(path, workspace, collection, fmt, ecosystem, max_message_chars)
    return collection
