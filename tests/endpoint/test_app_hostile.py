"""The endpoint against hostile and careless peers, over real sockets on loopback (issue 9).

Refusals from the headers, bodies over the limit read by every common client, memory that stays
bounded (measured in the server process's /proc), slow and idle connections, log injection,
PostgreSQL's NUL and restarts, and the operator's mistakes at start.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import resource
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import requests

from batch_metrics import TOKEN_ENV
from batch_metrics.endpoint.body import MIB
from tests.conftest import ROOT
from tests.live import Live, Storage, batch, count_rows, running, serve_process

pytest_plugins = ["tests.live"]

SMALL_LIMIT = 4096


@pytest.fixture
def small(storage: Storage) -> Iterator[Live]:
    """A server whose body limit is 4 KiB (64 KiB once inflated)."""
    token = secrets.token_urlsafe(16)
    with running(storage, [token], max_body_bytes=SMALL_LIMIT, max_inflated_bytes=65536) as url:
        yield Live(url, token, storage)


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def raw_head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_answer(client: socket.socket, timeout: float = 10) -> bytes:
    """What the server sent until the end of its response's head (or until it closed)."""
    client.settimeout(timeout)
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = client.recv(65536)
        if not chunk:
            break
        answer += chunk
    return answer


def padded(size: int) -> bytes:
    """A valid batch of exactly `size` bytes (JSON whitespace after it)."""
    body = json.dumps(batch(1)).encode()
    return body + b" " * (size - len(body))


# --- 2. Refuse before reading ---------------------------------------------------------------------


def test_401_comes_from_the_headers_before_the_body_is_sent(live: Live) -> None:
    """The answer arrives while 63 of the 64 MiB announced have not even been sent."""
    announced = 64 * MIB
    with socket.create_connection(("127.0.0.1", port_of(live.url))) as client:
        client.sendall(raw_head("POST", "/batch-metrics", {"Content-Length": str(announced)}) + b"{" * MIB)
        answer = read_answer(client)
    assert answer.startswith(b"HTTP/1.1 401 ")


@pytest.mark.parametrize("scheme", ["Basic", "bearer", "Token", ""])
def test_the_right_token_under_another_scheme_is_401(live: Live, scheme: str) -> None:
    response = live.post(batch(1), headers={"Authorization": f"{scheme} {live.token}".strip()})
    assert response.status_code == 401
    assert live.post(batch(1)).status_code == 201  # the same token, as `Bearer <token>`


def test_413_comes_from_the_content_length_before_the_body_is_sent(small: Live) -> None:
    head = raw_head("POST", "/batch-metrics", {**small.auth(), "Content-Length": str(SMALL_LIMIT + 1)})
    with socket.create_connection(("127.0.0.1", port_of(small.url))) as client:
        client.sendall(head)  # and no body at all
        answer = read_answer(client)
    assert answer.startswith(b"HTTP/1.1 413 ")


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_the_body_limit_is_inclusive(small: Live, chunked: bool) -> None:
    exact = padded(SMALL_LIMIT)
    over = padded(SMALL_LIMIT + 1)
    send = (lambda body: iter([body[:1000], body[1000:]])) if chunked else (lambda body: body)
    assert small.post(send(exact)).status_code == 201
    assert small.post(send(over)).status_code == 413


def test_exactly_64_mib_is_accepted_at_the_default_limit(live: Live) -> None:
    assert live.post(padded(64 * MIB)).status_code == 201
    assert live.post(padded(64 * MIB + 1)).status_code == 413


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b" " * min(size, total - sent)
        sent += size


BIG = 8 * MIB  # far over the 4 KiB limit: the client is still sending when the 413 is decided


def _urllib(url: str, token: str, body: bytes | Iterator[bytes]) -> int:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return error.code


def _curl(url: str, token: str, body: Path, chunked: bool) -> int:
    argv = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", f"Authorization: Bearer {token}",
            "--data-binary", f"@{body}", url]  # fmt: skip
    if chunked:
        argv[1:1] = ["-H", "Transfer-Encoding: chunked"]
    return int(subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False).stdout or 0)


_NODE = """
const [url, token, size, chunked] = process.argv.slice(1);
const total = Number(size);
let body;
if (chunked === "1") {
  let sent = 0;
  body = new ReadableStream({pull(controller) {
    if (sent >= total) { controller.close(); return; }
    controller.enqueue(new Uint8Array(65536).fill(32)); sent += 65536;
  }});
} else {
  body = new Uint8Array(total).fill(32);
}
fetch(url, {method: "POST", body, duplex: "half", headers: {Authorization: `Bearer ${token}`}})
  .then(async (r) => { await r.text(); console.log(r.status); })
  .catch((e) => { console.log("error " + (e.cause ? e.cause.code : e.message)); });
"""


