"""Fixtures for the endpoint's tests: a fresh database per test on each backend, and the real server.

`database` is parametrized over SQLite (a file in tmp_path) and PostgreSQL (a database of its own
on the server from tests/pg.py), so every test that uses it runs on both. `live` is the ASGI app
under Hypercorn (`Host`, as `batch-metrics serve` runs it) on a free loopback port, in a thread;
tests talk HTTP to it with requests.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from batch_metrics import TOKEN_ENV
from batch_metrics.endpoint.access.guard import CredentialSource
from batch_metrics.endpoint.answers.targets import Targets
from batch_metrics.endpoint.app import create_app
from batch_metrics.endpoint.body import Limits
from batch_metrics.endpoint.serving import Host, bind
from batch_metrics.endpoint.storage import PostgresStorage, SQLiteStorage, is_postgres_url, open_storage
from tests.conftest import ROOT, unused_port, wait_healthy
from tests.pg import fresh_database

pytest_plugins = ["tests.pg"]

Storage = SQLiteStorage | PostgresStorage
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


def batch(count: int = 2, **fields: Any) -> dict[str, Any]:
    """A valid payload as the client sends it; `fields` override or add top-level keys."""
    body: dict[str, Any] = {
        "batch_id": "batch-1",
        "ecosystem": "homebrew",
        "started_at": "2026-02-19T14:31:25Z",
        "completed_at": "2026-02-19T14:41:25Z",
        "total_recipes": count,
        "passed": count,
        "failed": 0,
        "skipped": 0,
        "success_rate": 1.0,
        "macos_minutes": 1.5,
        "linux_minutes": 2.5,
        "results": [
            {
                "recipe_name": f"recipe-{number}",
                "ecosystem": "homebrew",
                "result": "passed",
                "duration_seconds": 1.25,
                "platform": "linux-alpine-musl-arm64",
            }
            for number in range(count)
        ],
    }
    body.update(fields)
    return body


_COUNTS = {
    "batch_runs": "SELECT count(*) FROM batch_runs",
    "recipe_results": "SELECT count(*) FROM recipe_results",
    "rollup_queue": "SELECT count(*) FROM rollup_queue",
    "run_platforms": "SELECT count(*) FROM run_platforms",
}


def count_rows(database: str, table: str) -> int:
    """Rows in a table, read with the driver directly (not through the code under test)."""
    query = _COUNTS[table]
    if is_postgres_url(database):
        with psycopg.connect(database) as db:
            row = db.execute(query.encode()).fetchone()
    else:
        import sqlite3

        with sqlite3.connect(database) as db:
            row = db.execute(query).fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new, empty database: a SQLite file path or a PostgreSQL URL."""
    if request.param == "sqlite":
        yield str(tmp_path / "metrics.db")
        return
    with fresh_database(request.getfixturevalue("postgres_admin_url")) as url:
        yield url


@pytest.fixture
def storage(database: str) -> Iterator[Storage]:
    opened = open_storage(database)
    opened.migrate()
    yield opened
    opened.close()


@dataclass
class Live:
    url: str
    token: str
    storage: Storage
    session: requests.Session = field(default_factory=requests.Session)

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}

    def post(self, body: Any, *, headers: dict[str, str] | None = None, **kwargs: Any) -> requests.Response:
        """POST a payload (a dict as JSON; bytes or a chunk iterator as they are) with the token."""
        as_json = isinstance(body, dict)
        sent = {**self.auth(), **(headers or {})}
        data, json = (None, body) if as_json else (body, None)
        return self.session.post(
            f"{self.url}/batch-metrics", data=data, json=json, headers=sent, timeout=60, **kwargs
        )

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("headers", self.auth())
        return self.session.get(f"{self.url}{path}", timeout=60, **kwargs)


