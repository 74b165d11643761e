"""GitHub Actions glue: inputs, workflow commands, step outputs and the job summary.

Docker actions get each input as `INPUT_<NAME>` with hyphens kept
(`INPUT_BATCH-ID`); the composite action maps them through `env:` with
underscores (`INPUT_BATCH_ID`). Both spellings are read.
"""

from __future__ import annotations

import html
import secrets
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from batch_metrics.collectors import FORMATS
from batch_metrics.models import BatchPayload

INPUT_DEFAULTS: dict[str, str] = {
    "endpoint": "",
    "token": "",
    "results": "**/validation-results-*.json",
    "format": "auto",
    "ecosystem": "",
    "batch-id": "",
    "started-at": "",
    "fail-on-error": "false",
    "dry-run": "false",
    "timeout": "30",
    "retries": "3",
    "payload-path": "batch-metrics-payload.json",
    "summary": "true",
}
OUTPUT_NAMES = (
    "status",
    "batch-run-id",
    "total",
    "passed",
    "failed",
    "skipped",
    "success-rate",
    "payload-path",
)
SUMMARY_LIMIT = 1024 * 1024 - 4096
MAX_WARNINGS_SHOWN = 50
_TRUE = ("true", "True", "TRUE")
_FALSE = ("false", "False", "FALSE")


@dataclass(frozen=True)
class Inputs:
    endpoint: str
    token: str
    results: str
    format: str
    ecosystem: str | None
    batch_id: str | None
    started_at: str | None
    fail_on_error: bool
    dry_run: bool
    timeout: float
    retries: int
    payload_path: str
    summary: bool


def raw_input(env: Mapping[str, str], name: str) -> str:
    """An input's value from either spelling of its variable, else its default."""
    upper = name.upper()
    for key in (f"INPUT_{upper}", f"INPUT_{upper.replace('-', '_')}"):
        value = env.get(key)
        if value is not None and value.strip():
            return value.strip() if name != "results" else value
    return INPUT_DEFAULTS[name]


def read_inputs(
    env: Mapping[str, str], overrides: Mapping[str, str] | None = None
) -> tuple[Inputs, list[str]]:
    """Parse the inputs; a bad value falls back to its default with a message, never an exception."""
    problems: list[str] = []
    given = {name: raw_input(env, name) for name in INPUT_DEFAULTS}
    given.update({name: value for name, value in (overrides or {}).items() if value is not None})

    def flag(name: str) -> bool:
        value = given[name].strip()
        if value in _TRUE or value in _FALSE:
            return value in _TRUE
        problems.append(f"input {name}: {value[:40]!r} is not true or false; using {INPUT_DEFAULTS[name]}")
        return INPUT_DEFAULTS[name] == "true"

    def number(name: str, kind: type[float] | type[int], low: float, high: float) -> float:
        try:
            value = kind(given[name])
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            problems.append(
                f"input {name}: {given[name][:40]!r} is not a number from {low:g} to {high:g}; "
                f"using {INPUT_DEFAULTS[name]}"
            )
            return kind(INPUT_DEFAULTS[name])
        return value

    fmt = given["format"].strip().lower()
    if fmt != "auto" and fmt not in FORMATS:
        problems.append(f"input format: {fmt[:40]!r} is not auto or one of {', '.join(FORMATS)}; using auto")
        fmt = "auto"
    inputs = Inputs(
        endpoint=given["endpoint"].strip(),
        token=given["token"].strip(),
        results=given["results"],
        format=fmt,
        ecosystem=given["ecosystem"].strip() or None,
        batch_id=given["batch-id"].strip() or None,
        started_at=given["started-at"].strip() or None,
        fail_on_error=flag("fail-on-error"),
        dry_run=flag("dry-run"),
        timeout=number("timeout", float, 1, 3600),
        retries=int(number("retries", int, 0, 20)),
        payload_path=given["payload-path"].strip() or INPUT_DEFAULTS["payload-path"],
        summary=flag("summary"),
    )
    return inputs, problems


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


class Reporter:
    """Says things to the person reading the log: workflow commands under Actions, plain lines elsewhere."""

    def __init__(self, env: Mapping[str, str], stream: TextIO | None = None) -> None:
        self.actions = env.get("GITHUB_ACTIONS") == "true"
        self.stream = stream or sys.stdout
        self.warnings_shown = 0
        self.warnings_hidden = 0
        self.masked: set[str] = set()

    def mask(self, secret: str) -> None:
        if not self.actions:
            return
        for line in secret.splitlines():
            if line.strip() and line not in self.masked:
                self.masked.add(line)
                print(f"::add-mask::{escape_data(line)}", file=self.stream, flush=True)

    def info(self, message: str) -> None:
        print(message, file=self.stream if self.actions else sys.stderr, flush=True)

    def warning(self, message: str, *, file: str | None = None, line: int | None = None) -> None:
        if self.warnings_shown >= MAX_WARNINGS_SHOWN:
            self.warnings_hidden += 1
            return
        self.warnings_shown += 1
        if self.actions:
            props = ",".join(
                f"{key}={escape_property(str(value))}"
                for key, value in (("file", file), ("line", line))
                if value
            )
            print(
                f"::warning{' ' + props if props else ''}::{escape_data(message)}",
                file=self.stream,
                flush=True,
            )
        else:
            where = f"{file}:{line}: " if file and line else (f"{file}: " if file else "")
            print(f"warning: {where}{message}", file=sys.stderr, flush=True)

    def flush_hidden(self) -> None:
        if self.warnings_hidden:
            hidden, self.warnings_hidden = self.warnings_hidden, 0
            self.warnings_shown = 0
            self.warning(f"{hidden} more warnings not shown")


