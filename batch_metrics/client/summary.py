"""The job summary: what the batch holds and what went wrong, in Markdown that renders no outside text.

Every outside text is redacted before it is cut or escaped (see redact.py), so neither can leave
part of a secret where the runner's masking no longer sees it.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batch_metrics.client.redact import Redactor

if TYPE_CHECKING:
    from batch_metrics.models import BatchPayload

# GitHub refuses a step summary of 1 MiB or more; keep a margin for the cut note.
SUMMARY_LIMIT = 1024 * 1024 - 1024
SUMMARY_FAILURES = 30
SUMMARY_ROWS = 100
SUMMARY_WARNINGS = 20
SUMMARY_CHANGES = 20
_SAID = (("new_failures", "new failures"), ("fixed", "fixed"), ("still_failing", "still failing"),
         ("new_recipes", "new recipes"), ("gone_recipes", "gone recipes"))  # fmt: skip

# After html.escape: what Markdown would still read as emphasis, code, links, tables, headings or mentions.
_MARKDOWN_SPECIALS = str.maketrans({char: f"&#{ord(char)};" for char in "\\`*_{}[]()|~#!@"})


def md(text: object, limit: int = 200) -> str:
    """Outside text made inert in Markdown and HTML, on one line, at most `limit` characters of it."""
    value = str(text)
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    value = html.escape(value, quote=True).translate(_MARKDOWN_SPECIALS)
    return value.replace("\r\n", "<br>").replace("\r", "<br>").replace("\n", "<br>")


def render_summary(
    payload: BatchPayload,
    *,
    status: str,
    detail: str,
    warnings: Sequence[str],
    limit: int = SUMMARY_LIMIT,
    redact: Callable[[str], str] | None = None,
    changes: list[dict[str, Any]] | None = None,
) -> str:
    """The job summary: totals, what changed since the previous run (when the endpoint said), a table by
    ecosystem and platform, top categories, the first failures, the first warnings; cut with a note if it
    would reach `limit` bytes.

    Every outside text is redacted (`redact`, else credential shapes only) before it is cut or
    escaped, so neither can leave part of a secret where the runner's masking no longer sees it.
    """
    redact = redact or Redactor()

    def show(text: object, limit: int = 200) -> str:
        return md(redact(str(text)), limit)

    counts = [payload.get(key) or 0 for key in ("total_recipes", "passed", "failed", "skipped")]
    rate = payload.get("success_rate") or 0.0
    lines = [
        f"## Batch metrics: {show(payload['batch_id'])}",
        "",
        f"**Upload:** {show(status)} — {show(detail, 500)}",
        "",
        "| Ecosystem | Total | Passed | Failed | Skipped | Success rate |",
        "|---|---:|---:|---:|---:|---:|",
        f"| {show(payload['ecosystem'])} | " + " | ".join(map(str, counts)) + f" | {rate:.1%} |",
        "",
    ]
    if changes is not None:
        lines += since_previous_run(changes, show)
    # Platform validations: rows of the generation stage are counted apart, unlisted results added.
    validations = [row for row in payload["results"] if row.get("stage") != "generation"]
    generation = len(payload["results"]) - len(validations)
    if generation:
        lines += [f"Generation failures (not platform validations): {generation}", ""]
    groups: Counter[tuple[str, str, str]] = Counter(
        (row["ecosystem"], row.get("platform") or "—", row["result"]) for row in validations
    )
    for entry in payload.get("unlisted") or ():
        eco = entry.get("ecosystem") or payload["ecosystem"]
        counted = (entry.get("passed") or 0, entry.get("failed") or 0, entry.get("skipped") or 0)
        for result, count in zip(("passed", "failed", "skipped"), counted, strict=True):
            groups[eco, entry["platform"], result] += count
    keys = sorted({(eco, platform) for eco, platform, _ in groups})
    if keys:
        lines += [
            "### By ecosystem and platform",
            "",
            "| Ecosystem | Platform | Passed | Failed | Skipped |",
            "|---|---|---:|---:|---:|",
        ]
        for eco, platform in keys[:SUMMARY_ROWS]:
            counts = [groups[(eco, platform, result)] for result in ("passed", "failed", "skipped")]
            lines.append(f"| {show(eco)} | {show(platform)} | " + " | ".join(map(str, counts)) + " |")
        if len(keys) > SUMMARY_ROWS:
            lines.append(f"\n{len(keys) - SUMMARY_ROWS} more rows not shown.")
        lines.append("")
    failures = [row for row in payload["results"] if row["result"] == "failed"]
    categories = Counter(row.get("error_category") or "uncategorised" for row in failures)
    if categories:
        lines += ["### Top failure categories", "", "| Category | Failures |", "|---|---:|"]
        lines += [f"| {show(name)} | {count} |" for name, count in categories.most_common(10)]
        lines.append("")
    if failures:
        lines += [
            f"### First failures ({min(len(failures), SUMMARY_FAILURES)} of {len(failures)})",
            "",
            "| Recipe | Platform | Category | Message |",
            "|---|---|---|---|",
        ]
        for row in failures[:SUMMARY_FAILURES]:
            error = row.get("error_message")
            message = f"<code>{show(error, 300)}</code>" if error else ""
            lines.append(
                f"| {show(row['recipe_name'])} | {show(row.get('platform') or '—')} "
                f"| {show(row.get('error_category') or '')} | {message} |"
            )
        lines.append("")
    if warnings:
        lines += [f"### Warnings ({len(warnings)})", ""]
        lines += [f"- {show(text, 300)}" for text in warnings[:SUMMARY_WARNINGS]]
        if len(warnings) > SUMMARY_WARNINGS:
            lines.append(f"- {len(warnings) - SUMMARY_WARNINGS} more in the step log")
        lines.append("")
    text = "\n".join(lines) + "\n"
    note = "\n_Summary cut to stay under GitHub's 1 MiB limit._\n"
    if len(text.encode()) >= limit:
        budget = limit - len(note.encode()) - 1
        text = text.encode()[:budget].decode(errors="ignore").rsplit("\n", 1)[0] + "\n" + note
    return text


def _new_failure(entry: dict[str, Any]) -> str:
    why = " / ".join(filter(None, (entry["error_category"], entry["error_subcategory"])))
    return why + (" (new recipe)" if entry["new_recipe"] else "")


def _fixed(entry: dict[str, Any]) -> str:
    return f"after {entry['failed_runs']} failed runs"


def _still_failing(entry: dict[str, Any]) -> str:
    return f"{entry['failed_runs']} runs"


def changed_line(change: dict[str, Any]) -> str:
    """One ecosystem's comparison in one plain line (the `upload` command prints it)."""
    counts = change["counts"]
    if change["previous_run_id"] is None:
        return f"{change['ecosystem']}: its first run, nothing to compare with"
    said = ", ".join(f"{counts[name]} {words}" for name, words in _SAID)
    return f"{change['ecosystem']} since run {change['previous_run_id']}: {said}"


