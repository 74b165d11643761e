"""One row per recipe and platform per batch, however many files describe it; then each row's ecosystem.

Collecting reads each file into rows on its own (client.collect). Here, after every file is read,
rows that describe the same result are merged by **(recipe, platform, stage)**, each source
contributing what it knows best (`_RANKS`): the outcome from a result file, the category from a
failure line, the build log and duration from a sandbox result. Rows naming no platform are never
merged (two of them may be two runs), nor are rows whose files name different ecosystems. A
disagreement about the outcome is a warning naming both files, settled by the same ranks, then
failed over passed over skipped. A row whose file named no ecosystem then gets one from another
row of the same recipe, the run summary when it names one ecosystem, or the user's mapping, in
that order; else it keeps the `ecosystem` input (or `unknown`). docs/tsuku.md says why.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import compress
from operator import itemgetter, methodcaller
from typing import TYPE_CHECKING, Any

from batch_metrics.client.collect import Collection, CollectWarning

if TYPE_CHECKING:
    from batch_metrics.models import RecipeResult

MAX_DISAGREEMENTS = 20
# Per field, the formats that know it best (lower first); formats not listed come after.
_RANKS: dict[str, dict[str, int]] = {
    "result": {"validation-results": 0, "payload": 0, "junit": 0, "sandbox-result": 1},
    "error_category": {"ndjson": 0, "failure-records": 0, "sandbox-result": 1},
    "error_message": {"sandbox-result": 0, "failure-records": 1, "ndjson": 1},
    "duration_seconds": {"sandbox-result": 0},
}
_LAST = 9
_OUTCOMES = {"failed": 0, "passed": 1, "skipped": 2}
_ERROR_FIELDS = ("error_category", "error_subcategory", "error_message", "blocked_by")
_PAYLOAD_SOURCE = "a ready payload"


# One source of a row: the row, its file, its format, whether that file named the row's ecosystem.
_Source = tuple[dict[str, Any], str, str, bool]


@dataclass
class Merged:
    results: list[RecipeResult]
    warnings: list[CollectWarning]
    merged: int  # rows folded into another


def _sources(collection: Collection) -> Iterator[tuple[list[Any], int, str, str]]:
    """(rows, their position in collection.results or -1, path, format), in the order they were read."""
    for payload in collection.payloads:
        yield payload["results"], -1, _PAYLOAD_SOURCE, "payload"
    results, spans = collection.results, collection.spans
    first = spans[0].start if spans else len(results)
    if first:  # rows put in a collection by hand, not read from a file
        yield results[:first], 0, "", ""
    for number, span in enumerate(spans):
        end = spans[number + 1].start if number + 1 < len(spans) else len(results)
        yield results[span.start : end], span.start, span.path, span.fmt


def merge_rows(
    collection: Collection, *, ecosystem_map: Mapping[str, str] | None = None,
    category_map: Mapping[str, str] | None = None, summary_ecosystem: str | None = None,
) -> Merged:  # fmt: skip
    """The collection's rows (ready payloads' first), merged by key and attributed to ecosystems.

    One pass, a dictionary lookup a row; which rows still hold the default ecosystem is followed
    only when something could name theirs (a row that names one, the summary, the map).
    """
    results = collection.results
    tracked = bool(collection.payloads or collection.named or summary_ecosystem or ecosystem_map)
    defaulted = bytearray(b"\x01") * len(results) if tracked else bytearray()  # 1: its file named none
    for position in collection.named:
        defaulted[position] = 0
    if not collection.payloads and _all_distinct(results):  # the usual case, at C speed: nothing to merge
        unnamed = set(compress(range(len(results)), defaulted))
        return _finish(results, unnamed, [], 0, ecosystem_map, category_map, summary_ecosystem)
    kept: list[Any] = []
    starts: list[int] = []  # where each source's rows start in `kept`
    files: list[tuple[str, str]] = []
    open_slots: set[int] = set()  # kept rows whose ecosystem is still the default
    slot_of: dict[tuple[Any, ...], int] = {}
    merged: dict[int, list[_Source]] = {}
    keep, find = kept.append, slot_of.get
    for rows, start, path, fmt in _sources(collection):
        starts.append(len(kept))
        files.append((path, fmt))
        for offset, row in enumerate(rows):
            own = not tracked or start < 0 or not defaulted[start + offset]
            platform = row.get("platform")
            if not platform:  # never merged: two rows without a platform may be two runs
                if not own:
                    open_slots.add(len(kept))
                keep(row)
                continue
            key: tuple[Any, ...] = (row["recipe_name"], platform, row.get("stage"))
            slot = find(key)
            # Two files that name different ecosystems for it describe two results.
            named = slot is not None and tracked and own and slot not in open_slots
            if named and kept[slot]["ecosystem"] != row["ecosystem"]:  # type: ignore[index]
                key = (*key, row["ecosystem"])
                slot = find(key)
            if slot is None:
                slot_of[key] = len(kept)
                if not own:
                    open_slots.add(len(kept))
                keep(row)
                continue
            if slot not in merged:
                first = files[bisect_right(starts, slot) - 1]
                merged[slot] = [(kept[slot], *first, slot not in open_slots)]
            merged[slot].append((row, path, fmt, own))
    warnings: list[CollectWarning] = []
    for slot, sources in merged.items():
        kept[slot], own = _combine(sources, warnings)
        if own:
            open_slots.discard(slot)
    if len(warnings) > MAX_DISAGREEMENTS:
        hidden = len(warnings) - MAX_DISAGREEMENTS
        warnings = [*warnings[:MAX_DISAGREEMENTS], CollectWarning("", None, f"{hidden} more disagreements")]
    folded = sum(len(sources) - 1 for sources in merged.values())
    return _finish(kept, open_slots, warnings, folded, ecosystem_map, category_map, summary_ecosystem)


_PLATFORM = methodcaller("get", "platform")
_RECIPE = itemgetter("recipe_name")


def _all_distinct(rows: list[Any]) -> bool:
    """Whether no two rows share recipe and platform (rows without a platform included).

    Rows of distinct recipes cannot share a key: that set of names, whose hashes the strings
    keep, is checked first; only when a name repeats are the pairs built.
    """
    count = len(rows)
    return (
        len(set(map(_RECIPE, rows))) == count
        or len(set(zip(map(_RECIPE, rows), map(_PLATFORM, rows), strict=True))) == count
    )


def _finish(
    kept: list[Any], open_slots: set[int], warnings: list[CollectWarning], folded: int,
    ecosystem_map: Mapping[str, str] | None, category_map: Mapping[str, str] | None,
    summary_ecosystem: str | None,
) -> Merged:  # fmt: skip
    """The merged rows with ecosystems found for those still holding the default, categories renamed."""
    if open_slots:
        _attribute(kept, open_slots, ecosystem_map or {}, summary_ecosystem)
    if category_map:
        for row in kept:
            category = row.get("error_category")
            if category in category_map:
                row["error_category"] = category_map[category]
    return Merged(kept, warnings, folded)


def _rank(field_name: str, fmt: str) -> int:
    return _RANKS[field_name].get(fmt, _LAST)


def _combine(sources: list[_Source], warnings: list[CollectWarning]) -> tuple[dict[str, Any], bool]:
    """One row from the sources of one result, and whether a source named its ecosystem."""
    order = sorted(sources, key=lambda item: (_rank("result", item[2]), _OUTCOMES.get(item[0]["result"], 3)))
    winner, path, fmt, _ = order[0]
    row = dict(winner)
    for other, other_path, _, _ in order[1:]:
        if other["result"] != row["result"]:
            warnings.append(CollectWarning(
                path, None,
                f"{row['recipe_name']} on {row.get('platform')}: {row['result']} here, {other['result']} in "
                f"{other_path}; counted as {row['result']} ({fmt} decides, docs/tsuku.md)",
            ))  # fmt: skip
            break
    for name in ("error_category", "error_message", "duration_seconds"):
        best = _best(sources, name, name)
        if best is not None:
            row[name] = best
    subcategory = _best(sources, "error_subcategory", "error_category")
    if subcategory is not None:
        row["error_subcategory"] = subcategory
    for name in ("blocked_by", "attempts"):
        if row.get(name) is None:
            row[name] = next((item[0][name] for item in order if item[0].get(name) is not None), None)
    if row["result"] != "failed":
        for name in _ERROR_FIELDS:
            row.pop(name, None)
    named = [item for item in order if item[3]]
    if named:
        row["ecosystem"] = named[0][0]["ecosystem"]
    return {key: value for key, value in row.items() if value is not None}, bool(named)


def _best(sources: list[_Source], name: str, rank: str) -> Any:
    """`name` from the source that knows it best (the `rank` field's order), skipping those without it."""
    having = [item for item in sources if item[0].get(name) is not None]
    return min(having, key=lambda item: _rank(rank, item[2]))[0][name] if having else None


def _attribute(
    kept: list[Any], open_slots: set[int], ecosystem_map: Mapping[str, str], summary_ecosystem: str | None
) -> None:
    """An ecosystem for each row still holding the default: same recipe, the summary, the mapping."""
    named: dict[str, set[str]] = {}
    for position, row in enumerate(kept):
        if position not in open_slots:
            named.setdefault(row["recipe_name"], set()).add(row["ecosystem"])
    if not (named or summary_ecosystem or ecosystem_map):
        return
    for position in open_slots:
        row = kept[position]
        same = named.get(row["recipe_name"])
        if same is not None and len(same) == 1:
            row["ecosystem"] = next(iter(same))
        elif summary_ecosystem:
            row["ecosystem"] = summary_ecosystem
        elif row["recipe_name"] in ecosystem_map:
            row["ecosystem"] = ecosystem_map[row["recipe_name"]]
