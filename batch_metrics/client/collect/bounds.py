"""The contract's limits on the client's side: what a collector produces is made to fit before it is sent.

models.py states the limits once (docs/endpoint.md#limits says why each); the endpoint refuses what
lies beyond them, so the client never sends it. A long text keeps its start and its end: a message
with a mark saying how much was cut, a one-line text (a name, a platform, a category) around a
short digest of the whole, so two long names that differ only in the middle stay two names. A
duration outside its range is left out (the row is kept), as an unreadable one is.
"""

from __future__ import annotations

import hashlib
from typing import Any

from batch_metrics.models import (
    MAX_BATCH_ID,
    MAX_DURATION_SECONDS,
    MAX_ECOSYSTEM,
    MAX_ERROR_CATEGORY,
    MAX_ERROR_MESSAGE,
    MAX_PLATFORM,
    MAX_RECIPE_NAME,
    MAX_RESULT,
)

_ROW_TEXTS = (
    ("recipe_name", MAX_RECIPE_NAME),
    ("ecosystem", MAX_ECOSYSTEM),
    ("result", MAX_RESULT),
    ("error_category", MAX_ERROR_CATEGORY),
    ("platform", MAX_PLATFORM),
)
HEADER_TEXTS = (("batch_id", MAX_BATCH_ID), ("ecosystem", MAX_ECOSYSTEM))
_CUT_MARK = "\n[... {} characters cut ...]\n"


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
        if value.__class__ is str and len(value) > limit:
            record[key] = bound_name(value, limit)


def bound_row(row: dict[str, Any], message_limit: int = MAX_ERROR_MESSAGE) -> str | None:
    """Fit one row to the contract, in place; what was left out, for a warning, else None.

    A value of the wrong type is left as it is: validation names it.
    """
    bound_texts(row, _ROW_TEXTS)
    message = row.get("error_message")
    if message.__class__ is str and len(message) > message_limit:
        row["error_message"] = bound_message(message, message_limit)
    seconds = row.get("duration_seconds")
    if seconds.__class__ in (int, float) and not 0 <= seconds <= MAX_DURATION_SECONDS:
        del row["duration_seconds"]
        return f"duration_seconds {seconds!r} is outside 0 to {MAX_DURATION_SECONDS:g} seconds; left out"
    return None
