"""`batch-metrics serve` as a subprocess on a free loopback port, and a plain HTTP client for it."""

from __future__ import annotations

import http.client
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from batch_metrics import TOKEN_ENV
from batch_metrics.client.upload import ROUTE, idempotency_key
from bench.measure import PYTHON, ROOT, BenchError, clean_env, cli_command, stop

HOST = "127.0.0.1"
_START_TIMEOUT = 30.0


@dataclass(frozen=True)
class Endpoint:
    port: int
    token: str
    log: Path
    pid: int

    def memory(self, field: str) -> int:
        """The server process's resident bytes from /proc: `VmRSS` now, or `VmHWM`, its peak so far."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
        raise BenchError(f"no {field} in /proc/{self.pid}/status")

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(HOST, self.port, timeout=300)

    def post(
        self, connection: http.client.HTTPConnection, body: bytes, token: str | None = None
    ) -> tuple[int, bytes]:
        """POST one batch as the uploader does (bearer token, key derived from the bytes); `token`
        replaces the server's own."""
        connection.request(
            "POST",
            ROUTE,
            body=body,
            headers={
                "Authorization": f"Bearer {token or self.token}",
                "Content-Type": "application/json",
                "Idempotency-Key": idempotency_key(body),
            },
        )
        response = connection.getresponse()
        return response.status, response.read()

    def get(self, connection: http.client.HTTPConnection, path: str) -> tuple[int, bytes]:
        connection.request("GET", path, headers={"Authorization": f"Bearer {self.token}"})
        response = connection.getresponse()
        return response.status, response.read()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _healthy(port: int) -> bool:
    connection = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        connection.request("GET", "/health")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


# The same server with uploads stored but not compared with the previous run (`compare_runs=False`):
# what an upload cost before issue 21, for the comparison's cost beside it (bench/ingest.py).
_UNCOMPARED = (
    "import sys; from batch_metrics.endpoint.serving import serve; "
    "serve(sys.argv[1], int(sys.argv[2]), sys.argv[3], compare_runs=False)"
)


@contextmanager
def serving(db: str, log: Path, *options: str, compare: bool = True) -> Iterator[Endpoint]:
    """Start the endpoint on `db` (SQLite path or PostgreSQL URL), with `options` added to its command
    line (or, with `compare=False`, storing uploads without comparing them); stop it with SIGTERM
    afterwards."""
    token = secrets.token_urlsafe(24)
    port = free_port()
    argv = [*cli_command(), "serve", "--host", HOST, "--port", str(port), "--db", db, *options]
    if not compare:
        argv = [PYTHON, "-c", _UNCOMPARED, HOST, str(port), db]
    with log.open("wb") as output:
        process = subprocess.Popen(
            argv, stdout=output, stderr=subprocess.STDOUT, env=clean_env(**{TOKEN_ENV: token}), cwd=ROOT
        )
    try:
        deadline = time.monotonic() + _START_TIMEOUT
        while not _healthy(port):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:]
                raise BenchError(f"`batch-metrics serve` did not become healthy on port {port}:\n{tail}")
            time.sleep(0.05)
        yield Endpoint(port, token, log, process.pid)
    finally:
        stop(process, 30)
