"""Workload 4, concurrency: many clients uploading at once to `batch-metrics serve` on SQLite.

Each client is a thread with its own keep-alive connection, all released together; every upload
is a distinct body (its own batch id, so its own Idempotency-Key). Baseline: as many uploads
from one client, one after another, on a fresh server — what concurrency costs or gains.
Afterwards the rows are counted in the database itself: every one sent must be there.
"""

from __future__ import annotations

import http.client
import sqlite3
import statistics
import threading
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from bench import data
from bench.endpoint import Endpoint, serving
from bench.measure import Row, Scale, percentile


@dataclass
class Outcome:
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stored_rows: int = 0


def _client(endpoint: Endpoint, bodies: list[bytes], start: threading.Barrier, outcome: Outcome,
            lock: threading.Lock) -> None:  # fmt: skip
    connection = endpoint.connection()
    start.wait()
    for body in bodies:
        began = time.perf_counter()
        try:
            status, answer = endpoint.post(connection, body)
            error = None if status == 201 else f"HTTP {status}: {answer[:200]!r}"
        except (OSError, http.client.HTTPException) as problem:
            error = f"{type(problem).__name__}: {problem}"
            connection.close()
            connection = endpoint.connection()
        elapsed = time.perf_counter() - began
        with lock:
            outcome.latencies.append(elapsed)
            if error:
                outcome.errors.append(error)
    connection.close()


def _upload_all(db: Path, log: Path, per_client: list[list[bytes]]) -> Outcome:
    for leftover in db.parent.glob(db.name + "*"):
        leftover.unlink()
    outcome = Outcome()
    lock = threading.Lock()
    start = threading.Barrier(len(per_client) + 1)
    with serving(str(db), log) as endpoint:
        clients = [
            threading.Thread(target=_client, args=(endpoint, bodies, start, outcome, lock))
            for bodies in per_client
        ]
        for client in clients:
            client.start()
        start.wait()
        began = time.perf_counter()
        for client in clients:
            client.join()
        outcome.seconds = time.perf_counter() - began
    with closing(sqlite3.connect(db)) as connection:
        outcome.stored_rows = connection.execute("SELECT count(*) FROM recipe_results").fetchone()[0]
    return outcome


def run(scale: Scale, work: Path) -> list[Row]:
    rows = data.result_rows(scale.rows_per_upload)
    uploads = scale.clients * scale.uploads_per_client

    def bodies(prefix: str, count: int) -> list[bytes]:
        return [data.payload_body(rows, f"{prefix}-{number}") for number in range(count)]

    many = bodies("bench-concurrent", uploads)
    ours = _upload_all(
        work / "concurrency.db", work / "concurrency-serve.log",
        [many[client :: scale.clients] for client in range(scale.clients)],
    )  # fmt: skip
    one = _upload_all(
        work / "sequential.db", work / "sequential-serve.log", [bodies("bench-sequential", uploads)]
    )
    label = (
        f"concurrency, SQLite, {scale.clients} clients x {scale.uploads_per_client} uploads x "
        f"{scale.rows_per_upload:,} results"
    )
    versus = "1 client, sequential"
    ours_rate, one_rate = uploads / ours.seconds, uploads / one.seconds
    raw = {
        "clients": scale.clients, "uploads": uploads, "rows_per_upload": scale.rows_per_upload,
        "ours_seconds": ours.seconds, "baseline_seconds": one.seconds, "errors": ours.errors[:20],
    }  # fmt: skip
    latency = {
        name: (percentile(ours.latencies, fraction) * 1000, percentile(one.latencies, fraction) * 1000)
        for name, fraction in (("p50", 0.5), ("p99", 0.99))
    }
    expected_rows = uploads * scale.rows_per_upload
    return [
        Row(
            f"{label}: throughput",
            f"{ours_rate:.1f} uploads/s ({ours_rate * scale.rows_per_upload:,.0f} rows/s)",
            f"{one_rate:.1f} uploads/s ({one_rate * scale.rows_per_upload:,.0f} rows/s) ({versus})",
            ours_rate / one_rate,
            raw={"ours": ours_rate, "baseline": one_rate, "unit": "uploads/s", **raw},
        ),
        *(
            Row(
                f"{label}: {name} latency",
                f"{mine:.0f} ms",
                f"{theirs:.0f} ms ({versus})",
                mine / theirs,
                raw={
                    "ours": mine,
                    "baseline": theirs,
                    "unit": "ms",
                    "median_ms": statistics.median(ours.latencies),
                },
            )
            for name, (mine, theirs) in latency.items()
        ),
        Row(
            f"{label}: errors",
            f"{len(ours.errors)} of {uploads}",
            f"{len(one.errors)} of {uploads} ({versus})",
            target="0",
            met=not ours.errors,
            raw={"ours": len(ours.errors), "baseline": len(one.errors), **raw},
        ),
        Row(
            f"{label}: rows stored afterwards",
            f"{ours.stored_rows:,}",
            f"{expected_rows:,} sent",
            ours.stored_rows / expected_rows,
            target="all",
            met=ours.stored_rows == expected_rows,
            raw={"ours": ours.stored_rows, "baseline": expected_rows},
        ),
    ]
