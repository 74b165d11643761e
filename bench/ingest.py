"""Workload 2, ingest: one big batch POSTed over loopback to `batch-metrics serve`, end to end.

Ours is the time from sending the request to reading the 201 (request parse, validation,
transaction). The baselines write the same rows into the same schema, made by the project's
own migrations, with the database driver alone and no HTTP: `executemany` in one transaction
on SQLite (with the durability pragmas the storage layer sets: WAL, synchronous=NORMAL, foreign
keys), `COPY` and `executemany` on PostgreSQL.

After each upload the benchmark reads the dashboard, which adds the batch to the roll-ups if
the server's background thread has not yet: the server is idle again before the next contender
runs, and the time until the batch is on the dashboard is reported beside the target's row.
The contenders take turns; the first round warms each of them up and is not kept.

Each upload is the next night of one pipeline: 1% of its recipes replaced by new ones and 1% of its
results turned over, so the upload's comparison with the previous run (issue 21) has new and gone
recipes, new failures and fixes to find. On SQLite a third contender is the same server storing
the uploads without comparing them (`compare_runs=False`): the comparison's cost, beside it.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, closing
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

from batch_metrics.endpoint.storage import RESULT_COLUMNS, RUN_COLUMNS, open_storage
from bench import data, floor, postgres
from bench.endpoint import Endpoint, serving
from bench.measure import BenchError, Row, Scale, ratio_row

_RUN_COLUMNS = (*RUN_COLUMNS, "idempotency_key", "received_at")
_COPY = f"COPY recipe_results ({', '.join(RESULT_COLUMNS)}) FROM STDIN"

_PG_BASELINES = ("COPY", "executemany")
_UNCOMPARED = "the same upload, not compared"
SETTLE_SECONDS = 1.0
_SHOWN = "rows/s until the dashboard shows the batch,"
Rows = list[tuple[Any, ...]]


def _insert(table: str, columns: Sequence[str], mark: str) -> str:
    # Table and column names are the storage module's constants; every value is a placeholder.
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"  # noqa: S608


def _run_values(body: dict[str, Any]) -> Callable[[int], tuple[Any, ...]]:
    """The batch_runs values of run `number`: the batch's counts, a key of its own."""
    counts = tuple(body[column] for column in RUN_COLUMNS)
    return lambda number: (*counts, f"bench-baseline-{number}", floor.COMPLETED_AT)


def _result_values(rows: list[dict[str, Any]]) -> Rows:
    """The rows as the storage layer binds them, minus the run id known only once the run is in."""
    return [
        (row["recipe_name"], row["ecosystem"], row["result"], row.get("error_category"),
         row.get("error_message"), row.get("duration_seconds") or 0.0, row.get("platform"),
         row.get("error_subcategory"), json.dumps(row["blocked_by"]) if row.get("blocked_by") else None,
         row.get("attempts"), row.get("stage"))
        for row in rows
    ]  # fmt: skip


def _with_run(run_id: int, values: Rows) -> Iterator[tuple[Any, ...]]:
    return ((run_id, *value) for value in values)


Measure = Callable[[int], float]  # run number -> seconds


def _interleaved(contenders: dict[str, Measure], rounds: int) -> dict[str, list[float]]:
    """Take turns, round by round, so load from elsewhere on the machine hits every contender alike.

    Round 0 warms every contender up (first connections, first requests) and is not kept.
    """
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    for number in range(rounds):
        for name, measure in contenders.items():
            taken = measure(number)
            if number:
                seconds[name].append(taken)
    return seconds


