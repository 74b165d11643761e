"""What every format's reader works on: an open file (`Source`) and the one interface (`Collector`).

A `Source` holds the file's first bytes for sniffing and, for JSON, its values parsed once,
so sniffing by the first value and reading every value never parse the file twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO, Protocol

from batch_metrics.client.collect.jsonstream import Problem, json_values
from batch_metrics.client.collect.rows import MAX_WARNINGS_PER_FILE, FileRows

BOM = b"\xef\xbb\xbf"
BLANK = b" \t\r\n"
_NEXT_VALUE = "skipped to the next value"


def keys_of(value: Any) -> str:
    """A JSON value in a few words for a warning: an object's first keys, else its type."""
    if isinstance(value, dict):
        return "keys: " + (", ".join(sorted(map(str, value))[:10]) or "none")
    return f"a JSON {type(value).__name__}"


class Source:
    """One open result file: its first bytes for sniffing and, for JSON, its values, parsed once.

    What comes before the first value while sniffing is kept to be read again, up to
    `MAX_WARNINGS_PER_FILE` problems; past that the file is read again from its start
    rather than held in memory.
    """

    def __init__(self, stream: BinaryIO, head: bytes) -> None:
        self.stream = stream
        self.start = head.removeprefix(BOM).lstrip(BLANK)[:1]
        self._values: Iterator[tuple[int, Any]] | None = None
        self._seen: list[tuple[int, Any]] = []  # read while looking for the first value
        self._overflowed = False

    def first_value(self) -> tuple[int, Any] | None:
        """The first well-formed JSON value and its line (None when there is none)."""
        if self._values is None:
            self._values = json_values(self.stream)
            for item in self._values:
                if len(self._seen) <= MAX_WARNINGS_PER_FILE:
                    self._seen.append(item)
                elif not isinstance(item[1], Problem):
                    self._seen[-1], self._overflowed = item, True
                else:
                    continue
                if not isinstance(item[1], Problem):
                    break
        last = self._seen[-1] if self._seen else None
        return None if last is None or isinstance(last[1], Problem) else last

    def first_problem(self) -> tuple[int, Problem] | None:
        """The first text read that is not a JSON value, if any was read while looking for one."""
        return next(((line, item) for line, item in self._seen if isinstance(item, Problem)), None)

    def first_has(self, *keys: str) -> bool:
        """Whether the file is JSON objects and the first one has all of `keys`."""
        if self.start != b"{":
            return False
        first = self.first_value()
        return first is not None and isinstance(first[1], dict) and all(key in first[1] for key in keys)

    def values(self) -> Iterator[tuple[int, Any]]:
        """(line, value) for every value, and (line, Problem) where the text is not one."""
        self.first_value()
        if self._overflowed:
            self.stream.seek(0)
            yield from json_values(self.stream)
            return
        yield from self._seen
        if self._values is not None:
            yield from self._values


class Collector(Protocol):
    """One input format: recognises a file by its content and turns it into rows."""

    name: str

    def sniff(self, source: Source) -> bool:
        """Whether the file is in this format (looking at its first bytes or first JSON value)."""
        ...

    def read(self, source: Source, rows: FileRows) -> None:
        """Add the file's rows to `rows`, warning about (and skipping) what cannot be read."""
        ...


def line_values(source: Source, rows: FileRows) -> Iterator[tuple[int, Any]]:
    """A line format's values with their lines; a malformed one is a warning, and reading goes on."""
    for line, value in source.values():
        rows.line = line
        if isinstance(value, Problem):
            rows.warn(line, f"{value.message}; {_NEXT_VALUE}" if value.skipped else value.message)
            continue
        yield line, value
