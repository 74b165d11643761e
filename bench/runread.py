"""Run read: every result of one big run read through `GET /batch-runs/{id}`, a page at a time (issue 19).

One batch of 300,000 results is stored through `batch-metrics serve` on SQLite; a fresh server on
the same file then answers every page of the run, and the figure is how much its peak resident
memory (VmHWM, from /proc) rose while it did. The baseline, measured in the same run, is what the
unpaged answer cost before: the same rows fetched at once with the driver alone and serialised to
JSON in one piece, as the route used to, in a fresh process measured the same way.
"""

from __future__ import annotations

import json
import subprocess
import time
from contextlib import closing
from pathlib import Path

from batch_metrics.endpoint.storage import RESULTS_PAGE
from bench import data
from bench.endpoint import Endpoint, serving
from bench.measure import MIB, PYTHON, BenchError, Row, Scale, clean_env, ratio_row

ROWS = {"full": 300_000, "quick": 2_000}
TARGET_MIB = 100
# The unpaged answer, as the route built it: every row as a dict, then one JSON document.
_AT_ONCE = """
import json, sqlite3, sys, time
from pathlib import Path

def resident(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024

before, started = resident("VmRSS"), time.perf_counter()
connection = sqlite3.connect(sys.argv[1])
query = "SELECT * FROM recipe_results WHERE batch_run_id = ? ORDER BY id"
cursor = connection.execute(query, (int(sys.argv[2]),))
names = [column[0] for column in cursor.description]
rows = [dict(zip(names, row)) for row in cursor.fetchall()]
body = json.dumps({"results": rows}, ensure_ascii=False).encode()
print(len(rows), resident("VmHWM") - before, time.perf_counter() - started)
"""


def _store(database: Path, work: Path, count: int) -> int:
    """One batch of `count` results, stored and rolled up; its run id."""
    body = data.payload_body(data.result_rows(count), "bench-runread")
    with (
        serving(str(database), work / "runread-store.log") as endpoint,
        closing(endpoint.connection()) as http,
    ):
        status, answer = endpoint.post(http, body)
        if status != 201:
            raise BenchError(f"POST of the {count:,}-result batch answered {status}: {answer[:300]!r}")
        endpoint.get(http, "/api/dashboard?days=7")
        run_id: int = json.loads(answer)["batch_run_id"]
        return run_id


def _read_pages(endpoint: Endpoint, run_id: int) -> tuple[int, int, float]:
    """Every page of the run: (pages, results, seconds)."""
    pages = results = 0
    cursor: str | None = None
    started = time.perf_counter()
    with closing(endpoint.connection()) as http:
        while True:
            path = f"/batch-runs/{run_id}" + (f"?cursor={cursor}" if cursor else "")
            status, answer = endpoint.get(http, path)
            if status != 200:
                raise BenchError(f"GET {path} answered {status}: {answer[:300]!r}")
            page = json.loads(answer)
            pages, results, cursor = pages + 1, results + len(page["results"]), page["next_cursor"]
            if cursor is None:
                return pages, results, time.perf_counter() - started


def _at_once(database: Path, run_id: int, count: int) -> tuple[int, float]:
    """The baseline: (peak memory growth in bytes, seconds) of building the unpaged answer."""
    done = subprocess.run([PYTHON, "-c", _AT_ONCE, str(database), str(run_id)], capture_output=True,
                          text=True, env=clean_env(), check=False)  # fmt: skip
    if done.returncode != 0:
        raise BenchError(f"the unpaged baseline failed: {done.stderr[-500:]}")
    rows, growth, seconds = done.stdout.split()
    if int(rows) != count:
        raise BenchError(f"the unpaged baseline read {rows} results, not {count:,}")
    return int(growth), float(seconds)


def run(scale: Scale, work: Path) -> list[Row]:
    count = ROWS[scale.name]
    database = work / "runread.db"
    for leftover in work.glob("runread.db*"):
        leftover.unlink()
    run_id = _store(database, work, count)
    with serving(str(database), work / "runread-serve.log") as endpoint:
        with closing(endpoint.connection()) as http:  # a first answer, so start-up costs are not counted
            endpoint.get(http, f"/batch-runs/{run_id}?limit=1")
        before = endpoint.memory("VmHWM")
        pages, results, seconds = _read_pages(endpoint, run_id)
        growth = endpoint.memory("VmHWM") - before
    if results != count:
        raise BenchError(f"the pages held {results:,} results, not {count:,}")
    baseline, baseline_seconds = _at_once(database, run_id, count)
    label = f"run read, SQLite ({count:,} results, {pages} pages of {RESULTS_PAGE:,})"
    memory = Row(
        f"{label}: server peak memory growth",
        f"{growth / MIB:.1f} MiB",
        f"{baseline / MIB:.1f} MiB (every row at once, as the unpaged answer)",
        growth / baseline if baseline else None,
        f"< {TARGET_MIB} MiB",
        growth < TARGET_MIB * MIB,
        {"ours": growth / MIB, "baseline": baseline / MIB, "unit": "MiB", "results": count, "pages": pages},
    )
    time_row = ratio_row(f"{label}: seconds for every page", seconds, baseline_seconds, unit="s",
                         baseline_name="every row at once, as the unpaged answer", limit=None,
                         results=count, pages=pages)  # fmt: skip
    return [memory, time_row]
