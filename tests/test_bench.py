"""The benchmark suite (issue 4): it runs end to end, and its data is what it says it is.

No timing assertions here (issue 4 keeps speed out of the test suite): the quick run is
checked for the shape of its report — every workload row, each with a baseline beside it —
never for how fast anything was.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bench import dashboard as bench_dashboard
from bench import data, floor, postgres
from tests.conftest import ROOT


def _table(stdout: str) -> dict[str, list[str]]:
    """The report's Markdown table as {workload: [ours, baseline, ratio, target, met]}."""
    lines = [line for line in stdout.splitlines() if line.startswith("| ")]
    assert lines, f"no table in the output:\n{stdout}"
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == ["workload", "ours", "baseline", "ratio", "target", "met?"]
    rows = {}
    for line in lines[1:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, list[str]], dict[str, Any]]:
    work = tmp_path_factory.mktemp("bench")
    report = work / "report.json"
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--offline", "--json", str(report),
         "--data-dir", str(work)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, f"stdout:\n{completed.stdout}\nstderr:\n{completed.stderr[-3000:]}"
    return _table(completed.stdout), json.loads(report.read_text())


def _row(rows: dict[str, list[str]], prefix: str, suffix: str = "") -> list[str]:
    matches = [cells for name, cells in rows.items() if name.startswith(prefix) and name.endswith(suffix)]
    assert len(matches) == 1, (
        f"expected one row {prefix!r}...{suffix!r}, found {len(matches)} in {list(rows)}"
    )
    return matches[0]


def _assert_measured(cells: list[str]) -> None:
    ours, baseline, ratio, _target, met = cells
    assert ours != "not measured" and not baseline.startswith("n/a"), cells
    assert any(char.isdigit() for char in ours) and any(char.isdigit() for char in baseline), cells
    assert baseline.endswith(")"), f"the baseline cell names the baseline: {cells}"
    assert ratio.endswith("x") or ratio == "—", cells
    assert met in ("yes", "**no**", "—"), cells


def _postgres_available() -> bool:
    return bool(os.environ.get(postgres.URL_ENV)) or any(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))


def test_quick_run_prints_every_workload_beside_its_baseline(
    quick_run: tuple[dict[str, list[str]], dict[str, Any]],
) -> None:
    rows, _ = quick_run
    measured = [
        *[
            (f"collect + build, {fmt} (", figure)
            for fmt in data.FORMATS
            for figure in (": wall time", ": peak memory")
        ],
        ("ingest, SQLite (", ": rows/s vs executemany"),
        ("ingest, SQLite (", ": rows/s until the dashboard shows the batch, vs executemany"),
        ("cold start: `batch-metrics run --dry-run`", ""),
        ("cold start: `entrypoint.py run --dry-run`", ""),
        *[("concurrency, SQLite, ", figure) for figure in (": throughput", ": p50 latency", ": p99 latency")],
        ("auth, OIDC upload (", ""),
    ]
    for prefix, suffix in measured:
        _assert_measured(_row(rows, prefix, suffix))
    for suffix in (": errors", ": rows stored afterwards"):
        cells = _row(rows, "concurrency, SQLite, ", suffix)
        assert cells[3:] == ["0" if suffix == ": errors" else "all", "yes"], cells

    for fmt in ("validation-results", "ndjson"):
        cells = _row(rows, f"collect + build, {fmt} (", ": wall time vs jq")
        if shutil.which("jq") or os.environ.get("CI") == "true":
            _assert_measured(cells)
        else:
            assert cells[1].startswith("n/a: jq not installed"), cells
    assert not [name for name in rows if name.startswith("collect + build, junit") and "jq" in name]
    for figure in (
        ": rows/s vs COPY",
        ": rows/s vs executemany",
        ": rows/s until the dashboard shows the batch, vs COPY",
    ):
        cells = _row(rows, "ingest, PostgreSQL (", figure)
        if _postgres_available() or os.environ.get("CI") == "true":
            _assert_measured(cells)
        else:
            assert cells[1].startswith("n/a: no PostgreSQL"), cells

    # --offline keeps the test on loopback: the pip install would reach the package index.
    install = _row(rows, "action install: ")
    assert install[1] == "n/a: --offline: pip would contact the package index", install
    image = _row(rows, "Docker image size ")
    if not image[1].startswith(("n/a: not built", "n/a: podman not installed")):
        _assert_measured(image)
    for database in ("SQLite", "PostgreSQL"):
        for query in bench_dashboard.QUERY_NAMES + bench_dashboard.ANSWER_NAMES:
            cells = _row(rows, f"dashboard, {database} (", f": {query}")
            if database == "SQLite" or _postgres_available() or os.environ.get("CI") == "true":
                _assert_measured(cells)
            else:
                assert cells[1].startswith("n/a: no PostgreSQL"), cells
    hostile = [name for name in rows if name.startswith("hostile, ")]  # 2 sizes x (time, memory) + growth
    assert len(hostile) == 5 * len(data.HOSTILE), hostile
    for name in hostile:
        _assert_measured(rows[name])
    _assert_measured(_row(rows, "ingest, SQLite (", ": server peak memory per MiB of body"))
    compared = ": upload time with the comparison with the previous run vs without it"
    _assert_measured(_row(rows, "ingest, SQLite (", compared))
    run_read = "run read, SQLite (2,000 results, 2 pages of 1,000)"
    _assert_measured(_row(rows, run_read, ": seconds for every page"))
    memory = _row(rows, run_read, ": server peak memory growth")
    _assert_measured(memory)
    assert memory[3] == "< 100 MiB", memory
    _assert_measured(_row(rows, "backfill, ", ": wall time"))
    fixed = 8 + 6 + 2 + 6 + 2 + 2  # ingest: 6 (the comparison's cost among them); the last 2: run read
    dashboard = 2 * (len(bench_dashboard.QUERY_NAMES) + len(bench_dashboard.ANSWER_NAMES))
    auth, backfill = 1, 1
    assert len(rows) == fixed + dashboard + len(hostile) + auth + backfill, list(rows)