def nightly(rows: list[dict[str, Any]], night: int) -> list[dict[str, Any]]:
    """The rows of one night: a 1% slice of the recipes renamed for the night (new ones, and last night's
    gone), and every 100th result turned over (failed <-> passed) at an offset that moves each night."""
    renamed = range((night * 1000) % len(rows), (night * 1000) % len(rows) + len(rows) // 100)
    turned = {"passed": "failed", "failed": "passed"}
    out = []
    for index, given in enumerate(rows):
        row = {**given, "recipe_name": f"{given['recipe_name']}-night{night}"} if index in renamed else given
        if (index + night) % 100 == 0 and row["result"] in turned:
            row = {key: value for key, value in row.items() if not key.startswith(("error_", "blocked"))}
            row["result"] = turned[given["result"]]
        out.append(row)
    return out


def _poster(
    endpoint: Endpoint, connection: HTTPConnection, bodies: list[bytes], shown: list[float]
) -> Measure:
    """POST batch `number`; then read the dashboard and append the time until it answered to `shown`."""

    def post(number: int) -> float:
        started = time.perf_counter()
        status, answer = endpoint.post(connection, bodies[number])
        seconds = time.perf_counter() - started
        if status != 201:
            raise BenchError(
                f"POST of a {len(bodies[number]):,}-byte batch answered {status}: {answer[:300]!r}"
            )
        status, answer = endpoint.get(connection, "/api/dashboard?days=7")
        if status != 200:
            raise BenchError(f"GET /api/dashboard answered {status}: {answer[:300]!r}")
        if number:
            shown.append(time.perf_counter() - started)
        # The server's thread checkpoints the WAL after the roll-ups: let it end before the next contender
        # runs, so no contender is measured beside another's leftover work (there are two servers).
        time.sleep(SETTLE_SECONDS)
        return seconds

    return post


def _sqlite_baseline(path: Path, run: tuple[Any, ...], values: Rows) -> float:
    connection = sqlite3.connect(path, isolation_level=None)
    with closing(connection):
        for pragma in ("journal_mode=WAL", "foreign_keys=ON", "synchronous=NORMAL"):
            connection.execute(f"PRAGMA {pragma}")
        started = time.perf_counter()
        connection.execute("BEGIN IMMEDIATE")
        run_id = connection.execute(_insert("batch_runs", _RUN_COLUMNS, "?"), run).lastrowid or 0
        connection.executemany(_insert("recipe_results", RESULT_COLUMNS, "?"), _with_run(run_id, values))
        connection.execute("COMMIT")
        return time.perf_counter() - started


def _sqlite_count(path: Path) -> int:
    with closing(sqlite3.connect(path)) as connection:
        count: int = connection.execute("SELECT count(*) FROM recipe_results").fetchone()[0]
        return count


def _migrated(target: str) -> None:
    storage = open_storage(target)
    try:
        storage.migrate()
    finally:
        storage.close()


def _ingest_rows(label: str, count: int, seconds: dict[str, list[float]], shown: list[float]) -> list[Row]:
    ours = seconds.pop("ours")
    rate = count / statistics.median(ours)
    rows = [
        ratio_row(f"{label}: rows/s vs {name}", rate, count / statistics.median(taken), unit="rows/s",
                  baseline_name=name, limit=0.9,
                  higher_is_better=True, results=count, runs=len(ours), ours_seconds=ours,
                  baseline_seconds=taken)
        for name, taken in seconds.items()
    ]  # fmt: skip
    name, taken = next(iter(seconds.items()))
    rows.append(
        ratio_row(f"{label}: {_SHOWN} vs {name}",
                  count / statistics.median(shown), count / statistics.median(taken), unit="rows/s",
                  baseline_name=name, limit=None,
                  higher_is_better=True, results=count, runs=len(shown), ours_seconds=shown)
    )  # fmt: skip
    return rows


def _memory_row(label: str, endpoint: Endpoint, resident_before: int, body_bytes: int) -> Row:
    """How much the server's peak memory rose per MiB of body, beside holding the body once (1 MiB/MiB)."""
    per_mib = (endpoint.memory("VmHWM") - resident_before) / body_bytes
    return ratio_row(f"{label}: server peak memory per MiB of body", per_mib, 1.0, unit="MiB/MiB",
                     baseline_name="the body held once", limit=None, body_bytes=body_bytes)  # fmt: skip


def _sqlite(work: Path, rows: list[dict[str, Any]], bodies: list[bytes], label: str) -> list[Row]:
    served, uncompared, raw = work / "ingest-served.db", work / "ingest-uncompared.db", work / "ingest-raw.db"
    for path in (served, uncompared, raw):
        for leftover in path.parent.glob(path.name + "*"):
            leftover.unlink()
    _migrated(str(raw))
    values = _result_values(rows)
    run_values = _run_values(floor.payload(rows, "bench-baseline"))
    with (
        serving(str(served), work / "ingest-sqlite-serve.log") as endpoint,
        closing(endpoint.connection()) as http,
        serving(str(uncompared), work / "ingest-uncompared-serve.log", compare=False) as plain,
        closing(plain.connection()) as plain_http,
    ):
        resident_before = endpoint.memory("VmRSS")
        shown: list[float] = []
        seconds = _interleaved(
            {
                "ours": _poster(endpoint, http, bodies, shown),
                "executemany": lambda number: _sqlite_baseline(raw, run_values(number), values),
                _UNCOMPARED: _poster(plain, plain_http, bodies, []),
            },
            len(bodies),
        )
        memory = _memory_row(label, endpoint, resident_before, len(bodies[0]))
    expected = len(rows) * len(bodies)
    for path in (served, uncompared, raw):
        if _sqlite_count(path) != expected:
            raise BenchError(f"{path.name} holds {_sqlite_count(path)} results, expected {expected}")
    without = seconds.pop(_UNCOMPARED)
    comparison = ratio_row(
        f"{label}: upload time with the comparison with the previous run vs without it",
        statistics.median(seconds["ours"]), statistics.median(without), unit="s", baseline_name=_UNCOMPARED,
        limit=1.1, results=len(rows), ours_seconds=seconds["ours"], baseline_seconds=without,
    )  # fmt: skip
    return [*_ingest_rows(label, len(rows), seconds, shown), comparison, memory]


def _pg_baseline(url: str, run: tuple[Any, ...], values: Rows, *, copy: bool) -> float:
    import psycopg

    with psycopg.connect(url) as connection:
        started = time.perf_counter()
        with connection.transaction(), connection.cursor() as cursor:
            cursor.execute(_insert("batch_runs", _RUN_COLUMNS, "%s") + " RETURNING id", run)
            fetched = cursor.fetchone()
            run_id = int(fetched[0]) if fetched else 0
            if copy:
                with cursor.copy(_COPY) as stream:
                    for value in _with_run(run_id, values):
                        stream.write_row(value)
            else:
                cursor.executemany(_insert("recipe_results", RESULT_COLUMNS, "%s"), _with_run(run_id, values))
        return time.perf_counter() - started


def _pg_count(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as connection:
        row = connection.execute("SELECT count(*) FROM recipe_results").fetchone()
        return int(row[0]) if row else 0


def _postgres(work: Path, rows: list[dict[str, Any]], bodies: list[bytes], label: str) -> list[Row]:
    label = label.replace("SQLite", "PostgreSQL")
    with postgres.server() as (admin_url, problem), ExitStack() as stack:
        if admin_url is None:
            missing = f"no PostgreSQL ({problem})"
            names = [f"rows/s vs {name}" for name in _PG_BASELINES]
            return [*(Row.unavailable(f"{label}: {name}", missing, "≥ 0.9x") for name in names),
                    Row.unavailable(f"{label}: {_SHOWN} vs {_PG_BASELINES[0]}", missing, "—")]  # fmt: skip
        served, copied, executed = (stack.enter_context(postgres.fresh_database(admin_url)) for _ in range(3))
        for url in (copied, executed):
            _migrated(url)
        values = _result_values(rows)
        run_values = _run_values(floor.payload(rows, "bench-baseline"))
        endpoint = stack.enter_context(serving(served, work / "ingest-pg-serve.log"))
        http = stack.enter_context(closing(endpoint.connection()))
        shown: list[float] = []
        seconds = _interleaved(
            {
                "ours": _poster(endpoint, http, bodies, shown),
                "COPY": lambda number: _pg_baseline(copied, run_values(number), values, copy=True),
                "executemany": lambda number: _pg_baseline(executed, run_values(number), values, copy=False),
            },
            len(bodies),
        )
        for url in (served, copied, executed):
            if _pg_count(url) != len(rows) * len(bodies):
                raise BenchError(
                    f"a PostgreSQL database holds {_pg_count(url)} results, not {len(rows) * len(bodies)}"
                )
        return _ingest_rows(label, len(rows), seconds, shown)


def run(scale: Scale, work: Path) -> list[Row]:
    rows = data.result_rows(scale.ingest_results)
    bodies = [
        data.payload_body(nightly(rows, number), f"bench-ingest-{number}")
        for number in range(scale.ingest_runs + 1)
    ]
    label = f"ingest, SQLite ({len(rows):,} results, {len(bodies[0]) / 1e6:.1f} MB POST)"
    return _sqlite(work, rows, bodies, label) + _postgres(work, rows, bodies, label)
