"""Deterministic benchmark data: the same seed always gives the same bytes.

One stream of records (recipe, platform, outcome, ...) is written in three formats, so every
format carries the same rows:

- `validation-results`: JSON arrays, pretty-printed like tsuku's `validation-results-<platform>.json`;
- `ndjson`: per-record lines like tsuku's `failures/batch-*.jsonl` (no status: exit code 0 is a pass);
- `junit`: one testsuite per file, a testcase per record, with failure/skipped elements.

The full volume is `FILES` files holding `RESULTS` results (~13 MB of validation results).
Request bodies for the endpoint workloads are built from the same records with `bench.floor`'s
row mapping.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from bench import floor

FILES = 200
RESULTS = 100_000
SEED = 20260219
FORMATS = ("validation-results", "ndjson", "junit")
SUFFIXES = {"validation-results": ".json", "ndjson": ".jsonl", "junit": ".xml"}
PLATFORMS = (
    "linux-debian-glibc-x86_64",
    "linux-debian-glibc-arm64",
    "linux-alpine-musl-x86_64",
    "linux-alpine-musl-arm64",
    "linux-fedora-glibc-x86_64",
    "linux-arch-glibc-x86_64",
    "darwin-arm64",
    "darwin-x86_64",
)
_WORDS = (
    "actionlint", "age", "bat", "btop", "direnv", "fd", "fzf", "gh", "helm", "jq", "k9s", "kubectl",
    "lazygit", "ripgrep", "starship", "terraform", "yq", "zoxide", "bpmnlint", "bumpp", "cargo-audit",
    "eslint", "prettier", "black", "ruff", "httpie", "tldr", "delta", "dust", "hyperfine",
)  # fmt: skip
_CATEGORIES = ("deterministic", "transient", "network", "timeout")
_EXIT_CODES = (1, 6, 8, 127)


@dataclass(frozen=True)
class Record:
    recipe: str
    platform: str
    status: str  # pass, fail or skipped
    exit_code: int
    attempts: int
    blocked_by: str | None
    category: str | None
    duration_seconds: float
    timestamp: str


@dataclass(frozen=True)
class Dataset:
    fmt: str
    directory: Path
    files: list[Path]
    results: int
    size_bytes: int


def _timestamp(index: int) -> str:
    """One record a second from 2026-02-19T14:00:00Z."""
    hours, seconds = divmod(index, 3600)
    return f"2026-02-{19 + hours // 10:02d}T{14 + hours % 10:02d}:{seconds // 60:02d}:{seconds % 60:02d}Z"


def records(results: int, seed: int = SEED) -> Iterator[Record]:
    """The record stream every format is written from."""
    rng = random.Random(seed)
    for index in range(results):
        roll = rng.random()
        status = "pass" if roll < 0.85 else "fail" if roll < 0.95 else "skipped"
        failed = status == "fail"
        blocked = failed and rng.random() < 0.2
        yield Record(
            recipe=f"{rng.choice(_WORDS)}-{index}",
            platform=PLATFORMS[index % len(PLATFORMS)],
            status=status,
            exit_code=rng.choice(_EXIT_CODES) if failed else 0,
            attempts=rng.randint(1, 3) if failed else 1,
            blocked_by=f"{rng.choice(_WORDS)}-dep" if blocked else None,
            category=rng.choice(_CATEGORIES) if failed else None,
            duration_seconds=round(rng.uniform(1, 600), 3),
            timestamp=_timestamp(index),
        )


def _validation_result(record: Record) -> dict[str, Any]:
    item: dict[str, Any] = {
        "recipe": record.recipe,
        "platform": record.platform,
        "status": record.status,
        "exit_code": record.exit_code,
        "attempts": record.attempts,
    }
    if record.blocked_by:
        item["blocked_by"] = [record.blocked_by]
    return item


def _ndjson_record(record: Record) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "recipe": record.recipe,
        "platform": record.platform,
        "exit_code": record.exit_code,
        "category": record.category,
        "timestamp": record.timestamp,
    }


def _junit_case(record: Record) -> str:
    head = (
        f"    <testcase classname={quoteattr(record.platform)} name={quoteattr(record.recipe)}"
        f' time="{record.duration_seconds}"'
    )
    if record.status == "fail":
        log = f"installing {record.recipe}: exit code {record.exit_code} after {record.attempts} attempt(s)"
        return (
            f"{head}>\n      <failure type={quoteattr(record.category or 'error')}"
            f' message="exit code {record.exit_code}">{escape(log)}</failure>\n    </testcase>\n'
        )
    if record.status == "skipped":
        return f'{head}>\n      <skipped message="not supported on {record.platform}"/>\n    </testcase>\n'
    return f"{head}/>\n"


def _file_text(fmt: str, name: str, chunk: list[Record]) -> str:
    if fmt == "validation-results":
        return json.dumps([_validation_result(record) for record in chunk], indent=2) + "\n"
    if fmt == "ndjson":
        return "".join(json.dumps(_ndjson_record(record), separators=(",", ":")) + "\n" for record in chunk)
    failures = sum(record.status == "fail" for record in chunk)
    skipped = sum(record.status == "skipped" for record in chunk)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<testsuites>\n'
        f'  <testsuite name="{name}" tests="{len(chunk)}" failures="{failures}" errors="0"'
        f' skipped="{skipped}" timestamp="{chunk[0].timestamp if chunk else ""}">\n'
        + "".join(_junit_case(record) for record in chunk)
        + "  </testsuite>\n</testsuites>\n"
    )


def write_dataset(
    fmt: str, directory: Path, *, files: int = FILES, results: int = RESULTS, seed: int = SEED
) -> Dataset:
    """Write `results` records spread evenly over `files` files into a fresh `directory`."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    if files < 1 or results < files:
        raise ValueError(f"need at least one result per file (files={files}, results={results})")
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    stream = records(results, seed)
    paths: list[Path] = []
    size = 0
    for number in range(files):
        count = results // files + (1 if number < results % files else 0)
        chunk = [next(stream) for _ in range(count)]
        name = f"{fmt}-{number:04d}"
        data = _file_text(fmt, name, chunk).encode()
        path = directory / f"{name}{SUFFIXES[fmt]}"
        path.write_bytes(data)
        paths.append(path)
        size += len(data)
    return Dataset(fmt, directory, paths, results, size)