def _node(url: str, token: str, size: int, chunked: bool) -> int:
    argv = ["node", "-e", _NODE, url, token, str(size), "1" if chunked else "0"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False).stdout.strip()
    assert out.isdigit(), f"node's fetch did not read an answer: {out}"
    return int(out)


@pytest.mark.parametrize("client", ["requests", "urllib", "curl", "node"])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_every_common_client_reads_the_413(small: Live, tmp_path: Path, client: str, chunked: bool) -> None:
    """Over the limit mid-stream (chunked) or from the headers: the client reads 413, not a reset."""
    url = f"{small.url}/batch-metrics"
    if client == "requests":
        body = _chunks(BIG) if chunked else b" " * BIG
        status = small.session.post(url, data=body, headers=small.auth(), timeout=60).status_code
    elif client == "urllib":
        status = _urllib(url, small.token, _chunks(BIG) if chunked else b" " * BIG)
    elif client == "curl":
        file = tmp_path / "big"
        file.write_bytes(b" " * BIG)
        status = _curl(url, small.token, file, chunked)
    else:
        status = _node(url, small.token, BIG, chunked)
    assert status == 413


@pytest.mark.parametrize("client", ["urllib", "node"])
def test_a_client_that_writes_its_whole_body_first_reads_the_401(live: Live, client: str) -> None:
    url, body_size = f"{live.url}/batch-metrics", 16 * MIB
    if client == "urllib":
        request = urllib.request.Request(url, data=b" " * body_size, method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=60)
        assert refused.value.code == 401
    else:
        assert _node(url, "wrong", body_size, chunked=False) == 401


# --- 3. Memory per request is bounded ---------------------------------------------------------------


