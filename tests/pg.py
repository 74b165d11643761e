"""A real PostgreSQL for the endpoint's tests: `$BATCH_METRICS_TEST_DATABASE_URL`, or a throwaway cluster.

With the variable set (CI does: `.ci/run` starts Debian's cluster), it is the admin URL of a
role allowed to CREATE DATABASE; each test gets a database of its own, dropped afterwards.
Without it, the session starts a cluster of its own from Debian's binaries
(`/usr/lib/postgresql/<version>/bin`: initdb + pg_ctl, run as the `postgres` user when we are
root, since initdb refuses root) on a free loopback port, and removes it at the end.
No PostgreSQL at all fails the tests that need one, loudly: they are never skipped.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from tests.conftest import unused_port

URL_ENV = "BATCH_METRICS_TEST_DATABASE_URL"
_DEBIAN_BINARIES = Path("/usr/lib/postgresql")


def _binaries() -> Path | None:
    found = sorted(_DEBIAN_BINARIES.glob("*/bin/pg_ctl"), key=lambda path: int(path.parent.parent.name))
    return found[-1].parent if found else None


def _as_cluster_owner(argv: list[str]) -> subprocess.CompletedProcess[str]:
    command = ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)


@contextmanager
def throwaway_cluster() -> Iterator[str]:
    """Start a private cluster (trust auth, loopback only, no fsync); yield its admin URL."""
    binaries = _binaries()
    if binaries is None:
        raise RuntimeError(
            f"no PostgreSQL: set {URL_ENV} or install Debian's postgresql package (for {_DEBIAN_BINARIES})"
        )
    home = Path(tempfile.mkdtemp(prefix="bm-test-pg-"))
    if os.geteuid() == 0:
        shutil.chown(home, "postgres", "postgres")
    data = home / "data"
    port = unused_port()
    pg_ctl = [str(binaries / "pg_ctl"), "-D", str(data), "-l", str(home / "log")]
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {home} -c fsync=off -c full_page_writes=off"
    try:
        for step in (
            [str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
            [*pg_ctl, "-o", options, "-w", "start"],
        ):
            done = _as_cluster_owner(step)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(step[:1])} failed: {done.stderr.strip()[-500:]}")
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        _as_cluster_owner([*pg_ctl, "-m", "immediate", "-w", "stop"])
        shutil.rmtree(home, ignore_errors=True)


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new empty database on the server; its URL; dropped (with any sessions left) afterwards."""
    name = f"bm_test_{secrets.token_hex(6)}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"'.encode())
    try:
        yield urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    finally:
        _drop(admin_url, name)


def _drop(admin_url: str, name: str) -> None:
    """Drop a test's database with any sessions left in it.

    An admin without `pg_signal_backend` may not end an autovacuum worker that happens to be in
    the database: that refusal is retried for a few seconds, since the worker finishes on its own.
    """
    deadline = time.monotonic() + 10
    with psycopg.connect(admin_url, autocommit=True) as admin:
        while True:
            try:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())
                return
            except psycopg.errors.InsufficientPrivilege:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """The admin URL of a running PostgreSQL server (see the module docstring)."""
    url = os.environ.get(URL_ENV)
    if url:
        yield url
        return
    try:
        with throwaway_cluster() as admin_url:
            yield admin_url
    except (OSError, RuntimeError, subprocess.SubprocessError) as error:
        pytest.fail(f"PostgreSQL tests need a server: {error}", pytrace=False)
