"""The rows beside the run summary: what the summary adds that no row names, and where the two differ.

A run summary (tsuku's `batch-runs-<ts>.jsonl`) counts platform validations per platform **job**
(`linux-x86_64`), where rows name fine platforms (`linux-alpine-musl-x86_64`): a row belongs to
the summary's platform with the same operating system and architecture. When the rows carry no
passed row (the committed history names only failures), what the summary counts beyond them is
sent as **unlisted** results: totals with no row. When the rows carry passes, they are the record,
and a platform where they differ from the summary is a warning naming the summary's file. Unlisted
results carry an ecosystem only when the files say which (docs/tsuku.md); never a guess.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from batch_metrics.client.collect import Collection, CollectWarning, Summary

if TYPE_CHECKING:
    from batch_metrics.models import RunSummary, UnlistedResults

GENERATION = "generation"
_OUTCOMES = ("passed", "failed", "skipped")


@dataclass
class Reconciled:
    unlisted: list[UnlistedResults] = field(default_factory=list)
    warnings: list[CollectWarning] = field(default_factory=list)


def the_summary(collection: Collection) -> tuple[Summary | None, list[CollectWarning]]:
    """The batch's one run summary; more than one is a warning, and none of them is used."""
    summaries = collection.summaries
    if len(summaries) <= 1:
        return (summaries[0] if summaries else None), []
    places = ", ".join(f"{summary.path}:{summary.line}" for summary in summaries[:5])
    more = f" and {len(summaries) - 5} more" if len(summaries) > 5 else ""
    return None, [CollectWarning(
        summaries[0].path, None,
        f"{len(summaries)} run summaries ({places}{more}): each is the account of one batch, so none is "
        "used; collect only this run's files (changed-since, docs/tsuku.md)",
    )]  # fmt: skip


def one_ecosystem(summary: RunSummary) -> str | None:
    """The ecosystem the summary names when it names exactly one."""
    named = set(summary.get("ecosystems") or {})
    if summary.get("ecosystem"):
        named.add(summary["ecosystem"] or "")
    return named.pop() if len(named) == 1 else None


def _platform_key(name: str) -> tuple[str, str]:
    """(operating system, architecture): `linux-alpine-musl-x86_64` and `linux-x86_64` share one."""
    parts = name.split("-")
    return parts[0], parts[-1]


def reconcile(results: list[Any], summary: Summary) -> Reconciled:
    """Unlisted results and disagreement warnings for `results` (merged) beside `summary`."""
    platforms = summary.values.get("platforms") or {}
    job_of = {_platform_key(name): name for name in platforms}
    counts: dict[str, Counter[str]] = {name: Counter() for name in platforms}
    recipes: dict[str, str] = {}  # validated recipe -> its ecosystem
    has_passes = False
    for row in results:
        if row.get("stage") == GENERATION:
            continue
        has_passes = has_passes or row["result"] == "passed"
        platform = row.get("platform") or ""
        job = platform if platform in platforms else job_of.get(_platform_key(platform))
        if platform and job is not None:
            counts[job][row["result"]] += 1
            recipes[row["recipe_name"]] = row["ecosystem"]
    answer = Reconciled()
    ecosystem = _unlisted_ecosystem(summary.values, recipes)
    for name, totals in platforms.items():
        passed, failed = totals.get("passed") or 0, totals.get("failed") or 0
        skipped = max((totals.get("tested") or 0) - passed - failed, 0)
        said = {"passed": passed, "failed": failed, "skipped": skipped}
        rows = counts[name]
        if has_passes:
            if any(rows[outcome] != said[outcome] for outcome in _OUTCOMES):
                answer.warnings.append(_differ(summary, name, said, rows, "the rows are counted"))
            continue
        beyond = {outcome: said[outcome] - rows[outcome] for outcome in _OUTCOMES}
        if any(value < 0 for value in beyond.values()):
            answer.warnings.append(_differ(summary, name, said, rows, "the rows are counted, none taken off"))
        if any(value > 0 for value in beyond.values()):
            unlisted: UnlistedResults = {
                "platform": name, "passed": max(beyond["passed"], 0), "failed": max(beyond["failed"], 0),
                "skipped": max(beyond["skipped"], 0),
            }  # fmt: skip
            if ecosystem:
                unlisted["ecosystem"] = ecosystem
            answer.unlisted.append(unlisted)
    return answer


def _unlisted_ecosystem(summary: RunSummary, recipes: dict[str, str]) -> str | None:
    """Whose the unlisted results are: the rows' one ecosystem when they name every validated recipe,
    else the summary's one ecosystem, else nobody's (the endpoint files them under the batch's label)."""
    generated = summary.get("generated")
    named = set(recipes.values())
    if recipes and generated == len(recipes) and len(named) == 1:
        return named.pop()
    return one_ecosystem(summary)


def _differ(
    summary: Summary, platform: str, said: dict[str, int], rows: Counter[str], then: str
) -> CollectWarning:
    theirs = ", ".join(f"{said[outcome]} {outcome}" for outcome in _OUTCOMES)
    ours = ", ".join(f"{rows[outcome]} {outcome}" for outcome in _OUTCOMES)
    return CollectWarning(
        summary.path, summary.line,
        f"the run summary counts {theirs} on {platform}, the rows {ours}; {then} (docs/tsuku.md)",
    )  # fmt: skip
