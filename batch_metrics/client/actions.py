"""GitHub Actions glue: the inputs, workflow commands on stdout, and the step outputs.

Docker actions get each input as `INPUT_<NAME>` with hyphens kept
(`INPUT_BATCH-ID`); the composite action maps them through `env:` with
underscores (`INPUT_BATCH_ID`). Both spellings are read.

Under Actions every line written to stdout is scanned for `::command::`, so
everything printed here that can carry outside text goes out on one line
(CR/LF escaped) behind a prefix of ours, and known secrets are replaced by `***`.
"""

from __future__ import annotations

import re
import secrets
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from batch_metrics import TOKEN_ENV
from batch_metrics.client.collect import FORMATS, CollectWarning, bound_name
from batch_metrics.client.redact import Redactor
from batch_metrics.models import MAX_BATCH_ID, MAX_ECOSYSTEM, parse_rfc3339, time_window_problem

# How the upload authenticates (client/oidc.py): a token if given, else GitHub's OIDC ID token, which
# the runner offers through these two variables when the job has `permissions: id-token: write`.
AUTH_MODES = ("auto", "token", "oidc")
REQUEST_URL_ENV = "ACTIONS_ID_TOKEN_REQUEST_URL"
REQUEST_TOKEN_ENV = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"  # noqa: S105 - a variable name, not a secret
INPUT_DEFAULTS: dict[str, str] = {
    "endpoint": "",
    "token": "",
    "auth": "auto",
    "audience": "",
    "results": "**/validation-results-*.json",
    "format": "auto",
    "ecosystem": "",
    "changed-since": "",
    "ecosystem-map": "",
    "category-map": "",
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
    "new-failures",
    "fixed",
    "changes-path",
)
MAX_ANNOTATIONS = 50
_TRUE = ("true", "True", "TRUE")
_FALSE = ("false", "False", "FALSE")
_LINE_BREAKS = re.compile(r"[\r\n]+")


@dataclass(frozen=True)
class Inputs:
    endpoint: str
    token: str
    auth: str
    audience: str
    results: str
    format: str
    ecosystem: str | None
    changed_since: str | None
    ecosystem_map: str
    category_map: str
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

    def text(name: str, instead: str, limit: int = 0) -> str | None:
        # Arguments that are not valid UTF-8 reach Python as lone surrogates, which no JSON can carry.
        value = given[name].strip()
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            problems.append(f"input {name}: {value[:40]!a} is not valid UTF-8 text; {instead}")
            return None
        if limit and len(value) > limit:
            value = bound_name(value, limit)
            problems.append(
                f"input {name} is longer than the endpoint takes ({limit} characters); "
                f"cut to {value[:40]!r}..."
            )
        return value or None

    def moment(name: str) -> str | None:
        value = text(name, "using the earliest timestamp in the results")
        if value is None:
            return None
        try:
            problem = time_window_problem(parse_rfc3339(value))
        except ValueError as error:
            problem = str(error)
        if problem:
            problems.append(f"input {name}: {problem}; using the earliest timestamp in the results")
            return None
        return value

    auth = given["auth"].strip().lower()
    if auth not in AUTH_MODES:
        problems.append(f"input auth: {auth[:40]!r} is not one of {', '.join(AUTH_MODES)}; using auto")
        auth = "auto"
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
            auth=auth,
            audience=text("audience", "using the endpoint's URL") or "",
            results=given["results"],
            format=fmt,
            ecosystem=text("ecosystem", "using the ecosystem the rows name", MAX_ECOSYSTEM),
            changed_since=text("changed-since", "reading every matched file"),
            ecosystem_map=text("ecosystem-map", "using no mapping") or "",
            category_map=text("category-map", "using no mapping") or "",
            batch_id=text("batch-id", "using the default batch id", MAX_BATCH_ID),
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


def read_token(token_file: str | None, env: Mapping[str, str], given: str = "") -> tuple[str, str | None]:
    """The token from `token_file`, else the action input, else $BATCH_METRICS_TOKEN; and a problem."""
    if token_file:
        try:
            return Path(token_file).read_text(encoding="utf-8").strip(), None
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            return "", f"cannot read the token file {token_file}: {reason}"
    return (given or env.get(TOKEN_ENV, "")).strip(), None


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
