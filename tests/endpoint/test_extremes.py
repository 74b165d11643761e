"""Generated extreme batches against both databases: each is stored and on the dashboard, or refused with a
400, and the dashboard, /metrics and /health always answer (issue 19).

Every field is drawn from the edges of what the contract allows (texts at their limits, 4-byte and
NUL characters, the largest and the tiniest numbers, times at the ends of their window, in every
spelling RFC 3339 allows) and, for one field of most batches, from just beyond. Whether a batch
should be stored is decided here from the limits alone (`acceptable`), not by the code under test.
"""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import requests
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from batch_metrics.models import (
    CLOCK_SKEW,
    EARLIEST_TIME,
    MAX_BATCH_ID,
    MAX_COUNT,
    MAX_DURATION_SECONDS,
    MAX_ECOSYSTEM,
    MAX_ERROR_CATEGORY,
    MAX_ERROR_MESSAGE,
    MAX_MINUTES,
    MAX_PLATFORM,
    MAX_RECIPE_NAME,
    MAX_RESULT,
)
from tests.live import Live

pytest_plugins = ["tests.live"]

EXAMPLES = 40  # per database: a few seconds each (400 random ones pass too, in about a minute)
_TEXTS = {"batch_id": MAX_BATCH_ID, "ecosystem": MAX_ECOSYSTEM}
_ROW_TEXTS = {"recipe_name": MAX_RECIPE_NAME, "ecosystem": MAX_ECOSYSTEM, "result": MAX_RESULT,
              "error_category": MAX_ERROR_CATEGORY, "error_message": MAX_ERROR_MESSAGE,
              "platform": MAX_PLATFORM}  # fmt: skip
_REQUIRED = {"batch_id", "ecosystem", "recipe_name", "result"}
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", re.IGNORECASE)
_SPECIAL = ["\x00", "\U0001f600", "\U00020000", "\u202e", "\u0301", "<", "'", '"', "\\", " ", "\n", "\u2028"]
_unique = itertools.count()


def _characters() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(_SPECIAL), st.characters(codec="utf-8", exclude_categories=["Cs"]))


def text(limit: int, beyond: bool) -> st.SearchStrategy[str]:
    """A text within `limit` (often at it), or with `beyond` one over it."""
    if beyond:
        return st.builds(lambda char, extra: char * (limit + extra), _characters(), st.integers(1, 3))
    at_limit = st.builds(lambda char, less: char * (limit - less), _characters(), st.integers(0, 2))
    return st.one_of(at_limit, st.text(_characters(), min_size=1, max_size=min(limit, 12)))


def number(largest: float, beyond: bool) -> st.SearchStrategy[float]:
    if beyond:
        return st.sampled_from([largest * 1.000001, 1e308, 1.7976931348623157e308, -1.0, -5e-324])
    edges = st.sampled_from([0.0, -0.0, 5e-324, 1e-300, 1.0, largest, largest / 3])
    return st.one_of(edges, st.floats(0, largest, allow_nan=False))


def moment(beyond: bool) -> st.SearchStrategy[str]:
    """A batch time in its window, or with `beyond` outside it or no time at all, in RFC 3339's spellings."""
    now = datetime.now(UTC).replace(tzinfo=None)
    inside = st.datetimes(EARLIEST_TIME.replace(tzinfo=None), now)
    outside = st.one_of(st.datetimes(max_value=datetime(1999, 12, 31)), st.datetimes(now + timedelta(days=2)))
    zones = st.sampled_from([UTC, timezone(timedelta(hours=14)), timezone(-timedelta(hours=12, minutes=30))])
    spelled = st.builds(_spell, outside if beyond else inside, zones, st.integers(0, 9), st.booleans())
    return st.one_of(spelled, st.sampled_from(["not a time", "2026-02-30T00:00:00Z", "", "9999-12-31"])) \
        if beyond else spelled  # fmt: skip


def _spell(local: datetime, zone: timezone, digits: int, lower: bool) -> str:
    """`local` (a UTC wall time) in `zone`, with `digits` fractional digits, `t`/`z` in lower case or not."""
    shifted = (
        local.replace(tzinfo=UTC).astimezone(zone) if 1 < local.year < 9999 else local.replace(tzinfo=UTC)
    )
    stamp = shifted.strftime("%Y-%m-%dT%H:%M:%S") + (
        f".{shifted.microsecond:06d}000"[: digits + 1] if digits else ""
    )
    offset = "Z" if shifted.utcoffset() == timedelta(0) else shifted.strftime("%z")
    offset = offset if offset == "Z" else f"{offset[:3]}:{offset[3:]}"
    spelled = stamp + offset
    return spelled.lower() if lower else spelled


