"""GitHub Actions glue: inputs, workflow commands, step outputs and the job summary.

Docker actions get each input as `INPUT_<NAME>` with hyphens kept
(`INPUT_BATCH-ID`); the composite action maps them through `env:` with
underscores (`INPUT_BATCH_ID`). Both spellings are read.

Under Actions every line written to stdout is scanned for `::command::`, so
everything printed here that can carry outside text goes out on one line
(CR/LF escaped) behind a prefix of ours, and known secrets are replaced by `***`.
"""

from __future__ import annotations

import html
import re
import secrets
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from batch_metrics.collectors import FORMATS, CollectWarning
from batch_metrics.payload import parse_rfc3339
from batch_metrics.redact import Redactor

if TYPE_CHECKING:
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
# GitHub refuses a step summary of 1 MiB or more; keep a margin for the cut note.
SUMMARY_LIMIT = 1024 * 1024 - 1024
MAX_ANNOTATIONS = 50
SUMMARY_FAILURES = 30
SUMMARY_ROWS = 100
SUMMARY_WARNINGS = 20
_TRUE = ("true", "True", "TRUE")
_FALSE = ("false", "False", "FALSE")
_LINE_BREAKS = re.compile(r"[\r\n]+")


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
    """An input's value from either spelling of its variable, else its default; blank means not given."""
    upper = name.upper()
    for key in (f"INPUT_{upper}", f"INPUT_{upper.replace('-', '_')}"):
        value = env.get(key, "")
        if value.strip():
            # `results` keeps its lines as given; the other inputs are single values.
            return value if name == "results" else value.strip()
    return INPUT_DEFAULTS[name]


def read_inputs(
    env: Mapping[str, str], overrides: Mapping[str, str] | None = None
) -> tuple[Inputs, list[str]]:
    """Parse the inputs (`overrides` win over the environment); a bad value falls back to its default
    with a message in the returned list, never an exception."""
    problems: list[str] = []
    given = {name: raw_input(env, name) for name in INPUT_DEFAULTS}
    given.update(overrides or {})

    def flag(name: str) -> bool:
        # Exactly the spellings @actions/core's getBooleanInput accepts.
        value = given[name].strip()
        if value in _TRUE or value in _FALSE:
            return value in _TRUE
        problems.append(f"input {name}: {value[:40]!r} is not true or false; using {INPUT_DEFAULTS[name]}")
        return INPUT_DEFAULTS[name] == "true"

    def number(name: str, low: float, high: float) -> float:
        try:
            value = float(given[name])
        except ValueError:
            value = float("nan")
        if not low <= value <= high:  # also false for NaN
            problems.append(
                f"input {name}: {given[name][:40]!r} is not a number from {low:g} to {high:g}; "
                f"using {INPUT_DEFAULTS[name]}"
            )
            return float(INPUT_DEFAULTS[name])
        return value

    def text(name: str, instead: str) -> str | None:
        # Arguments that are not valid UTF-8 reach Python as lone surrogates, which no JSON can carry.
        value = given[name].strip()
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            problems.append(f"input {name}: {value[:40]!a} is not valid UTF-8 text; {instead}")
            return None
        return value or None

    def moment(name: str) -> str | None:
        value = text(name, "using the earliest timestamp in the results")
        if value is None:
            return None
        try:
            parse_rfc3339(value)
        except ValueError as error:
            problems.append(f"input {name}: {error}; using the earliest timestamp in the results")
            return None
        return value

    fmt = given["format"].strip().lower()
    if fmt != "auto" and fmt not in FORMATS:
        problems.append(f"input format: {fmt[:40]!r} is not auto or one of {', '.join(FORMATS)}; using auto")
        fmt = "auto"
    retries = number("retries", 0, 20)
    if retries != int(retries):
        problems.append(
            f"input retries: {given['retries'][:40]!r} is not a whole number; using {int(retries)}"
        )
    return (
        Inputs(
            endpoint=given["endpoint"].strip(),
            token=given["token"].strip(),
            results=given["results"],
            format=fmt,
            ecosystem=text("ecosystem", "using the ecosystem the rows name"),
            batch_id=text("batch-id", "using the default batch id"),
            started_at=moment("started-at"),
            fail_on_error=flag("fail-on-error"),
            dry_run=flag("dry-run"),
            timeout=number("timeout", 0.1, 3600),
            retries=int(retries),
            payload_path=given["payload-path"].strip() or INPUT_DEFAULTS["payload-path"],
            summary=flag("summary"),
        ),
        problems,
    )


