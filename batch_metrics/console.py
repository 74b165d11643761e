"""The console every command writes to, which a narrow code page, a closed pipe or a full disk cannot break.

Metrics must never break the pipeline they measure, and that includes the act of saying so.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from typing import TextIO, cast


def tolerate_narrow_consoles() -> None:
    """A recipe name the console cannot encode (Windows runners default to cp1252) must not stop a run."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")


class _ForgivingStream(io.TextIOBase):
    """stdout or stderr that a closed pipe (`| head -0`) or a full disk (/dev/full) cannot break.

    Each write is flushed at once, so a failure shows up here rather than at exit; after one, the
    file descriptor is pointed at /dev/null, so neither later writes nor the interpreter's final
    flush raise (the recipe in the `signal` module's notes on SIGPIPE). The log is lost; the job,
    whose results are in the payload and $GITHUB_OUTPUT, goes on.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def writable(self) -> bool:
        return True

    # What code that inspects the console asks of it (the logging handlers, a server's banner).
    @property
    def encoding(self) -> str:  # type: ignore[override]  # TextIOBase declares it as an attribute
        return self.stream.encoding

    def fileno(self) -> int:
        return self.stream.fileno()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def write(self, text: str) -> int:
        with contextlib.suppress(ValueError):  # ValueError: the stream was closed outright
            try:
                self.stream.write(text)
                self.stream.flush()
            except OSError:
                self._to_devnull()
        return len(text)

    def flush(self) -> None:
        with contextlib.suppress(ValueError):
            try:
                self.stream.flush()
            except OSError:
                self._to_devnull()

    def _to_devnull(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self.stream.fileno())
        os.close(devnull)


def forgiving(stream: TextIO | None) -> TextIO:
    """`stream` made forgiving; Python gives None for a descriptor closed from the start (`>&-`)."""
    return cast(TextIO, _ForgivingStream(stream or open(os.devnull, "w", encoding="utf-8")))