@st.composite
def batches(draw: st.DrawFn) -> dict[str, Any]:
    """A batch whose fields sit at the edges of the contract; one of them (or none) beyond it."""
    fields = [*_TEXTS, "started_at", "completed_at", "macos_minutes", "total_recipes",
              *(f"row.{name}" for name in (*_ROW_TEXTS, "duration_seconds"))]  # fmt: skip
    beyond = draw(st.one_of(st.none(), st.sampled_from(fields)))  # about half the batches are acceptable
    body: dict[str, Any] = {name: draw(text(limit, beyond == name)) for name, limit in _TEXTS.items()}
    body["ecosystem"] = body["ecosystem"][: MAX_ECOSYSTEM - 7] + f"~{next(_unique):06d}"  # one run each
    if beyond == "ecosystem":
        body["ecosystem"] += "x" * MAX_ECOSYSTEM
    body["started_at"] = draw(moment(beyond == "started_at"))
    body["completed_at"] = draw(moment(beyond == "completed_at"))
    body["macos_minutes"] = draw(number(MAX_MINUTES, beyond == "macos_minutes"))
    body["linux_minutes"] = draw(number(MAX_MINUTES, False))
    body["total_recipes"] = (
        MAX_COUNT + 1 if beyond == "total_recipes" else draw(st.sampled_from([0, MAX_COUNT]))
    )
    rows = []
    for index in range(draw(st.integers(1, 4))):
        out = beyond if index == 0 else None
        row = {name: draw(text(limit, out == f"row.{name}")) for name, limit in _ROW_TEXTS.items()}
        row["result"] = draw(st.sampled_from(["passed", "failed", "skipped", row["result"]]))
        if out == "row.result":
            row["result"] = "x" * (MAX_RESULT + 1)
        row["duration_seconds"] = draw(number(MAX_DURATION_SECONDS, out == "row.duration_seconds"))
        if out != "row.ecosystem":  # the dashboard groups by the rows' ecosystem: the batch's, unique
            row["ecosystem"] = body["ecosystem"]
        rows.append(row)
    body["results"] = rows
    return body


def _in_window(stamp: str, now: datetime) -> bool:
    if not _TIME.fullmatch(stamp):
        return False
    try:
        moment = datetime.fromisoformat(stamp.upper())
    except ValueError:
        return False
    latest = now + CLOCK_SKEW
    assume(abs((moment - latest).total_seconds()) > 60)  # too close to the moving edge to tell
    return EARLIEST_TIME <= moment <= latest


def acceptable(body: dict[str, Any]) -> bool:
    """Whether the contract's limits take `body`, decided from the limits alone."""
    now = datetime.now(UTC)
    texts = [(body[name], limit, name) for name, limit in _TEXTS.items()]
    texts += [(row[name], limit, name) for row in body["results"] for name, limit in _ROW_TEXTS.items()]
    numbers = [(body["macos_minutes"], MAX_MINUTES), (body["linux_minutes"], MAX_MINUTES),
               (body["total_recipes"], MAX_COUNT)]  # fmt: skip
    numbers += [(row["duration_seconds"], MAX_DURATION_SECONDS) for row in body["results"]]
    return (
        all(len(value) <= limit and (value or name not in _REQUIRED) for value, limit, name in texts)
        and all(0 <= value <= largest for value, largest in numbers)
        and all(_in_window(body[name], now) for name in ("started_at", "completed_at"))
    )


def _stored(text: str) -> str:
    return text.replace("\x00", "\ufffd")  # PostgreSQL text holds no NUL: both databases store U+FFFD


def test_every_extreme_batch_is_stored_and_shown_or_refused_and_every_read_answers(live: Live) -> None:
    outcomes: list[int] = []

    # The same examples every run (derandomize, no example database): a suite that passes, passes again.
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
    @given(batches())
    def upload(body: dict[str, Any]) -> None:
        expected = acceptable(body)
        answer = live.post(body)
        outcomes.append(answer.status_code)
        if expected:
            assert answer.status_code == 201, answer.text
            run_id = answer.json()["batch_run_id"]
            shown = live.get("/api/dashboard", params={"ecosystem": _stored(body["ecosystem"]), "days": "7"})
            assert [row["latest_run"]["id"] for row in shown.json()["ecosystems"]] == [run_id]
            failed = sum(row["result"] == "failed" for row in body["results"])
            drill = live.get(f"/api/dashboard/runs/{run_id}").json()
            assert len(drill["failures"]) == failed
        else:
            assert answer.status_code == 400 and answer.text.startswith("Bad request: "), answer.text
        for path in ("/api/dashboard?days=366", "/api/dashboard?days=7", "/metrics"):
            assert live.get(path).status_code == 200, path
        assert requests.get(f"{live.url}/health", timeout=30).status_code == 200

    upload()
    assert outcomes.count(201) >= EXAMPLES // 5 and outcomes.count(400) >= EXAMPLES // 5, outcomes