@contextmanager
def running(
    storage: Storage,
    tokens: Iterable[str],
    *,
    idle_seconds: float = 15.0,
    drain_seconds: float = 30.0,
    public_read: bool = False,
    credentials: CredentialSource | None = None,
    targets: Targets | None = None,
    **limits: Any,
) -> Iterator[str]:
    """The endpoint served on a free loopback port in a thread; its base URL. Stopped (drained) after.

    `limits` are `Limits` fields (`max_body_bytes=4096`, ...); the rest are `Host`'s or `create_app`'s.
    """
    app = create_app(
        storage,
        tokens,
        credentials=credentials,
        limits=Limits(**limits),
        public_read=public_read,
        targets=targets,
    )
    server = Host(app, bind("127.0.0.1", 0), idle_seconds=idle_seconds, drain_seconds=drain_seconds)
    thread = threading.Thread(target=server.run, name="endpoint", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()
        thread.join(timeout=60)
        assert not thread.is_alive(), "the endpoint did not stop"


@pytest.fixture
def live(storage: Storage) -> Iterator[Live]:
    token = secrets.token_urlsafe(24)
    with running(storage, [token]) as url:
        yield Live(url, token, storage)


@dataclass
class ServeProcess:
    """`python -m batch_metrics.cli serve` as its own process, as users (and the Docker image) run it."""

    process: subprocess.Popen[bytes]
    log: Path
    url: str

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def memory(self, field: str = "VmHWM") -> int:
        """Bytes of the server's resident memory from /proc: its peak (VmHWM) or now (VmRSS)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
        raise AssertionError(f"no {field} in /proc/{self.process.pid}/status")

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


@contextmanager
def serve_process(
    database: str, token: str, log: Path, *options: str, wrapper: Sequence[str] = ()
) -> Iterator[ServeProcess]:
    """`serve` on a free port with `options` (`--max-inflated-mb`, ...) added to its command line, run
    by `wrapper` when given (a command that ends by running the rest of its arguments)."""
    env = {**os.environ, TOKEN_ENV: token, "PYTHONUNBUFFERED": "1"}
    env.pop("DATABASE_URL", None)
    argv = [*wrapper, sys.executable, "-m", "batch_metrics.cli", "serve", "--port", "0", "--db", database,
            *options]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while not (found := re.search(r"serving on (http://\S+)", log.read_text(errors="replace"))):
            assert process.poll() is None, f"serve exited: {log.read_text(errors='replace')}"
            assert time.monotonic() < deadline, f"serve did not start: {log.read_text(errors='replace')}"
            time.sleep(0.05)
        yield ServeProcess(process, log, found.group(1))
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)


@contextmanager
def hypercorn_process(env: dict[str, str], log: Path, *options: str) -> Iterator[str]:
    """`app_from_env()` under Hypercorn (the README's ASGI entry point) on a free port, with `env` added
    to the environment and `options` to its command line; its URL once /health answers."""
    port = unused_port()
    argv = [sys.executable, "-m", "hypercorn", *options, "--bind", f"127.0.0.1:{port}",
            "batch_metrics.server:app_from_env()"]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(
            argv, stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, **env}, cwd=ROOT
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, seconds=60, alive=lambda: process.poll() is None, why=log.read_text)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def execute_directly(database: str, *statements: str) -> None:
    """Run SQL on the test database with the driver alone (to set a trap for the code under test)."""
    if is_postgres_url(database):
        with psycopg.connect(database, autocommit=True) as db:
            for statement in statements:
                db.execute(statement.encode())
    else:
        import sqlite3

        with sqlite3.connect(database, isolation_level=None) as db:
            for statement in statements:
                db.execute(statement)


def poison_results(database: str, recipe_name: str = "poison") -> None:
    """A real trigger that makes the insert of the result row named `recipe_name` fail."""
    if is_postgres_url(database):
        execute_directly(
            database,
            "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF NEW.recipe_name = '{recipe_name}' THEN "
            "RAISE EXCEPTION 'poisoned row at /srv/secret.db'; END IF; "
            "RETURN NEW; END $$",
            "CREATE TRIGGER poison BEFORE INSERT ON recipe_results FOR EACH ROW EXECUTE FUNCTION poison()",
        )
    else:
        execute_directly(
            database,
            f"CREATE TRIGGER poison BEFORE INSERT ON recipe_results WHEN NEW.recipe_name = '{recipe_name}' "
            "BEGIN SELECT RAISE(ABORT, 'poisoned row at /srv/secret.db'); END",
        )