def since_previous_run(changes: list[dict[str, Any]], show: Callable[..., str]) -> list[str]:
    """What changed since each ecosystem's previous run: counts, then the new failures and the fixed ones
    (the first SUMMARY_CHANGES of each), and what still fails the longest."""
    lines = ["### Since the previous run", ""]
    if not changes:
        return [*lines, "No platform validation to compare.", ""]
    for change in changes:
        eco = show(change["ecosystem"])
        if change["previous_run_id"] is None:
            lines += [f"**{eco}**: its first run, nothing to compare with.", ""]
            continue
        lines += [f"**{eco}**" + show(changed_line(change).removeprefix(change["ecosystem"]), 500) + ".", ""]
        still = sorted(change["still_failing"], key=lambda entry: -int(entry["failed_runs"]))
        for title, entries, detail in (
            ("New failures", change["new_failures"], _new_failure),
            ("Fixed", change["fixed"], _fixed),
            ("Still failing the longest", still, _still_failing),
        ):
            if entries:
                lines += [f"{title}:", "", "| Recipe | Platform | |", "|---|---|---|"]
                lines += [
                    f"| {show(entry['recipe_name'])} | {show(entry['platform'] or '—')} | "
                    f"{show(detail(entry))} |"
                    for entry in entries[:SUMMARY_CHANGES]
                ]
                lines.append("")
    return lines


def write_summary(text: str, env: Mapping[str, str]) -> bool:
    """Append to $GITHUB_STEP_SUMMARY; False when there is none (not under Actions)."""
    target = env.get("GITHUB_STEP_SUMMARY")
    if not target:
        return False
    with Path(target).open("a", encoding="utf-8") as out:
        out.write(text)
    return True
