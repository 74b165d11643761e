"""JSON values from a byte stream: one per line, one document, or pretty-printed one after another.

The stream is read in *segments*: a segment starts at a line that opens a value at
column 0 (`{` or `[`) and runs to the next such line. An NDJSON line is a segment;
so is a pretty-printed value (its inner lines are indented) and a one-document file.

- Each segment is first parsed whole by pydantic-core (the fast path: almost every
  segment of a good file is exactly one value).
- When that fails, the standard library's decoder reads values one after another
  from the segment. A value that runs past the end of the segment (an array whose
  items start at column 0) gets a window of twice as many segments, and again.
  A malformed value yields one `Problem` and reading resumes at the first segment
  at or after the place where it broke.

So every byte is parsed a bounded number of times (time linear in the input,
however many lines are bad), an error's position is counted within its window
only, and memory holds one window, never the whole file. Nothing here raises
for bad input; the caller decides what a `Problem` means for its file.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_left
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, BinaryIO

from pydantic_core import from_json

_CHUNK = 1 << 20
_LINES_PER_PIECE = 64  # past this many lines in one piece, read on in chunks
_OPENS = re.compile(rb"\n(?=[\[{])")
_VALUE_START = re.compile(rb"[^ \t\r\n]")
_TEXT_START = re.compile(r"[^ \t\r\n]")
_OPENERS = (b"{", b"[")
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Problem:
    """Text that is not (all) a JSON value. `skipped`: no value came of it."""

    message: str
    skipped: bool = True


@dataclass
class _Segment:
    line: int
    data: bytes
    text: str | None = field(default=None)
    tried: bool = False  # parsed whole (and found not to be one value)


def json_values(stream: BinaryIO) -> Iterator[tuple[int, Any]]:
    """(line, value) for every JSON value in the stream, and (line, Problem) where text is not one."""
    return _Reader(_segments(stream)).values()


def _segments(stream: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """The stream cut before every line that starts with `{` or `[`: (first line, bytes) of each piece.

    Line by line while pieces are a line or a few (NDJSON), then in big chunks once one
    runs over many lines (a pretty-printed document): each way is fastest for its input.
    """
    first = stream.readline().removeprefix(_BOM)
    if not first:
        return
    start, piece = 1, first  # the piece being read: its first line, and the lines after it in `more`
    more: list[bytes] = []
    for number, raw in enumerate(stream, 2):
        if raw[:1] in _OPENERS:
            yield start, b"".join((piece, *more)) if more else piece
            start, piece = number, raw
            if more:
                more = []
        else:
            more.append(raw)
            if len(more) >= _LINES_PER_PIECE:
                yield from _chunked_segments(stream, start, [piece, *more])
                return
    yield start, b"".join((piece, *more)) if more else piece


def _chunked_segments(stream: BinaryIO, line: int, parts: list[bytes]) -> Iterator[tuple[int, bytes]]:
    """`_segments` for the rest of the stream, read in chunks; `parts` are whole lines read already."""
    ended_line = True
    while chunk := stream.read(_CHUNK):
        cuts = [match.end() for match in _OPENS.finditer(chunk)]
        if ended_line and chunk[:1] in _OPENERS:
            cuts.insert(0, 0)
        begin = 0
        for cut in cuts:
            if parts:
                parts.append(chunk[begin:cut])
                data, parts = b"".join(parts), []
            else:
                data = chunk[begin:cut]
            if data:
                yield line, data
                line += data.count(b"\n")
            begin = cut
        parts.append(chunk[begin:])
        ended_line = chunk.endswith(b"\n")
    data = b"".join(parts)
    if data:
        yield line, data


class _Reader:
    def __init__(self, segments: Iterator[tuple[int, bytes]]) -> None:
        self.segments = segments
        self.pending: deque[_Segment] = deque()
        self.decoder = json.JSONDecoder()
        self.replaced = False  # undecodable bytes already reported once
        self.notes: list[tuple[int, Problem]] = []  # to yield before the next value

    def values(self) -> Iterator[tuple[int, Any]]:
        for line, data in self.segments:
            try:
                value = from_json(data)
            except ValueError:
                self.pending.append(_Segment(line, data, tried=True))
                yield from self._drain()
                continue
            yield (line if data[:1] in _OPENERS else line + data.count(b"\n", 0, _start_of(data))), value

    def _drain(self) -> Iterator[tuple[int, Any]]:
        """The pending segments, the first of which is not one value on its own."""
        while self.pending:
            segment = self.pending[0]
            if _start_of(segment.data) == len(segment.data):  # blank
                self.pending.popleft()
                continue
            if not segment.tried:
                segment.tried = True
                try:
                    value = from_json(segment.data)
                except ValueError:
                    pass
                else:
                    self.pending.popleft()
                    yield segment.line + segment.data.count(b"\n", 0, _start_of(segment.data)), value
                    continue
            yield from self._decode_one_by_one()

    def _fill(self, count: int) -> bool:
        """Hold at least `count` segments when the stream has them; whether it does."""
        while len(self.pending) < count:
            found = next(self.segments, None)
            if found is None:
                return False
            self.pending.append(_Segment(*found))
        return True

    def _decoded(self, segment: _Segment) -> str:
        if segment.text is None:
            try:
                segment.text = segment.data.decode()
            except UnicodeDecodeError as error:
                segment.text = segment.data.decode(errors="replace")
                if not self.replaced:
                    self.replaced = True
                    line = segment.line + segment.data.count(b"\n", 0, error.start)
                    self.notes.append(
                        (line, Problem("not UTF-8 text; undecodable bytes replaced", skipped=False))
                    )
        return segment.text

    def _join(self, count: int) -> tuple[str, list[int]]:
        """The text of the first `count` segments and where each begins in it."""
        texts = [self._decoded(segment) for segment in islice(self.pending, count)]
        if len(texts) == 1:
            return texts[0], [0]
        starts, offset = [], 0
        for piece in texts:
            starts.append(offset)
            offset += len(piece)
        return "".join(texts), starts

    def _decode_one_by_one(self) -> Iterator[tuple[int, Any]]:
        """Values from the first pending segment on, one by one; drops the segments it has read."""
        count = 1
        text, starts = self._join(count)
        line, counted, index = self.pending[0].line, 0, 0
        while True:
            if self.notes:
                yield from self.notes
                self.notes.clear()
            index = _skip_blank(text, index)
            line += text.count("\n", counted, index)
            counted = index
            later = bisect_left(starts, index)
            if index == len(text) or (index > 0 and later < len(starts) and starts[later] == index):
                self._drop(later if index < len(text) else count)
                return
            try:
                value, stop = self.decoder.raw_decode(text, index)
            except json.JSONDecodeError as error:
                # Only running out of text fails at its very end (a string never spans lines):
                # then the value may go on in the next segments, so read twice as far.
                if error.pos >= len(text) and self._fill(count + 1):
                    self._fill(count * 2)
                    count = min(count * 2, len(self.pending))
                    text, starts = self._join(count)
                    continue
                broken_at = self.pending[0].line + error.lineno - 1
                detail = f"{error.msg} at line {broken_at}" if broken_at != line else error.msg
                yield line, Problem(f"malformed JSON ({detail})")
                self._drop(bisect_left(starts, max(index + 1, error.pos)))
                return
            except Exception as error:  # nested too deep, a number past int's digit limit, ...
                yield line, Problem(f"unreadable JSON value ({f'{type(error).__name__}: {error}'[:160]})")
                self._drop(count)
                return
            yield line, value
            index = stop

    def _drop(self, count: int) -> None:
        for _ in range(min(count, len(self.pending))):
            self.pending.popleft()


def _start_of(data: bytes) -> int:
    found = _VALUE_START.search(data)
    return found.start() if found else len(data)


def _skip_blank(text: str, index: int) -> int:
    found = _TEXT_START.search(text, index)
    return found.start() if found else len(text)