def digest(dataset: Dataset) -> str:
    """sha256 over every file's name and bytes, in order."""
    hasher = hashlib.sha256()
    for path in dataset.files:
        hasher.update(path.name.encode() + b"\0" + path.read_bytes())
    return hasher.hexdigest()


def result_rows(results: int, seed: int = SEED) -> list[dict[str, Any]]:
    """The validation records as payload rows, mapped as `bench.floor` maps them."""
    return [floor.record_row(_validation_result(record)) for record in records(results, seed)]


def payload_body(rows: list[dict[str, Any]], batch_id: str) -> bytes:
    """A compact request body for `POST /batch-metrics`."""
    return json.dumps(floor.payload(rows, batch_id), separators=(",", ":")).encode()


# --- hostile inputs (issue 8): the same bytes for the same size -----------------------------------------

HOSTILE = ("malformed-ndjson", "nested-suites", "entity-xml")
# The sizes: 80k malformed lines (3.3 MB), 100k nested suites (6.5 MB), a 6 MB entity file.
HOSTILE_SIZES = {"malformed-ndjson": 80_000, "nested-suites": 100_000, "entity-xml": 2_000_000}


def malformed_ndjson(path: Path, lines: int) -> int:
    """One good per-record line, then `lines` lines cut off mid-object (each a malformed line)."""
    good = {"recipe": "tool-good", "platform": "linux-x86_64", "exit_code": 0, "timestamp": floor.STARTED_AT}
    with path.open("wb") as out:
        out.write(json.dumps(good).encode() + b"\n")
        for index in range(lines):
            out.write(f'{{"recipe": "t{index}", "platform": "linux", "exit_c\n'.encode())
    return path.stat().st_size


def nested_suites(path: Path, depth: int) -> int:
    """`depth` testsuites each inside the one before, each holding one passing testcase."""
    with path.open("wb") as out:
        out.write(b"<testsuites>\n")
        for index in range(depth):
            out.write(f'<testsuite name="s{index}"><testcase classname="c" name="t{index}"/>\n'.encode())
        out.write(b"</testsuite>" * depth + b"\n</testsuites>\n")
    return path.stat().st_size


def entity_xml(path: Path, references: int) -> int:
    """A testcase whose <failure> references a 240-character entity `references` times."""
    with path.open("wb") as out:
        out.write(f'<!DOCTYPE testsuite [<!ENTITY e "{"x" * 240}">]>\n'.encode())
        out.write(b'<testsuite name="s"><testcase classname="c" name="t"><failure>')
        for _ in range(references // 100_000):
            out.write(b"&e;" * 100_000)
        out.write(b"&e;" * (references % 100_000) + b"</failure></testcase></testsuite>\n")
    return path.stat().st_size


HOSTILE_WRITERS = {
    "malformed-ndjson": malformed_ndjson,
    "nested-suites": nested_suites,
    "entity-xml": entity_xml,
}