def test_json_report_holds_the_raw_numbers_of_every_row(
    quick_run: tuple[dict[str, list[str]], dict[str, Any]],
) -> None:
    rows, report = quick_run
    assert [row["workload"] for row in report["rows"]] == list(rows)
    assert report["scale"]["results"] == 2_000 and set(report["machine"]) >= {"nproc", "cpu", "ram", "python"}
    for row in report["rows"]:
        if not row["baseline"].startswith("n/a"):
            assert isinstance(row["raw"]["ours"], int | float), row
            assert isinstance(row["raw"]["baseline"], int | float), row


@pytest.mark.parametrize("fmt", data.FORMATS)
def test_same_seed_writes_identical_bytes(fmt: str, tmp_path: Path) -> None:
    first = data.write_dataset(fmt, tmp_path / "a", files=3, results=300, seed=7)
    again = data.write_dataset(fmt, tmp_path / "b", files=3, results=300, seed=7)
    other = data.write_dataset(fmt, tmp_path / "c", files=3, results=300, seed=8)
    assert [path.read_bytes() for path in first.files] == [path.read_bytes() for path in again.files]
    assert data.digest(first) == data.digest(again) != data.digest(other)
    assert data.payload_body(data.result_rows(50, 7), "x") == data.payload_body(data.result_rows(50, 7), "x")


def _outcomes(fmt: str, directory: Path) -> Counter[str]:
    return Counter(row["result"] for row in floor.read_rows(fmt, directory))


def test_full_volume_is_the_documented_one(tmp_path: Path) -> None:
    """200 files and 100,000 results per format (~14 MB of validation results), the same outcomes in each."""
    datasets = {fmt: data.write_dataset(fmt, tmp_path / fmt) for fmt in data.FORMATS}
    for dataset in datasets.values():
        assert len(dataset.files) == data.FILES == 200
        assert sum(path.stat().st_size for path in dataset.files) == dataset.size_bytes
    validation = datasets["validation-results"]
    assert 13_000_000 <= validation.size_bytes <= 15_000_000
    assert sum(len(json.loads(path.read_bytes())) for path in validation.files) == data.RESULTS == 100_000
    ndjson_lines = sum(path.read_bytes().count(b"\n") for path in datasets["ndjson"].files)
    assert ndjson_lines == 100_000
    cases = sum(len(ET.parse(path).findall("./testsuite/testcase")) for path in datasets["junit"].files)  # noqa: S314
    assert cases == 100_000
    by_status = _outcomes("validation-results", validation.directory)
    assert _outcomes("junit", datasets["junit"].directory) == by_status
    # Per-record NDJSON has no "skipped": those records exit 0 and count as passed.
    ndjson = _outcomes("ndjson", datasets["ndjson"].directory)
    assert ndjson == Counter(passed=by_status["passed"] + by_status["skipped"], failed=by_status["failed"])
    assert min(by_status.values()) > 1000, by_status