def write_outputs(outputs: Mapping[str, str], env: Mapping[str, str], stream: TextIO | None = None) -> None:
    """Append to $GITHUB_OUTPUT in the heredoc form, with a delimiter no value contains."""
    target = env.get("GITHUB_OUTPUT")
    if not target:
        for name, value in outputs.items():
            print(f"{name}={value}", file=stream or sys.stdout)
        return
    with Path(target).open("a", encoding="utf-8") as out:
        for name, value in outputs.items():
            delimiter = f"ghadelimiter_{secrets.token_hex(8)}"
            while delimiter in value:
                delimiter = f"ghadelimiter_{secrets.token_hex(8)}"
            out.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


_MARKDOWN_SPECIALS = str.maketrans({char: f"&#{ord(char)};" for char in "\\`*_{}[]()|~"})


def md(text: object, limit: int = 200) -> str:
    """Safe inside Markdown and HTML: no tags, links, emphasis, code spans or table breaks survive."""
    value = str(text)
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    value = html.escape(value, quote=True).translate(_MARKDOWN_SPECIALS)
    return value.replace("\r", " ").replace("\n", "<br>")


def render_summary(
    payload: BatchPayload,
    *,
    status: str,
    detail: str,
    warnings: Sequence[str],
    max_failures: int = 30,
) -> str:
    """The job summary: totals, a table by ecosystem and platform, top categories, the first failures."""
    lines = [
        f"## Batch metrics: {md(payload.batch_id)}",
        "",
        f"**Upload:** {md(status)} — {md(detail, 300)}",
        "",
        "| Ecosystem | Total | Passed | Failed | Skipped | Success rate |",
        "|---|---:|---:|---:|---:|---:|",
        f"| {md(payload.ecosystem)} | {payload.total_recipes} | {payload.passed} | {payload.failed} "
        f"| {payload.skipped} | {payload.success_rate:.1%} |",
        "",
    ]
    groups: Counter[tuple[str, str, str]] = Counter(
        (row.ecosystem, row.platform or "—", row.result) for row in payload.results
    )
    keys = sorted({(eco, platform) for eco, platform, _ in groups})
    if keys:
        lines += [
            "### By ecosystem and platform",
            "",
            "| Ecosystem | Platform | Passed | Failed | Skipped |",
            "|---|---|---:|---:|---:|",
        ]
        for eco, platform in keys[:100]:
            counts = [groups[(eco, platform, result)] for result in ("passed", "failed", "skipped")]
            lines.append(f"| {md(eco)} | {md(platform)} | " + " | ".join(map(str, counts)) + " |")
        if len(keys) > 100:
            lines.append(f"\n{len(keys) - 100} more rows not shown.")
        lines.append("")
    failures = [row for row in payload.results if row.result == "failed"]
    categories = Counter(row.error_category or "uncategorised" for row in failures)
    if categories:
        lines += ["### Top failure categories", "", "| Category | Failures |", "|---|---:|"]
        lines += [f"| {md(name)} | {count} |" for name, count in categories.most_common(10)]
        lines.append("")
    if failures:
        lines += [
            f"### First failures ({min(len(failures), max_failures)} of {len(failures)})",
            "",
            "| Recipe | Platform | Category | Message |",
            "|---|---|---|---|",
        ]
        for row in failures[:max_failures]:
            message = f"<code>{md(row.error_message or '', 300)}</code>" if row.error_message else ""
            lines.append(
                f"| {md(row.recipe_name)} | {md(row.platform or '—')} "
                f"| {md(row.error_category or '')} | {message} |"
            )
        lines.append("")
    if warnings:
        lines += [f"### Warnings ({len(warnings)})", ""]
        lines += [f"- {md(text, 300)}" for text in warnings[:20]]
        lines.append("")
    text = "\n".join(lines) + "\n"
    if len(text.encode()) > SUMMARY_LIMIT:
        text = text.encode()[:SUMMARY_LIMIT].decode(errors="ignore").rsplit("\n", 1)[0]
        text += "\n\n_Summary cut to stay under GitHub's 1 MiB limit._\n"
    return text


def write_summary(text: str, env: Mapping[str, str]) -> bool:
    target = env.get("GITHUB_STEP_SUMMARY")
    if not target:
        return False
    with Path(target).open("a", encoding="utf-8") as out:
        out.write(text)
    return True
