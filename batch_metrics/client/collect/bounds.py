"""The contract's limits on the client's side: what a collector produces is made to fit before it is sent.

models.py states the limits once (docs/endpoint.md#limits says why each); the endpoint refuses what
lies beyond them, so the client never sends it. A long text keeps its start and its end: a message
with a mark saying how much was cut, a one-line text (a name, a platform, a category) around a
short digest of the whole, so two long names that differ only in the middle stay two names. A
duration outside its range is left out (the row is kept), as an unreadable one is.

Rows are fitted where validation finds them over a limit (`fit`), so rows within the limits, all
of them in practice, cost nothing more than their validation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from pydantic_core import ErrorDetails

from batch_metrics.models import MAX_BATCH_ID, MAX_DURATION_SECONDS, MAX_ECOSYSTEM

HEADER_TEXTS = (("batch_id", MAX_BATCH_ID), ("ecosystem", MAX_ECOSYSTEM))
_CUT_MARK = "\n[... {} characters cut ...]\n"
_OUT_OF_RANGE = ("less_than_equal", "greater_than_equal", "finite_number")


def bound_message(message: str | None, limit: int, dropped: int = 0) -> str | None:
    """At most `limit` characters: the start and the end of a long log, and how much was cut.

    `dropped`: characters already cut from the middle of `message` (text streamed past).
    """
    if message is None or (len(message) <= limit and not dropped):
        return message
    mark = _CUT_MARK.format(max(len(message) - limit, 0) + dropped)
    keep = max(limit - len(mark), 0)
    head = keep - keep // 2
    return (message[:head] + mark + message[len(message) - keep // 2 :])[:limit]


def bound_name(text: str, limit: int) -> str:
    """At most `limit` characters of a one-line text: its start and end around `…<digest of the whole>…`."""
    if len(text) <= limit:
        return text
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=4).hexdigest()
    mark = f"…{digest}…"
    keep = limit - len(mark)
    return text[: keep - keep // 2] + mark + text[len(text) - keep // 2 :]


def bound_texts(record: dict[str, Any], texts: tuple[tuple[str, int], ...]) -> None:
    """Trim, in place, each of `texts`' keys that holds a string over its limit."""
    for key, limit in texts:
        value = record.get(key)
        if isinstance(value, str) and len(value) > limit:
            record[key] = bound_name(value, limit)


def fit(document: Any, problems: Sequence[ErrorDetails]) -> dict[tuple[int | str, ...], str]:
    """Fit, in place, the values of `document` that validation found past a limit: a text over its
    length is trimmed, a duration out of its range left out. What was left out, by where it was.

    Any other problem is left for validation to name.
    """
    left_out: dict[tuple[int | str, ...], str] = {}
    for problem in problems:
        kind, loc = problem["type"], problem["loc"]
        if not loc or kind not in ("string_too_long", *_OUT_OF_RANGE):
            continue
        *path, key = loc
        holder = document
        for step in path:
            holder = holder[step]
        if kind == "string_too_long" and isinstance(key, str):
            limit = int((problem.get("ctx") or {})["max_length"])
            value = holder[key]
            holder[key] = bound_message(value, limit) if key == "error_message" else bound_name(value, limit)
        elif key == "duration_seconds":
            value = holder.pop(key)
            left_out[tuple(path)] = (
                f"duration_seconds {value!r} is outside 0 to {MAX_DURATION_SECONDS:g} seconds; left out"
            )
    return left_out
