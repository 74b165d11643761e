"""The user's mappings: recipe → ecosystem (`ecosystem-map`) and category → category (`category-map`).

Both take `name=value` lines. `ecosystem-map` may instead name a JSON file (relative to the
workspace): an object of recipe → ecosystem, or tsuku's `data/queues/priority-queue.json`,
whose `entries[]` give each recipe's `name` and its `source` (`<ecosystem>:<package>`). A bad
line or file is a problem in words, never an exception: the mapping keeps what it could read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_MAX_FILE_BYTES = 64 * 1024 * 1024


def parse_lines(text: str, name: str) -> tuple[dict[str, str], list[str]]:
    """`key=value` lines (blank and `#` lines ignored) and the problems found."""
    mapping: dict[str, str] = {}
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip() or not value.strip():
            problems.append(f"input {name}, line {number}: {line[:60]!r} is not name=value; ignored")
            continue
        mapping[key.strip()] = value.strip()
    return mapping, problems


def ecosystem_map(text: str, workspace: Path) -> tuple[dict[str, str], list[str]]:
    """The recipe → ecosystem mapping `ecosystem-map` gives: lines, or a JSON file's."""
    text = text.strip()
    if not text:
        return {}, []
    if "=" in text or "\n" in text:
        return parse_lines(text, "ecosystem-map")
    try:
        with (workspace / text).open("rb") as stream:
            raw = stream.read(_MAX_FILE_BYTES + 1)
        if len(raw) > _MAX_FILE_BYTES:
            raise ValueError(f"larger than {_MAX_FILE_BYTES // (1024 * 1024)} MiB")
        data = json.loads(raw)
    except (OSError, ValueError, RecursionError) as error:
        why = error.strerror if isinstance(error, OSError) and error.strerror else str(error)[:80]
        return {}, [f"input ecosystem-map: cannot read {text} as JSON ({why}); no mapping used"]
    mapping = _from_json(data)
    if mapping is None:
        return {}, [
            f"input ecosystem-map: {text} is neither an object of recipe → ecosystem nor a queue with "
            "entries[].name and .source; no mapping used"
        ]
    return mapping, []


def _from_json(data: Any) -> dict[str, str] | None:
    if isinstance(data, dict) and isinstance(data.get("entries"), list):
        mapping = {}
        for entry in data["entries"]:
            if not isinstance(entry, dict):
                continue
            name, source = entry.get("name"), entry.get("source")
            if isinstance(name, str) and isinstance(source, str) and ":" in source:
                mapping[name] = source.split(":", 1)[0]
        # A tap's formula (`owner/tap/name`) is generated as the recipe `name`.
        for name, ecosystem in list(mapping.items()):
            mapping.setdefault(name.rsplit("/", 1)[-1], ecosystem)
        return mapping
    if isinstance(data, dict) and all(isinstance(value, str) for value in data.values()):
        return {str(key): value for key, value in data.items()}
    return None
