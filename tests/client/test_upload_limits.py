"""The uploader against servers that misbehave on purpose, all real sockets on 127.0.0.1: a server
that trickles its answer, a "proxy" that records who reached it, a plain-http server behind an
https:// URL, an endpoint that refuses gzip.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from batch_metrics.client.upload import GZIP_THRESHOLD, upload
from tests.client.test_upload import TOKEN, Log, Sleeps
from tests.conftest import unused_port

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


class Listener:
    """A loopback TCP server; `serve(connection)` runs for each connection in its own thread."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.received: list[bytes] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(connection,), daemon=True).start()

    def _handle(self, connection: socket.socket) -> None:
        with connection:
            try:
                self.received.append(connection.recv(65536))
                self.serve(connection)
            except OSError:
                pass

    def serve(self, connection: socket.socket) -> None:
        connection.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


class Trickler(Listener):
    """Answers a valid 201, one byte every `interval` seconds: no socket read ever waits long."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        super().__init__()

    def serve(self, connection: socket.socket) -> None:
        answer = b'HTTP/1.1 201 Created\r\nContent-Length: 19\r\n\r\n{"batch_run_id": 1}'
        for byte in answer:
            if self.stop.wait(self.interval):
                return
            connection.sendall(bytes([byte]))


@pytest.fixture
def proxy() -> Iterator[Listener]:
    listener = Listener()
    yield listener
    listener.close()


def large_body(rows: int = 12_000) -> bytes:
    results = [
        {"recipe_name": f"recipe-{i}", "ecosystem": "npm", "result": "failed", "error_message": "x" * 80}
        for i in range(rows)
    ]
    body = json.dumps({"batch_id": "big", "ecosystem": "npm", "started_at": "2026-01-01T00:00:00Z",
                       "results": results}).encode()  # fmt: skip
    assert len(body) > GZIP_THRESHOLD
    return body


# --- proxies -------------------------------------------------------------------------------------


@pytest.mark.parametrize("variable", PROXY_VARIABLES)
def test_loopback_and_plain_http_never_go_through_a_proxy(
    httpserver_ipv4: HTTPServer, proxy: Listener, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    for name in (*PROXY_VARIABLES, "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, f"http://127.0.0.1:{proxy.port}")
    httpserver_ipv4.expect_request("/batch-metrics").respond_with_json({"batch_run_id": 5}, status=201)

    direct = upload(b"{}", endpoint=httpserver_ipv4.url_for("/"), token=TOKEN, retries=0, sleep=Sleeps())
    assert direct.status == "uploaded" and len(httpserver_ipv4.log) == 1
    refused = upload(b"{}", endpoint=f"https://localhost:{unused_port()}", token=TOKEN, retries=0)
    assert "Connection refused" in refused.message
    assert proxy.received == []


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "ALL_PROXY"])
def test_https_to_other_hosts_still_follows_the_proxy(
    proxy: Listener, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    """The control for the test above: the proxy settings are live, and honoured where they belong."""
    for name in (*PROXY_VARIABLES, "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, f"http://127.0.0.1:{proxy.port}")
    result = upload(b"{}", endpoint="https://metrics.example.invalid", token=TOKEN, retries=0)
    assert result.status == "failed"
    assert [data.split(b" ")[:2] for data in proxy.received] == [[b"CONNECT", b"metrics.example.invalid:443"]]
    assert TOKEN.encode() not in b"".join(proxy.received)


# --- wall-clock deadlines ------------------------------------------------------------------------


def test_a_trickling_server_cannot_hold_an_attempt_past_its_timeout() -> None:
    trickler = Trickler(interval=1.5)  # the server: each read waits 1.5s, under the 2s timeout
    try:
        started = time.monotonic()
        result = upload(
            b"{}", endpoint=f"http://127.0.0.1:{trickler.port}", token=TOKEN, timeout=2, retries=0
        )
        elapsed = time.monotonic() - started
    finally:
        trickler.close()
    assert result.status == "failed" and result.attempts == 1
    assert result.message == (
        f"gave up after 1 attempts: Timeout: 127.0.0.1:{trickler.port} gave no complete answer within 2s"
    )
    assert 2 <= elapsed < 3, elapsed


def test_every_attempt_and_the_whole_upload_keep_their_deadlines() -> None:
    trickler = Trickler(interval=0.5)
    sleeps, log = Sleeps(), Log()
    try:
        started = time.monotonic()
        result = upload(
            b"{}",
            endpoint=f"http://127.0.0.1:{trickler.port}",
            token=TOKEN,
            timeout=1,
            retries=5,
            total_timeout=2.5,
            sleep=sleeps,
            log=log,
        )
        elapsed = time.monotonic() - started
    finally:
        trickler.close()
    # Attempts of 1s each (the sleeps are recorded, not slept) until the 2.5s total is spent.
    assert result.status == "failed" and 2 <= result.attempts <= 3
    assert "would pass the 2.5s total time allowed; Timeout: " in result.message, result.message
    assert elapsed < 2.5 + 0.5, elapsed
    assert len(trickler.received) == result.attempts


# --- gzip ----------------------------------------------------------------------------------------


def test_a_large_body_goes_gzip_under_the_key_of_the_uncompressed_bytes(httpserver_ipv4: HTTPServer) -> None:
    body = large_body()
    httpserver_ipv4.expect_request("/batch-metrics").respond_with_json({"batch_run_id": 8}, status=201)
    result = upload(body, endpoint=httpserver_ipv4.url_for("/"), token=TOKEN, sleep=Sleeps())
    assert result.status == "uploaded"
    [(request, _)] = httpserver_ipv4.log
    assert request.headers["Content-Encoding"] == "gzip"
    sent = request.get_data()
    assert gzip.decompress(sent) == body and len(sent) < len(body) / 5
    assert request.headers["Idempotency-Key"] == "sha256:" + hashlib.sha256(body).hexdigest()


def test_a_body_under_the_threshold_goes_as_it_is(httpserver_ipv4: HTTPServer) -> None:
    body = b" " * GZIP_THRESHOLD
    httpserver_ipv4.expect_request("/batch-metrics").respond_with_json({"batch_run_id": 8}, status=201)
    upload(body, endpoint=httpserver_ipv4.url_for("/"), token=TOKEN, sleep=Sleeps())
    [(request, _)] = httpserver_ipv4.log
    assert "Content-Encoding" not in request.headers and request.get_data() == body


def test_415_to_gzip_is_answered_at_once_with_the_same_bytes_uncompressed(
    httpserver_ipv4: HTTPServer,
) -> None:
    body = large_body()
    httpserver_ipv4.expect_ordered_request("/batch-metrics").respond_with_data("gzip? no", status=415)
    httpserver_ipv4.expect_ordered_request("/batch-metrics").respond_with_json(
        {"batch_run_id": 9}, status=201
    )
    sleeps, log = Sleeps(), Log()
    result = upload(
        body, endpoint=httpserver_ipv4.url_for("/"), token=TOKEN, retries=0, sleep=sleeps, log=log
    )
    assert (result.status, result.batch_run_id, result.attempts) == ("uploaded", 9, 2)
    assert sleeps == [] and log == [
        f"the endpoint does not take gzip (HTTP 415); sending the {len(body)} bytes uncompressed"
    ]
    first, second = (request for request, _ in httpserver_ipv4.log)
    assert first.headers["Content-Encoding"] == "gzip" and "Content-Encoding" not in second.headers
    assert second.get_data() == body
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]


def test_415_to_an_uncompressed_body_is_a_plain_client_error(httpserver_ipv4: HTTPServer) -> None:
    httpserver_ipv4.expect_request("/batch-metrics").respond_with_data("no", status=415)
    result = upload(b"{}", endpoint=httpserver_ipv4.url_for("/"), token=TOKEN, sleep=Sleeps())
    assert (result.status, result.attempts, result.message) == ("failed", 1, "HTTP 415: no")


# --- https:// to a plain-http server -------------------------------------------------------------


def test_https_to_a_plain_http_server_says_it_does_not_speak_tls(httpserver_ipv4: HTTPServer) -> None:
    sleeps = Sleeps()
    endpoint = f"https://127.0.0.1:{httpserver_ipv4.port}"
    result = upload(b"{}", endpoint=endpoint, token=TOKEN, timeout=5, sleep=sleeps)
    assert (result.status, result.attempts, sleeps) == ("failed", 1, [])
    assert result.message.startswith(
        f"SSLError: 127.0.0.1:{httpserver_ipv4.port} does not speak TLS: it answered the https:// "
        "handshake in plain text"
    ), result.message


# --- https to loopback: the CA bundle from the environment, still no proxy --------------------------


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HTTPServer, Path]]:
    """pytest-httpserver over TLS with a self-signed certificate for localhost; and that certificate."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = HTTPServer(host="127.0.0.1", port=unused_port(), ssl_context=context)
    server.start()
    yield server, cert
    server.stop()


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"])
def test_https_to_loopback_takes_the_ca_bundle_from_the_environment_and_no_proxy(
    tls_server: tuple[HTTPServer, Path], proxy: Listener, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    server, cert = tls_server
    server.clear()
    for name in (
        *PROXY_VARIABLES,
        "NO_PROXY",
        "no_proxy",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "SSL_CERT_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
    server.expect_request("/batch-metrics").respond_with_json({"batch_run_id": 4}, status=201)
    endpoint = f"https://localhost:{server.port}"

    untrusted = upload(b"{}", endpoint=endpoint, token=TOKEN, retries=0)
    assert untrusted.status == "failed" and "SSLError" in untrusted.message  # the control: no CA, no trust
    monkeypatch.setenv(variable, str(cert))
    trusted = upload(b"{}", endpoint=endpoint, token=TOKEN, retries=0)
    assert (trusted.status, trusted.batch_run_id) == ("uploaded", 4)
    assert proxy.received == []