def escape_data(text: str) -> str:
    """A workflow command's message: the runner turns these back into `%`, CR and LF."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's `key=value` property: also `:` and `,`, which end a value."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


class Reporter:
    """Talks to the person reading the log: workflow commands on stdout under Actions, plain
    `warning: ...` lines on stderr elsewhere. Never prints a secret it was told about."""

    def __init__(self, env: Mapping[str, str], out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.actions = env.get("GITHUB_ACTIONS") == "true"
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.redact = Redactor()

    def mask(self, secret: str) -> None:
        """Register a secret: `::add-mask::` under Actions (before it can appear anywhere), `***` here."""
        for part in self.redact.add(secret):
            if self.actions:
                print(f"::add-mask::{escape_data(part)}", file=self.out, flush=True)

    def info(self, message: str) -> None:
        message = self.redact(message)
        if self.actions:
            # The runner splits its input at CR and LF: keep outside text from starting a line of its own.
            print(_LINE_BREAKS.sub(" ", message), file=self.out, flush=True)
        else:
            print(message, file=self.err, flush=True)

    def warning(self, message: str, *, file: str | None = None, line: int | None = None) -> None:
        message = self.redact(message)
        if not self.actions:
            where = f"{file}:{line}: " if file and line else (f"{file}: " if file else "")
            print(f"warning: {where}{message}", file=self.err, flush=True)
            return
        properties = ",".join(
            f"{key}={escape_property(self.redact(str(value)))}"
            for key, value in (("file", file), ("line", line))
            if value
        )
        print(
            f"::warning{' ' + properties if properties else ''}::{escape_data(message)}",
            file=self.out,
            flush=True,
        )

    def file_warnings(self, warnings: Sequence[CollectWarning]) -> None:
        """The first MAX_ANNOTATIONS as annotations; the rest as plain log lines, so none is lost but
        a thousand bad lines do not bury the run page."""
        for warning in warnings[:MAX_ANNOTATIONS]:
            self.warning(warning.message, file=warning.path or None, line=warning.line)
        if len(warnings) > MAX_ANNOTATIONS:
            self.warning(
                f"{len(warnings) - MAX_ANNOTATIONS} more warnings about the result files follow in the log"
            )
            for warning in warnings[MAX_ANNOTATIONS:]:
                self.info(f"warning: {warning}")


def write_outputs(outputs: Mapping[str, str], env: Mapping[str, str], stream: TextIO | None = None) -> None:
    """Append to $GITHUB_OUTPUT in the heredoc form, with a delimiter no value contains;
    outside Actions print `name=value` lines."""
    target = env.get("GITHUB_OUTPUT")
    if not target:
        for name, value in outputs.items():
            print(f"{name}={value}", file=stream or sys.stdout)
        return
    with Path(target).open("a", encoding="utf-8") as out:
        for name, value in outputs.items():
            delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
            while delimiter in value:
                delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
            out.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


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
) -> str:
    """The job summary: totals, a table by ecosystem and platform, top categories, the first failures,
    the first warnings; cut with a note if it would reach `limit` bytes.

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
    groups: Counter[tuple[str, str, str]] = Counter(
        (row["ecosystem"], row.get("platform") or "—", row["result"]) for row in payload["results"]
    )
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


def write_summary(text: str, env: Mapping[str, str]) -> bool:
    """Append to $GITHUB_STEP_SUMMARY; False when there is none (not under Actions)."""
    target = env.get("GITHUB_STEP_SUMMARY")
    if not target:
        return False
    with Path(target).open("a", encoding="utf-8") as out:
        out.write(text)
    return True
