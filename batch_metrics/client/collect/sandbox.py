"""Sandbox results: tsuku's `.result-<recipe>-<family>.json`, one `tsuku install --sandbox --json` each.

Written by the Linux validation jobs once per attempt (so it holds the last one), in one of two
shapes (tsuku's `install_sandbox.go` and `install.go`): the sandbox's own
`{tool, passed, verified, install_exit_code, verify_exit_code, install_output, verify_output,
duration_ms, error}`, or the install error `{status: error, category, subcategory, message,
missing_recipes, install_exit_code}`. They are the only durations and build logs the pipeline
has. The row's platform is `linux-<family>-<libc>-<arch>` as the workflow names its platforms:
the family from the file name, libc `musl` for alpine (else `glibc`), and the architecture from
a directory of the path named for it, since the file does not say; without one the file is a
warning, never a guess.
"""

from __future__ import annotations

import math
import re
from pathlib import PurePosixPath
from typing import Any

from batch_metrics.client.collect.bounds import bound_message
from batch_metrics.client.collect.categories import canonical, subcategory
from batch_metrics.client.collect.rows import FileRows
from batch_metrics.client.collect.source import Source, keys_of, line_values
from batch_metrics.client.collect.validation import add_details, text_of

_NAME = re.compile(r"\.result-(?P<recipe>.+)-(?P<family>[A-Za-z0-9_]+)\.json")
_ARCHITECTURES = {"x86_64": "x86_64", "amd64": "x86_64", "x64": "x86_64", "arm64": "arm64",
                  "aarch64": "arm64"}  # fmt: skip
_ARCH_WORD = re.compile(r"(?:^|[-_./])(x86_64|amd64|x64|arm64|aarch64)(?:$|[-_./])")
MUSL_FAMILIES = frozenset({"alpine"})


def architecture(path: str) -> str | None:
    """The architecture a directory of `path` is named for (the nearest one), else None."""
    for part in reversed(PurePosixPath(path).parts[:-1]):
        found = _ARCH_WORD.search(part.lower())
        if found:
            return _ARCHITECTURES[found.group(1)]
    return None


class SandboxResultCollector:
    name = "sandbox-result"

    def sniff(self, source: Source) -> bool:
        return source.first_has("install_exit_code")

    def read(self, source: Source, rows: FileRows) -> None:
        named = _NAME.fullmatch(PurePosixPath(rows.display).name)
        arch = architecture(rows.display)
        if named is None or arch is None:
            rows.warn(
                None,
                "a sandbox result must be named .result-<recipe>-<family>.json and lie under a directory "
                "named for its architecture (e.g. sandbox-results/linux-arm64/): the file does not say "
                "which platform ran it; skipped",
            )
            return
        family = named["family"]
        libc = "musl" if family in MUSL_FAMILIES else "glibc"
        platform = f"linux-{family}-{libc}-{arch}"
        for line, value in line_values(source, rows):
            if not isinstance(value, dict) or "install_exit_code" not in value:
                rows.warn(line, f"not a sandbox result ({keys_of(value)}); skipped")
                continue
            rows.add(line, _row(value, named["recipe"], platform, rows))


def _row(value: dict[str, Any], recipe: str, platform: str, rows: FileRows) -> dict[str, Any]:
    exit_code = value.get("install_exit_code")
    passed = value.get("passed") is True and value.get("status") != "error"
    row: dict[str, Any] = {"recipe_name": recipe, "ecosystem": rows.ecosystem,
                           "result": "passed" if passed else "failed", "platform": platform}  # fmt: skip
    duration = value.get("duration_ms")
    if isinstance(duration, int | float) and not isinstance(duration, bool) and 0 <= duration < math.inf:
        row["duration_seconds"] = duration / 1000
    if passed:
        return row
    log = "\n".join(
        text for text in (text_of(value.get("error")), text_of(value.get("message")),
                          _trimmed(value.get("install_output")), _trimmed(value.get("verify_output"))) if text
    )  # fmt: skip
    row["error_message"] = bound_message(log, rows.limit) if log else f"exit code {exit_code}"
    category = canonical(text_of(value.get("category")))
    if category:
        row["error_category"] = category
    found = text_of(value.get("subcategory")) or subcategory(log or None, exit_code)
    add_details(row, found, value.get("missing_recipes"))
    return row


def _trimmed(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) else None
