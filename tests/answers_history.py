"""A stored history whose answers (what changed, where, why, how slow, how flaky) are known in advance.

homebrew, 14 nightly batches at 01:00 UTC up to last night (nights 0-13), on five platforms, each
uploaded by the token "nightly" with its CI run's URL; 40 macOS and 60 Linux minutes a night:

- `git` passes everywhere;
- `ripgrep` passes everywhere until last night, when it fails on linux-debian-glibc-x86_64 only
  (install_failed / verify_failed, a long log): **the known regression**, a new failure of the last run;
- `zstd` fails on linux-alpine-musl-arm64 every night and passes on the other four: **the platform-only
  failure** (passes on glibc, fails only on musl arm64), still failing for 14 runs;
- `flaky-net` fails on linux-debian-glibc-arm64 on even nights (network_error / timeout) and passes
  on odd ones: **flaky across runs** (13 changes); fixed last night;
- `retry-me` passes everywhere, after 3 attempts on darwin-arm64 from night 10: **flaky within a run**;
- `bat` fails on darwin-arm64 (checksum) until night 12 and passes last night: fixed after 13 runs;
- `llvm` passes everywhere, slowly: 1,500 s on darwin-arm64, 900 s on Linux (others take 30 s);
- `old-tool` is there until night 12 (gone last night); `new-tool` only last night, failing on
  darwin-arm64 (new_failed / '').

pypi, 5 nights up to last night, linux-debian-glibc-x86_64 and darwin-arm64: `requests` passes,
`numpy` fails on darwin-arm64 every night (build / wheel).

The weekly budget the tests serve with is 200 macOS minutes: the last 7 nights spent 280 (**the
overrun**); Linux's 5,000 is not reached (420).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from batch_metrics.endpoint.storage import SQLStorage, open_storage
from batch_metrics.endpoint.storage.uploaders import Uploader

PLATFORMS = (
    "linux-debian-glibc-x86_64", "linux-debian-glibc-arm64", "linux-alpine-musl-x86_64",
    "linux-alpine-musl-arm64", "darwin-arm64",
)  # fmt: skip
NIGHTS = 14
BUDGET = "macos=200,linux=5000"
RUN_URL = "https://github.com/acme/recipes/actions/runs/{night}/attempts/1"
UPLOADER = Uploader(kind="token", name="nightly")
MUSL_LOG = "ld: cannot find -lzstd (musl)"
LONG_LOG = (
    "verify: ripgrep --version\n" + "linking step output\n" * 60 + "error: exit status 127 (rg not found)"
)


def _row(recipe: str, platform: str, result: str, **extra: Any) -> dict[str, Any]:
    seconds = 30.0
    if recipe == "llvm":
        seconds = 1500.0 if platform.startswith("darwin") else 900.0
    return {"recipe_name": recipe, "ecosystem": "homebrew", "result": result, "platform": platform,
            "duration_seconds": seconds, **extra}  # fmt: skip


def _homebrew(night: int) -> list[dict[str, Any]]:
    last = night == NIGHTS - 1
    rows = []
    for platform in PLATFORMS:
        darwin = platform == "darwin-arm64"
        rows += [_row("git", platform, "passed"), _row("llvm", platform, "passed")]
        if last and platform == "linux-debian-glibc-x86_64":
            rows.append(_row("ripgrep", platform, "failed", error_category="install_failed",
                             error_subcategory="verify_failed", error_message=LONG_LOG))  # fmt: skip
        else:
            rows.append(_row("ripgrep", platform, "passed"))
        if platform == "linux-alpine-musl-arm64":
            rows.append(_row("zstd", platform, "failed", error_category="install_failed",
                             error_subcategory="musl_link", error_message=MUSL_LOG))  # fmt: skip
        else:
            rows.append(_row("zstd", platform, "passed"))
        if platform == "linux-debian-glibc-arm64" and night % 2 == 0:
            rows.append(_row("flaky-net", platform, "failed", error_category="network_error",
                             error_subcategory="timeout", error_message="download timed out"))  # fmt: skip
        else:
            rows.append(_row("flaky-net", platform, "passed"))
        rows.append(
            _row("retry-me", platform, "passed", **({"attempts": 3} if darwin and night >= 10 else {}))
        )
        if darwin and night < NIGHTS - 1:
            rows.append(_row("bat", platform, "failed", error_category="checksum",
                             error_message="sha256 mismatch"))  # fmt: skip
        else:
            rows.append(_row("bat", platform, "passed"))
        if not last:
            rows.append(_row("old-tool", platform, "passed"))
        elif darwin:
            rows.append(_row("new-tool", platform, "failed", error_category="new_failed",
                             error_message="formula not found"))  # fmt: skip
        else:
            rows.append(_row("new-tool", platform, "passed"))
    return rows


def _pypi(night: int) -> list[dict[str, Any]]:
    rows = []
    for platform in ("linux-debian-glibc-x86_64", "darwin-arm64"):
        rows.append({**_row("requests", platform, "passed"), "ecosystem": "pypi"})
        failed = platform == "darwin-arm64"
        extra = {"error_category": "build", "error_subcategory": "wheel", "error_message": "no wheel"}
        rows.append({**_row("numpy", platform, "failed" if failed else "passed", **(extra if failed else {})),
                     "ecosystem": "pypi"})  # fmt: skip
    return rows


def _payload(ecosystem: str, started: datetime, rows: list[dict[str, Any]], night: int) -> dict[str, Any]:
    passed = sum(row["result"] == "passed" for row in rows)
    failed = sum(row["result"] == "failed" for row in rows)
    return {
        "batch_id": f"{ecosystem}-{night}", "ecosystem": ecosystem,
        "started_at": started.strftime("%Y-%m-%dT%H:%M:%SZ"), "total_recipes": len(rows),
        "passed": passed, "failed": failed, "skipped": 0,
        "success_rate": round(passed / (passed + failed), 4),
        "macos_minutes": 40.0 if ecosystem == "homebrew" else 2.0,
        "linux_minutes": 60.0 if ecosystem == "homebrew" else 2.0,
        "run_url": RUN_URL.format(night=1000 + night if ecosystem == "homebrew" else 2000 + night),
        "results": rows,
    }  # fmt: skip


def last_night(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=1, minute=0, second=0, microsecond=0) - timedelta(days=1)


def batches(now: datetime) -> Iterator[dict[str, Any]]:
    """Every payload, oldest first (pypi's after homebrew's on the nights both ran)."""
    end = last_night(now)
    for night in range(NIGHTS):
        started = end - timedelta(days=NIGHTS - 1 - night)
        yield _payload("homebrew", started, _homebrew(night), night)
        if night >= NIGHTS - 5:
            yield _payload("pypi", started + timedelta(minutes=5), _pypi(night), night)


def seed(storage: SQLStorage, now: datetime) -> None:
    for payload in batches(now):
        storage.insert_batch(payload, None, UPLOADER)  # type: ignore[arg-type]


def seeded_database(path: Path, now: datetime) -> str:
    """A migrated SQLite file at `path` holding this history up to `now`, as `--db` takes it."""
    storage = open_storage(str(path))
    try:
        storage.migrate()
        seed(storage, now)
    finally:
        storage.close()
    return str(path)