def _gzip_bomb(inflated: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b" " * MIB
    return b"".join(packer.compress(block) for _ in range(inflated // MIB)) + packer.flush()


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """1 GiB of JSON whitespace in ~1 MiB of gzip."""
    return _gzip_bomb(1024 * MIB)


def test_a_gzip_bomb_is_inflated_only_up_to_the_cap(tmp_path: Path, bomb: bytes) -> None:
    """The server's peak memory grows by about the cap (16 MiB here), not by the 1 GiB the bomb holds."""
    token = secrets.token_urlsafe(16)
    with serve_process(
        str(tmp_path / "m.db"), token, tmp_path / "serve.log", "--max-inflated-mb", "16"
    ) as served:
        before = served.memory()
        headers = {"Authorization": f"Bearer {token}", "Content-Encoding": "gzip"}
        response = requests.post(f"{served.url}/batch-metrics", data=bomb, headers=headers, timeout=60)
        grown = served.memory() - before
    assert (response.status_code, response.text) == (
        413,
        f"Payload too large: inflated, the limit is {16 * MIB} bytes",
    )
    assert grown < 64 * MIB, f"the server's peak memory grew by {grown / MIB:.0f} MiB"


def test_refused_bodies_cost_the_server_no_memory(tmp_path: Path) -> None:
    """40 unauthenticated clients each sending 15 MiB at once: the server holds none of it."""
    with serve_process(str(tmp_path / "m.db"), "token", tmp_path / "serve.log") as served:
        before = served.memory()
        statuses: list[int] = []

        def intruder() -> None:
            statuses.append(_urllib(f"{served.url}/batch-metrics", "wrong", b"x" * (15 * MIB)))

        clients = [threading.Thread(target=intruder) for _ in range(40)]
        for client in clients:
            client.start()
        for client in clients:
            client.join(timeout=120)
        grown = served.memory() - before
    assert statuses == [401] * 40
    assert grown < 32 * MIB, f"the server's peak memory grew by {grown / MIB:.0f} MiB for 600 MiB refused"


def test_uploads_over_the_memory_budget_wait_their_turn(storage: Storage) -> None:
    """With room for one body in flight, a second upload waits until the first is done, then is stored."""
    token = "t"
    limit = 64 * 1024
    with running(storage, [token], max_body_bytes=limit, max_inflated_bytes=limit,
                 max_in_flight_bytes=limit) as url:  # fmt: skip
        first = padded(limit)
        with socket.create_connection(("127.0.0.1", port_of(url))) as holder:
            head = raw_head("POST", "/batch-metrics", {"Authorization": f"Bearer {token}",
                                                       "Content-Length": str(len(first))})  # fmt: skip
            holder.sendall(head + first[:1000])  # holds its 64 KiB share, sending the rest later
            answers: list[tuple[int, float]] = []

            def upload_second() -> None:
                response = requests.post(f"{url}/batch-metrics", data=padded(2000), timeout=60,
                                         headers={"Authorization": f"Bearer {token}"})  # fmt: skip
                answers.append((response.status_code, time.monotonic()))

            second = threading.Thread(target=upload_second)
            second.start()
            time.sleep(1.0)
            assert not answers, "the second upload was served while the first held the whole budget"
            released = time.monotonic()
            holder.sendall(first[1000:])
            assert read_answer(holder).startswith(b"HTTP/1.1 201 ")
            second.join(timeout=30)
    assert answers and answers[0][0] == 201 and answers[0][1] >= released


def test_the_budget_answers_503_after_its_wait(storage: Storage) -> None:
    limit = 64 * 1024
    with (
        running(storage, ["t"], max_body_bytes=limit, max_inflated_bytes=limit, max_in_flight_bytes=limit,
                wait_seconds=0.5) as url,
        socket.create_connection(("127.0.0.1", port_of(url))) as holder,
    ):  # fmt: skip
        holder.sendall(raw_head("POST", "/batch-metrics", {"Authorization": "Bearer t",
                                                           "Content-Length": str(limit)}))  # fmt: skip
        time.sleep(0.2)
        response = requests.post(f"{url}/batch-metrics", data=padded(2000), timeout=30,
                                 headers={"Authorization": "Bearer t"})  # fmt: skip
    assert (response.status_code, response.headers.get("Retry-After")) == (503, "5")


# --- 1. Slow and idle connections ---------------------------------------------------------------------


@pytest.fixture
def many_files() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_thousand_slow_or_idle_connections_delay_nobody_and_are_closed(
    storage: Storage, many_files: None
) -> None:
    idle_seconds = 3.0
    with running(storage, ["t"], idle_seconds=idle_seconds) as url:
        port = port_of(url)
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(500)]
        trickling = [socket.create_connection(("127.0.0.1", port)) for _ in range(500)]
        header = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
        for sock in trickling:
            sock.setblocking(False)
        opened = time.monotonic()
        delays: list[float] = []
        with requests.Session() as session:
            for position in range(12):  # a byte from every trickler, then one request of each kind
                for sock in trickling:
                    with contextlib.suppress(OSError):  # closed by the server: the point
                        sock.send(header[position : position + 1])
                began = time.monotonic()
                assert session.get(f"{url}/health", timeout=10).status_code == 200
                created = session.post(f"{url}/batch-metrics", json=batch(10, batch_id=f"b{position}"),
                                       headers={"Authorization": "Bearer t"}, timeout=10)  # fmt: skip
                assert created.status_code == 201
                delays.append(time.monotonic() - began)
                time.sleep(0.25)
        assert max(delays) < 1.0, f"the slowest health check + upload took {max(delays):.2f} s"
        # Every one of them is closed by the server within the deadline (plus a margin), while trickling.
        for sock in idle + trickling:
            sock.setblocking(True)
            sock.settimeout(max(0.1, opened + idle_seconds + 5 - time.monotonic()))
            with contextlib.suppress(ConnectionResetError):  # closed with data unread: also closed
                assert sock.recv(1024) == b""
            sock.close()
        assert time.monotonic() - opened < idle_seconds + 5


def test_serve_lifts_its_open_file_limit(tmp_path: Path) -> None:
    """Started with the common soft limit of 1024 descriptors (half the hard limit where that is lower),
    `serve` raises it to the hard limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    start = 1024 if hard == resource.RLIM_INFINITY or hard > 1024 else hard // 2
    env = {**os.environ, TOKEN_ENV: "t", "PYTHONUNBUFFERED": "1"}
    serve = [
        sys.executable,
        "-m",
        "batch_metrics.cli",
        "serve",
        "--port",
        "0",
        "--db",
        str(tmp_path / "m.db"),
    ]
    argv = ["sh", "-c", f'ulimit -Sn {start} && exec "$@"', "sh", *serve]
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while "serving on" not in log.read_text():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        limits = Path(f"/proc/{process.pid}/limits").read_text().splitlines()
    finally:
        process.terminate()
        process.wait(timeout=30)
    open_files = next(line.split()[3:5] for line in limits if line.startswith("Max open files"))
    expected = "65536" if hard == resource.RLIM_INFINITY else str(hard)
    assert open_files[0] == expected, open_files


# --- 5. Logs and PostgreSQL ------------------------------------------------------------------------------


def test_control_characters_in_the_path_cannot_forge_log_lines(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    forged = '127.0.0.1 "POST /batch-metrics" 201 in=1 out=1 1.0ms id=forged'
    with caplog.at_level(logging.INFO, logger="batch_metrics.access"):
        with socket.create_connection(("127.0.0.1", port_of(live.url))) as client:
            path = "/health%0a" + forged.replace(" ", "%20").replace('"', "%22") + "%0d%1b[2J"
            client.sendall(raw_head("GET", path, {"Connection": "close"}))
            assert read_answer(client).startswith(b"HTTP/1.1 404 ")
        deadline = time.monotonic() + 5
        while not [r for r in caplog.records if r.name == "batch_metrics.access"]:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    lines = [record.getMessage() for record in caplog.records if record.name == "batch_metrics.access"]
    assert len(lines) == 1
    assert "\n" not in lines[0] and "\r" not in lines[0] and "\x1b" not in lines[0]
    assert "/health\\x0a127.0.0.1" in lines[0] and "\\x0d\\x1b[2J" in lines[0]


def test_a_nul_in_a_read_filter_is_a_400_on_both_databases(live: Live) -> None:
    for name in ("batch_id", "ecosystem", "since", "until"):
        response = live.get(f"/batch-runs?{name}=a%00b")
        assert (response.status_code, response.text) == (400, f"Bad request: {name} must not contain NUL")


@pytest.mark.postgres
@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_after_a_database_restart_no_request_fails(live: Live, database: str) -> None:
    """Every pooled connection killed by the server (what a restart does): the next requests all succeed."""
    for number in range(4):  # several connections in the pool
        assert live.post(batch(1, batch_id=f"before-{number}")).status_code == 201
    with psycopg.connect(database, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    assert killed and killed[0] >= 1
    assert live.get("/health").status_code == 200
    assert live.post(batch(1, batch_id="after")).status_code == 201
    assert live.get("/batch-runs").status_code == 200
    assert count_rows(database, "batch_runs") == 5


# --- 6. Operators' mistakes ---------------------------------------------------------------------------------


def _serve(argv: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "batch_metrics.cli", "serve", *argv]
    environ = {**os.environ, TOKEN_ENV: "t", **env}
    environ.pop("DATABASE_URL", None)
    return subprocess.run(
        command, capture_output=True, text=True, cwd=cwd, env=environ, timeout=60, check=False
    )


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_a_port_in_use_is_one_line_and_creates_nothing(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _serve(["--port", str(port), "--db", str(tmp_path / "metrics.db")], tmp_path)
    line = _one_line(result)
    assert f"port {port}" in line and "in use" in line and "--port" in line
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_db_path_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "metrics.db"
    line = _one_line(_serve(["--port", "0", "--db", str(missing)], tmp_path))
    assert str(missing) in line and "--db" in line
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.geteuid() != 0:  # root may write anywhere
        line = _one_line(_serve(["--port", "0", "--db", str(locked / "metrics.db")], tmp_path))
        assert "not a writable directory" in line
    assert not missing.parent.exists()


def test_postgresql_without_its_driver_is_one_line(tmp_path: Path) -> None:
    """The `postgres` extra missing: simulated by making psycopg unimportable in the server's process."""
    code = (
        "import sys; sys.modules['psycopg'] = None; sys.modules['psycopg_pool'] = None; "
        "from batch_metrics.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    argv = [sys.executable, "-c", code, "serve", "--port", "0", "--db", "postgresql://u@127.0.0.1:1/x"]
    environ = {**os.environ, TOKEN_ENV: "t"}
    result = subprocess.run(
        argv, capture_output=True, text=True, cwd=tmp_path, env=environ, timeout=60, check=False
    )
    line = _one_line(result)
    assert "pip install 'batch-metrics[server,postgres]'" in line
    assert list(tmp_path.iterdir()) == []


# --- 8. Idempotency answers with the right batch ---------------------------------------------------------


def test_a_redelivery_gets_its_own_batchs_id_not_the_latest(live: Live) -> None:
    first = live.post(batch(1, batch_id="A"), headers={"Idempotency-Key": "key-A"})
    second = live.post(batch(1, batch_id="B"), headers={"Idempotency-Key": "key-B"})
    again = live.post(batch(1, batch_id="A"), headers={"Idempotency-Key": "key-A"})
    assert (first.status_code, second.status_code, again.status_code) == (201, 201, 200)
    assert first.json()["batch_run_id"] != second.json()["batch_run_id"]
    assert again.json() == {**first.json(), "duplicate": True}


def test_gzip_bodies_are_stored_whole(live: Live) -> None:
    sent = batch(300)
    response = live.post(gzip.compress(json.dumps(sent).encode()), headers={"Content-Encoding": "gzip"})
    assert response.status_code == 201
    stored = live.get(f"/batch-runs/{response.json()['batch_run_id']}").json()
    assert [row["recipe_name"] for row in stored["results"]] == [
        row["recipe_name"] for row in sent["results"]
    ]


def test_serve_lists_its_limits_in_help() -> None:
    argv = [sys.executable, "-m", "batch_metrics.cli", "serve", "--help"]
    help_text = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=60, check=True).stdout
    for option in ("--max-body-mb", "--max-inflated-mb", "--max-in-flight-mb"):
        assert option in help_text
