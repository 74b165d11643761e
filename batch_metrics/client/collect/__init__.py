"""Collecting: result files found by glob, each read by the collector of its format, into one `Collection`.

A file's format is told by its content, never its name (`COLLECTORS`, in the order they are
tried; one module per format). Nothing here raises for bad input, and one bad file never costs
more than itself: the whole work on a file runs inside one boundary (`_collect_file`), so any
failure is one `CollectWarning` naming the file and the line, where known. What each format
maps to, and what a bad file costs, is written once, in docs/formats.md.
"""

from __future__ import annotations

import gc
import io
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import BinaryIO

from batch_metrics.client.collect.bounds import bound_message, bound_name
from batch_metrics.client.collect.failures import FailureRecordsCollector
from batch_metrics.client.collect.files import find_files
from batch_metrics.client.collect.junit import JunitCollector
from batch_metrics.client.collect.ndjson import NdjsonCollector
from batch_metrics.client.collect.payloads import PayloadCollector
from batch_metrics.client.collect.rows import (
    MAX_WARNINGS_PER_FILE,
    Collection,
    CollectWarning,
    FileRows,
    Span,
    Summary,
    normalise_result,
    parse_timestamp,
    why,
)
from batch_metrics.client.collect.sandbox import SandboxResultCollector
from batch_metrics.client.collect.source import BLANK, Collector, Source, keys_of
from batch_metrics.client.collect.summaries import RunSummaryCollector
from batch_metrics.client.collect.validation import ValidationResultsCollector
from batch_metrics.models import MAX_ERROR_MESSAGE

__all__ = [  # the face of collecting, whichever module defines each name
    "COLLECTORS",
    "FORMATS",
    "MAX_WARNINGS_PER_FILE",
    "CollectWarning",
    "Collection",
    "Span",
    "Summary",
    "bound_message",
    "bound_name",
    "collect",
    "collect_blobs",
    "find_files",
    "normalise_result",
    "parse_timestamp",
]

COLLECTORS: dict[str, Collector] = {
    collector.name: collector
    for collector in (
        PayloadCollector(),
        ValidationResultsCollector(),
        NdjsonCollector(),
        FailureRecordsCollector(),
        JunitCollector(),
        RunSummaryCollector(),
        SandboxResultCollector(),
    )
}
FORMATS = tuple(COLLECTORS)
_HEAD_BYTES = 8192


def collect(
    patterns: str,
    workspace: Path,
    *,
    fmt: str = "auto",
    ecosystem: str | None = None,
    max_message_chars: int = MAX_ERROR_MESSAGE,
    skip: Callable[[Path], str | None] | None = None,
    changed_since: str | None = None,
) -> Collection:
    """Read every file the patterns match into one collection of rows, warnings and timestamps;
    with `changed_since` (a git revision), only the files new or changed since it.

    `skip` names the matched files that are the run's own (find_files). Raises ValueError only for
    a `fmt` that is neither `auto` nor one of FORMATS.
    """
    if fmt != "auto" and fmt not in COLLECTORS:
        raise ValueError(f"unknown format {fmt!r}: use auto or one of {', '.join(FORMATS)}")
    collection = Collection()
    files, warnings, collection.skipped = find_files(
        patterns, workspace, skip=skip, changed_since=changed_since
    )
    collection.warnings.extend(warnings)
    root = workspace.resolve()
    with _cyclic_gc_paused():
        for relative in files:
            rows = FileRows(relative, collection, ecosystem or "unknown", max_message_chars)
            _collect_file(partial(_open, root / relative), fmt, rows)
    return collection


def collect_blobs(
    blobs: Iterable[tuple[str, bytes]], *, fmt: str = "auto", ecosystem: str | None = None,
    max_message_chars: int = MAX_ERROR_MESSAGE,
) -> Collection:  # fmt: skip
    """Files already in memory, as (name, bytes): read exactly as `collect` reads files from disk.

    The backfill reads a commit's files this way, straight from git.
    """
    collection = Collection()
    with _cyclic_gc_paused():
        for name, data in blobs:
            rows = FileRows(name, collection, ecosystem or "unknown", max_message_chars)
            _collect_file(partial(io.BytesIO, data), fmt, rows)
    return collection


def _open(path: Path) -> BinaryIO:
    return path.open("rb")


def _collect_file(opener: Callable[[], BinaryIO], fmt: str, rows: FileRows) -> None:
    """One file into the collection: the boundary no failure inside a file crosses.

    Whatever goes wrong (an I/O error, a value nested too deep, a bug) is one warning
    naming the file, and the file contributes what the rules for its format allow.
    """
    try:
        _read_file(opener, fmt, rows)
    except Exception as error:
        rows.fail(error)
    try:
        rows.finish()
    except Exception as error:  # validating what was read failed: the file adds nothing
        rows.warn(rows.line, f"cannot be read ({why(error)}); nothing collected from this file")
        rows.note_hidden_warnings()


def _read_file(opener: Callable[[], BinaryIO], fmt: str, rows: FileRows) -> None:
    try:
        stream = opener()
    except OSError as error:
        rows.warn(None, f"cannot read: {why(error)}")
        return
    with stream:
        rows.collection.files.append(rows.display)
        try:
            found = os.fstat(stream.fileno())
        except OSError:  # in memory (a backfilled commit's file): no file on disk to tell apart
            pass
        else:
            rows.collection.identities.add((found.st_dev, found.st_ino))
        head = stream.read(_HEAD_BYTES)
        stream.seek(0)
        if not head.strip(BLANK):
            rows.warn(None, "empty file; nothing collected")
            return
        if b"\0" in head:
            rows.warn(None, "binary file (it holds NUL bytes), not JSON or XML; skipped")
            return
        source = Source(stream, head)
        collector = COLLECTORS.get(fmt) or next(
            (candidate for candidate in COLLECTORS.values() if candidate.sniff(source)), None
        )
        if collector is None:
            line, shape = _shape(source)
            rows.warn(line, f"not a shape batch-metrics reads ({shape}); nothing collected, nothing guessed")
            return
        rows.fmt = collector.name
        collector.read(source, rows)


def _shape(source: Source) -> tuple[int | None, str]:
    """Where and what the first value is, for a file no collector recognised."""
    first = source.first_value() if source.start == b"{" else None
    if first is not None:
        return first[0], f"the first value has {keys_of(first[1])}"
    problem = source.first_problem() if source.start == b"{" else None
    if problem is not None:
        return problem[0], f"no well-formed JSON value; the first: {problem[1].message}"
    if source.start == b"{":
        return None, "no well-formed JSON value"
    return 1, f"it starts with {source.start.decode(errors='replace')!r}, not JSON or XML"


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
