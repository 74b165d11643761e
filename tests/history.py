"""A small stored history whose every dashboard figure is known in advance (tests/test_dashboard.py, browser).

Nightly batches at 01:00 UTC, days before `now`:

- homebrew: 20 nights up to last night. `git` always passes; `broken` always fails on linux
  (checksum); `flaky` passes and fails by turns on linux (19 flips) and always passes on
  darwin; `fixed` failed (network) for the first 10 nights, then passes (one flip: not flaky);
  the hostile recipe `<img src=x onerror=...>` fails on darwin in the last 5 nights with a
  category and a message that are markup too.
- npm: 10 nights, the last one 12 days ago, then nothing: stale.
- cargo: 6 nights up to last night; `ripgrep` fails in the first 4, so the last 2 are green.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from batch_metrics.endpoint.storage import open_storage

HOSTILE = "<img src=x onerror=\"document.title='pwned'\">"
HOSTILE_CATEGORY = "<b>oops</b>"
HOSTILE_MESSAGE = "</pre><script>document.title='pwned'</script>"


def _result(recipe: str, platform: str, result: str, **extra: Any) -> dict[str, Any]:
    return {"recipe_name": recipe, "ecosystem": "", "result": result, "platform": platform,
            "duration_seconds": 30.0, **extra}  # fmt: skip


def _homebrew(night: int) -> list[dict[str, Any]]:
    """`night` counts from 0 (the oldest of 20) to 19 (last night)."""
    rows = [
        _result("git", "linux", "passed"),
        _result("git", "darwin", "passed"),
        _result("broken", "linux", "failed", error_category="checksum", error_message="sha256 mismatch"),
        _result("flaky", "linux", "failed" if night % 2 else "passed", error_category="network"),
        _result("flaky", "darwin", "passed"),
        _result("fixed", "linux", "failed" if night < 10 else "passed", error_category="network"),
    ]
    if night >= 15:
        rows.append(_result(HOSTILE, "darwin", "failed", error_category=HOSTILE_CATEGORY,
                            error_message=HOSTILE_MESSAGE))  # fmt: skip
    return rows


def _npm(night: int) -> list[dict[str, Any]]:
    return [
        _result("left-pad", "linux", "passed"),
        _result("react", "linux", "failed" if night == 9 else "passed"),
    ]


def _cargo(night: int) -> list[dict[str, Any]]:
    return [
        _result("ripgrep", "linux", "failed" if night < 4 else "passed"),
        _result("fd", "linux", "passed"),
    ]


def _payload(ecosystem: str, started: datetime, results: list[dict[str, Any]], number: int) -> dict[str, Any]:
    for row in results:
        row["ecosystem"] = ecosystem
    passed = sum(row["result"] == "passed" for row in results)
    failed = sum(row["result"] == "failed" for row in results)
    return {
        "batch_id": f"{ecosystem}-{number}", "ecosystem": ecosystem,
        "started_at": started.strftime("%Y-%m-%dT%H:%M:%SZ"), "total_recipes": len(results),
        "passed": passed, "failed": failed, "skipped": 0,
        "success_rate": round(passed / (passed + failed), 4) if passed + failed else 0.0,
        "linux_minutes": 10.0, "macos_minutes": 5.0 if ecosystem == "homebrew" else 0.0, "results": results,
    }  # fmt: skip


def midnight(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def batches(now: datetime) -> Iterator[dict[str, Any]]:
    """Every payload, oldest first (so stored ids follow time, as they do in real use)."""
    plan = [("homebrew", 20, 1, _homebrew), ("npm", 10, 12, _npm), ("cargo", 6, 1, _cargo)]
    night_of: list[tuple[datetime, str, int, Any]] = []
    for ecosystem, nights, last_days_ago, rows in plan:
        for night in range(nights):
            day = midnight(now) - timedelta(days=last_days_ago + nights - 1 - night)
            night_of.append((day + timedelta(hours=1), ecosystem, night, rows))
    for started, ecosystem, night, rows in sorted(night_of, key=lambda item: (item[0], item[1])):
        yield _payload(ecosystem, started, rows(night), night)


def seeded_database(path: Path, now: datetime) -> str:
    """A migrated SQLite file at `path` holding the generated history up to `now`, as `--db` takes it."""
    storage = open_storage(str(path))
    try:
        storage.migrate()
        for payload in batches(now):
            storage.insert_batch(payload, None)  # type: ignore[arg-type]
    finally:
        storage.close()
    return str(path)
