"""`/health` tells the truth, uploads that cannot be stored say so, and reads answer whatever happens to
writes (issue 19, items 6 and 7).

For real: a SQLite database on a 3 MiB tmpfs that fills up (the server runs in a mount namespace of its
own), the database files deleted under a running `serve`, a PostgreSQL database turned read-only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from batch_metrics.endpoint.storage import PostgresStorage, open_storage
from batch_metrics.endpoint.storage.health import DISK_FULL, GONE, PROBE_INTERVAL, PROBE_SECONDS, READ_ONLY
from tests.conftest import leave_out, need
from tests.endpoint.test_limits import hours_ago
from tests.live import Live, ServeProcess, batch, execute_directly, running, serve_process

pytest_plugins = ["tests.live"]

TOKEN = "health-token"
_AUTH = {"Authorization": f"Bearer {TOKEN}"}
# Runs the rest of its arguments with a tmpfs of $1 bytes mounted on $2, seen by that process alone.
_ON_A_SMALL_DISK = 'mount -t tmpfs -o "size=$1" tmpfs "$2" && shift 2 && exec "$@"'


def _health(url: str, status: int) -> dict[str, Any]:
    """/health once it answers `status` (it probes at most once a second), else its last answer."""
    deadline = time.monotonic() + 10
    while True:
        answer = requests.get(f"{url}/health", timeout=30)
        if answer.status_code == status or time.monotonic() > deadline:
            body: dict[str, Any] = answer.json()
            return {"http": answer.status_code, **body}
        time.sleep(0.2)


def _reads_answer(url: str) -> None:
    for path in ("/api/dashboard?days=7", "/metrics", "/batch-runs"):
        answer = requests.get(f"{url}{path}", headers=_AUTH, timeout=30)
        assert answer.status_code == 200, (path, answer.text)


def test_health_writes_to_find_out_and_shows_the_backlog(live: Live, database: str) -> None:
    assert live.post(batch(2, started_at=hours_ago(1))).status_code == 201
    assert live.get("/api/dashboard").status_code == 200  # the batch is rolled up, if it was not yet
    health = _health(live.url, 200)
    assert health == {"http": 200, "status": "ok", "rollups_queued": 0, "rollups_set_aside": 0}
    [probe] = live.storage.query("SELECT written_at FROM health_probe", [])
    assert probe["written_at"] > hours_ago(0.01)


@pytest.mark.postgres
def test_a_read_only_postgresql_fails_health_and_uploads_while_reads_answer(postgres_admin_url: str) -> None:
    from tests.pg import fresh_database

    with fresh_database(postgres_admin_url) as url:
        writable = open_storage(url)
        writable.migrate()
        writable.insert_batch(batch(2, started_at=hours_ago(2)), None)  # type: ignore[arg-type]  # queued
        writable.close()
        execute_directly(
            url, f"ALTER DATABASE {url.rsplit('/', 1)[1]} SET default_transaction_read_only = on"
        )
        storage = PostgresStorage(url)
        try:
            with running(storage, [TOKEN]) as served:
                assert _health(served, 503) == {"http": 503, "status": "unavailable", "reason": READ_ONLY,
                                                "rollups_queued": 1, "rollups_set_aside": 0}  # fmt: skip
                upload = requests.post(f"{served}/batch-metrics", json=batch(1), headers=_AUTH, timeout=30)
                assert (upload.status_code, upload.headers["Retry-After"]) == (503, "30")
                assert upload.text.startswith(f"Service unavailable: {READ_ONLY}; the batch was not stored")
                _reads_answer(served)  # the catch-up before each read cannot write: they answer all the same
        finally:
            storage.close()


@pytest.mark.postgres
def test_health_keeps_its_verdict_while_every_connection_is_lent_out(postgres_admin_url: str) -> None:
    """A busy pool is not a database that is down: /health answers in time, with its last verdict."""
    from tests.pg import fresh_database

    with fresh_database(postgres_admin_url) as url:
        storage = PostgresStorage(url, pool_size=1)
        try:
            storage.migrate()
            assert storage.health().ok
            with storage.pool.connection():  # the pool's only connection, held by "a long upload"
                time.sleep(PROBE_INTERVAL)
                started = time.monotonic()
                report = storage.health()
                waited = time.monotonic() - started
            assert report.ok and waited < 2 * PROBE_SECONDS, (report, waited)
        finally:
            storage.close()


def test_deleting_the_database_files_under_serve_refuses_uploads_and_fails_health(tmp_path: Path) -> None:
    """They used to get 201 (written to files nobody could open again) while /health said ok."""
    database = tmp_path / "metrics.db"
    with serve_process(str(database), TOKEN, tmp_path / "serve.log") as served:
        first = requests.post(f"{served.url}/batch-metrics", json=batch(2), headers=_AUTH, timeout=30)
        assert first.status_code == 201, served.output()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink()
        upload = requests.post(f"{served.url}/batch-metrics", json=batch(2, batch_id="after"), headers=_AUTH,
                               timeout=30)  # fmt: skip
        assert (upload.status_code, upload.headers["Retry-After"]) == (503, "30")
        assert upload.text == f"Service unavailable: {GONE}; the batch was not stored, send it again later"
        health = _health(served.url, 503)
        assert (health["http"], health["status"], health["reason"]) == (503, "unavailable", GONE)
        assert health["rollups_set_aside"] == 0  # the first batch is rolled up, or still queued: not failed
        _reads_answer(served.url)  # from the files still open
        assert GONE in served.output()  # the operator reads it in the log too


def _small_disk(directory: Path, size: int) -> list[str]:
    """A wrapper running a command with a tmpfs of `size` bytes on `directory`, or a skip saying why not."""
    unshare = shutil.which("unshare")
    need(Path(unshare or "/usr/bin/unshare"), "util-linux")
    wrapper = [str(unshare), "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        wrapper.insert(1, "--map-root-user")
    wrapper += ["sh", "-c", _ON_A_SMALL_DISK, "sh", str(size), str(directory)]
    tried = subprocess.run([*wrapper, "true"], capture_output=True, text=True, timeout=30, check=False)
    if tried.returncode != 0:
        leave_out(f"this kernel or container refuses a mount namespace: {tried.stderr.strip()[:200]}")
    return wrapper


@contextmanager
def _serving_on_a_full_disk(tmp_path: Path) -> Iterator[tuple[ServeProcess, list[requests.Response]]]:
    """`serve` on a 3 MiB disk, then uploads until the disk is full: the server and every answer."""
    disk = tmp_path / "disk"
    disk.mkdir()
    wrapper = _small_disk(disk, 3 * 1024 * 1024)
    with serve_process(str(disk / "metrics.db"), TOKEN, tmp_path / "serve.log", wrapper=wrapper) as served:
        answers: list[requests.Response] = []
        while len(answers) < 60 and (not answers or answers[-1].status_code == 201):
            body = batch(1000, batch_id=f"fill-{len(answers)}", started_at=hours_ago(1))
            for row in body["results"]:
                row["error_message"] = "x" * 200
            answers.append(requests.post(f"{served.url}/batch-metrics", json=body, headers=_AUTH, timeout=60))
        yield served, answers


def test_a_full_disk_refuses_uploads_with_507_and_fails_health_while_reads_answer(tmp_path: Path) -> None:
    """They used to get a generic 500, and the dashboard and /metrics 500 too (reads wrote), /health ok."""
    with _serving_on_a_full_disk(tmp_path) as (served, answers):
        statuses = [answer.status_code for answer in answers]
        assert statuses[0] == 201 and statuses[-1] == 507, (statuses, served.output()[-3000:])
        refused = answers[-1]
        assert refused.headers["Retry-After"] == "30"
        assert refused.text == (
            f"Insufficient storage: {DISK_FULL}; the batch was not stored, send it again later"
        )
        health = _health(served.url, 503)
        assert (health["http"], health["reason"]) == (503, DISK_FULL)
        _reads_answer(served.url)
        stored = requests.get(f"{served.url}/batch-runs?limit=500", headers=_AUTH, timeout=30).json()["runs"]
        assert len(stored) == statuses.count(201)  # every 201 is stored, nothing else
