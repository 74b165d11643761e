"""The uploader against a real HTTP server on 127.0.0.1 (pytest-httpserver).

`sleep` is injected to record the waits the uploader asks for, so retry tests
run in milliseconds and can check the waits exactly.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from batch_metrics.client.http import endpoint_refusal
from batch_metrics.client.upload import (
    UploadResult,
    batch_url,
    idempotency_key,
    retry_after_seconds,
    upload,
)
from tests.conftest import unused_port

# Deliberately not what `json.dumps` of the parsed value would give: the body must go out untouched.
BODY = b'{"batch_id": "b-1",  "ecosystem":"npm","started_at":"2026-01-01T00:00:00Z","results":[]}\n'
TOKEN = "s3cret-token_value.42"


class Sleeps(list[float]):
    """Records the waits instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


class RealSleeps(Sleeps):
    """Records the waits and really waits, for the tests of the total time budget."""

    def __call__(self, seconds: float) -> None:
        super().__call__(seconds)
        time.sleep(seconds)


class Log(list[str]):
    def __call__(self, line: str) -> None:
        self.append(line)


def send(
    server: HTTPServer, sleeps: Sleeps | None = None, log: Log | None = None, **options: float
) -> UploadResult:
    return upload(
        BODY,
        endpoint=server.url_for("/"),
        token=TOKEN,
        timeout=options.get("timeout", 5.0),
        retries=int(options.get("retries", 3)),
        total_timeout=options.get("total_timeout", 120.0),
        log=log if log is not None else Log(),
        sleep=sleeps if sleeps is not None else Sleeps(),
    )


def test_201_sends_the_exact_body_token_and_idempotency_key(httpserver_ipv4: HTTPServer) -> None:
    httpserver_ipv4.expect_oneshot_request(
        "/batch-metrics",
        method="POST",
        headers={
            "Authorization": f"Bearer {TOKEN}",
            "Content-Type": "application/json",
            "Idempotency-Key": "sha256:" + hashlib.sha256(BODY).hexdigest(),
        },
        data=BODY,
    ).respond_with_json({"batch_run_id": 42}, status=201)
    result = send(httpserver_ipv4)
    assert result == UploadResult("uploaded", 42, 201, 1, "stored as batch run 42")
    httpserver_ipv4.check_assertions()


def test_an_endpoint_already_ending_in_the_route_is_used_as_is(httpserver_ipv4: HTTPServer) -> None:
    httpserver_ipv4.expect_request("/api/batch-metrics", method="POST").respond_with_json(
        {"batch_run_id": 1}, status=201
    )
    result = upload(BODY, endpoint=httpserver_ipv4.url_for("/api/batch-metrics"), token=TOKEN, sleep=Sleeps())
    assert result.status == "uploaded"
    assert [request.path for request, _ in httpserver_ipv4.log] == ["/api/batch-metrics"]


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("https://telemetry.example.dev", "https://telemetry.example.dev/batch-metrics"),
        ("https://telemetry.example.dev/", "https://telemetry.example.dev/batch-metrics"),
        (" https://t.example.dev/v1/ ", "https://t.example.dev/v1/batch-metrics"),
        ("https://t.example.dev/batch-metrics", "https://t.example.dev/batch-metrics"),
        ("https://t.example.dev/batch-metrics/", "https://t.example.dev/batch-metrics"),
    ],
)
def test_batch_url(endpoint: str, url: str) -> None:
    assert batch_url(endpoint) == url


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
def test_client_errors_fail_at_once_with_status_and_body(httpserver_ipv4: HTTPServer, status: int) -> None:
    httpserver_ipv4.expect_request("/batch-metrics").respond_with_data(
        "Bad request: batch_id is required\r\n::warning::injected", status=status
    )
    sleeps = Sleeps()
    result = send(httpserver_ipv4, sleeps)
    assert (result.status, result.http_status, result.attempts) == ("failed", status, 1)
    assert result.message == f"HTTP {status}: Bad request: batch_id is required ::warning::injected"
    assert sleeps == [] and len(httpserver_ipv4.log) == 1


def test_a_long_error_body_is_cut(httpserver_ipv4: HTTPServer) -> None:
    httpserver_ipv4.expect_request("/batch-metrics").respond_with_data("x" * 10_000, status=400)
    result = send(httpserver_ipv4)
    assert result.message == "HTTP 400: " + "x" * 300 + "..."


def test_500_is_retried_with_growing_jittered_backoff_then_given_up(httpserver_ipv4: HTTPServer) -> None:
    httpserver_ipv4.expect_request("/batch-metrics").respond_with_data('{"error":"boom"}', status=500)
    sleeps, log = Sleeps(), Log()
    result = send(httpserver_ipv4, sleeps, log, retries=4)
    assert (result.status, result.http_status, result.attempts) == ("failed", 500, 5)
    assert result.message == 'gave up after 5 attempts: HTTP 500: {"error":"boom"}'
    assert len(httpserver_ipv4.log) == 5 and len(sleeps) == 4
    # Full jitter: each wait is anywhere from 0 up to base * 2**n (1, 2, 4, 8 s).
    assert all(0 <= wait <= 2**n for n, wait in enumerate(sleeps))
    assert [line.split(" (")[0] for line in log] == [f"attempt {n} failed" for n in range(1, 5)]


def test_503_then_201_keeps_the_idempotency_key(httpserver_ipv4: HTTPServer) -> None:
    httpserver_ipv4.expect_ordered_request("/batch-metrics").respond_with_data("busy", status=503)
    httpserver_ipv4.expect_ordered_request("/batch-metrics").respond_with_data("busy", status=502)
    httpserver_ipv4.expect_ordered_request("/batch-metrics").respond_with_json(
        {"batch_run_id": 7}, status=201
    )
    sleeps = Sleeps()
    result = send(httpserver_ipv4, sleeps)
    assert (result.status, result.batch_run_id, result.attempts) == ("uploaded", 7, 3)
    keys = [request.headers["Idempotency-Key"] for request, _ in httpserver_ipv4.log]
    assert keys == [idempotency_key(BODY)] * 3
    assert {request.get_data() for request, _ in httpserver_ipv4.log} == {BODY}
    assert len(sleeps) == 2


def test_429_waits_exactly_what_retry_after_asks(httpserver_ipv4: HTTPServer) -> None:
    httpserver_ipv4.expect_ordered_request("/batch-metrics").respond_with_response(
        Response("slow down", status=429, headers={"Retry-After": "7"})
    )
    httpserver_ipv4.expect_ordered_request("/batch-metrics").respond_with_response(
        Response("still busy", status=503, headers={"Retry-After": "0"})
    )
    httpserver_ipv4.expect_ordered_request("/batch-metrics").respond_with_json(
        {"batch_run_id": 8}, status=201
    )
    sleeps, log = Sleeps(), Log()
    result = send(httpserver_ipv4, sleeps, log)
    assert (result.status, result.attempts) == ("uploaded", 3)
    assert sleeps == [7.0, 0.0]
    assert log[0] == "attempt 1 failed (HTTP 429: slow down); retrying in 7.0s"


def test_429_with_an_http_date_retry_after(httpserver_ipv4: HTTPServer) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    httpserver_ipv4.expect_ordered_request("/batch-metrics").respond_with_response(
        Response("slow down", status=429, headers={"Retry-After": when})
    )
    httpserver_ipv4.expect_ordered_request("/batch-metrics").respond_with_json(
        {"batch_run_id": 9}, status=201
    )
    sleeps = Sleeps()
    assert send(httpserver_ipv4, sleeps).status == "uploaded"
    [wait] = sleeps
    assert 15 < wait <= 20


def test_a_retry_after_past_the_total_time_gives_up_without_waiting(httpserver_ipv4: HTTPServer) -> None:
    httpserver_ipv4.expect_request("/batch-metrics").respond_with_response(
        Response("later", status=429, headers={"Retry-After": "3600"})
    )
    sleeps = Sleeps()
    result = send(httpserver_ipv4, sleeps, total_timeout=60.0)
    assert (result.status, result.attempts, sleeps) == ("failed", 1, [])
    assert "the next try in 3600.0s would pass the 60s total time allowed; HTTP 429: later" in result.message


def test_retries_stop_when_the_total_time_is_spent(httpserver_ipv4: HTTPServer) -> None:
    httpserver_ipv4.expect_request("/batch-metrics").respond_with_response(
        Response("busy", status=503, headers={"Retry-After": "0.3"})
    )
    sleeps = RealSleeps()
    result = send(httpserver_ipv4, sleeps, retries=20, total_timeout=1.0)
    assert result.status == "failed"
    assert "would pass the 1s total time allowed; HTTP 503: busy" in result.message
    assert result.attempts == len(sleeps) + 1 < 21
    assert sum(sleeps) < 1.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("120", 120.0), ("0", 0.0), ("-5", 0.0), ("1.5", 1.5), ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0)],
)
def test_retry_after_values(header: str, seconds: float) -> None:
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC).timestamp()
    assert retry_after_seconds(header, now) == seconds


@pytest.mark.parametrize("header", [None, "", "soon", "Mon, 99 Foo 2015"])
def test_unreadable_retry_after_falls_back_to_backoff(header: str | None) -> None:
    assert retry_after_seconds(header, time.time()) is None


def test_duplicate_answer(httpserver_ipv4: HTTPServer) -> None:
    httpserver_ipv4.expect_request("/batch-metrics").respond_with_json(
        {"batch_run_id": 5, "duplicate": True}, status=200
    )
    result = send(httpserver_ipv4)
    assert result == UploadResult("duplicate", 5, 200, 1, "already stored as batch run 5")


def test_a_success_without_a_run_id(httpserver_ipv4: HTTPServer) -> None:
    httpserver_ipv4.expect_request("/batch-metrics").respond_with_data("Created", status=201)
    result = send(httpserver_ipv4)
    assert result == UploadResult(
        "uploaded", None, 201, 1, "stored as a batch run (the endpoint did not say which)"
    )


def test_409_from_an_endpoint_that_rejects_duplicates(httpserver_ipv4: HTTPServer) -> None:
    httpserver_ipv4.expect_request("/batch-metrics").respond_with_data("Conflict", status=409)
    result = send(httpserver_ipv4)
    assert (result.status, result.batch_run_id, result.http_status, result.attempts) == (
        "duplicate",
        None,
        409,
        1,
    )


def test_connection_refused_is_retried_then_fails() -> None:
    port = unused_port()
    sleeps, log = Sleeps(), Log()
    result = upload(BODY, endpoint=f"http://127.0.0.1:{port}", token=TOKEN, retries=2, sleep=sleeps, log=log)
    assert (result.status, result.http_status, result.attempts) == ("failed", None, 3)
    assert result.message == (
        f"gave up after 3 attempts: ConnectionError: cannot connect to 127.0.0.1:{port}: Connection refused"
    )
    assert len(sleeps) == 2 and len(log) == 2


def test_read_timeout_is_retried_then_fails(httpserver_ipv4: HTTPServer) -> None:
    released = threading.Event()

    def stalled(_request: Request) -> Response:
        released.wait(10)
        return Response('{"batch_run_id": 1}', status=201)

    httpserver_ipv4.expect_request("/batch-metrics").respond_with_handler(stalled)
    result = send(httpserver_ipv4, retries=1, timeout=0.2)
    released.set()
    port = httpserver_ipv4.port
    assert (result.status, result.http_status, result.attempts) == ("failed", None, 2)
    # requests' own read timeout and the attempt's wall-clock deadline fall due together: either may say so.
    assert result.message in (
        f"gave up after 2 attempts: ReadTimeout: 127.0.0.1:{port} sent no response within the read timeout",
        f"gave up after 2 attempts: Timeout: 127.0.0.1:{port} gave no complete answer within 0.2s",
    )
    # Both attempts reached the server; let it answer them before the next test clears its log.
    deadline = time.monotonic() + 10
    while len(httpserver_ipv4.log) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(httpserver_ipv4.log) == 2


def test_plain_http_to_a_remote_host_is_refused_without_sending(
    httpserver_ipv4: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Route plain-http traffic through the test server as a proxy: a request that left the
    # process at all would land in its log (test_upload_limits.py shows that loopback and
    # plain-http requests never take a proxy, and that https to other hosts does).
    monkeypatch.setenv("HTTP_PROXY", httpserver_ipv4.url_for("/").rstrip("/"))
    for name in ("http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    httpserver_ipv4.expect_request("/batch-metrics").respond_with_json({"batch_run_id": 1}, status=201)

    result = upload(BODY, endpoint="http://metrics.example.invalid", token=TOKEN, sleep=Sleeps())
    assert (result.status, result.http_status, result.attempts) == ("failed", None, 0)
    assert result.message == (
        "refusing to send the token over plain http:// to metrics.example.invalid; "
        "use https:// (plain http is allowed only to loopback)"
    )
    assert httpserver_ipv4.log == []


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8787/batch-metrics", "http://127.8.9.10/", "http://[::1]:8787", "http://LocalHost:1"],
)
def test_plain_http_is_allowed_to_loopback(url: str) -> None:
    assert endpoint_refusal(url) is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://10.0.0.1/batch-metrics", "plain http://"),
        ("http://localhost.example.com", "plain http://"),
        ("ftp://example.invalid", "not an http(s) URL"),
        ("telemetry.example.dev", "not an http(s) URL"),
        ("https://user:pw@example.invalid", "must not carry credentials"),
    ],
)
def test_endpoints_that_are_refused(url: str, reason: str) -> None:
    assert reason in (endpoint_refusal(url) or "")


@pytest.mark.parametrize("token", ["two words", "line\nbreak", 'quote"d', "naïve"])
def test_a_token_that_cannot_be_a_bearer_token_is_refused_without_sending(
    httpserver_ipv4: HTTPServer, token: str
) -> None:
    result = upload(BODY, endpoint=httpserver_ipv4.url_for("/"), token=token, sleep=Sleeps())
    assert (result.status, result.attempts) == ("failed", 0)
    assert token not in result.message
    assert httpserver_ipv4.log == []


def test_redirects_are_not_followed_with_the_token(httpserver_ipv4: HTTPServer) -> None:
    httpserver_ipv4.expect_request("/batch-metrics").respond_with_response(
        Response("", status=307, headers={"Location": "https://elsewhere.invalid/steal"})
    )
    result = send(httpserver_ipv4)
    assert (result.status, result.http_status, result.attempts) == ("failed", 307, 1)
    assert "redirect not followed" in result.message
    assert len(httpserver_ipv4.log) == 1


def test_netrc_credentials_never_replace_the_token(
    httpserver_ipv4: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password other-secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    httpserver_ipv4.expect_request("/batch-metrics").respond_with_json({"batch_run_id": 2}, status=201)
    assert send(httpserver_ipv4).status == "uploaded"
    [(request, _)] = httpserver_ipv4.log
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_the_token_never_reaches_messages_or_log_lines(httpserver_ipv4: HTTPServer) -> None:
    # An endpoint that echoes the Authorization header back in its error bodies.
    def echo(request: Request) -> Response:
        return Response(f"bad auth: {request.headers['Authorization']}", status=503)

    httpserver_ipv4.expect_request("/batch-metrics").respond_with_handler(echo)
    log = Log()
    result = send(httpserver_ipv4, Sleeps(), log, retries=2)
    assert result.status == "failed" and len(log) == 2
    assert "bad auth: Bearer ***" in result.message
    assert all(TOKEN not in text for text in [result.message, *log])


def test_idempotency_key_depends_only_on_the_bytes() -> None:
    assert idempotency_key(BODY) == idempotency_key(bytes(bytearray(BODY)))
    assert idempotency_key(BODY) != idempotency_key(BODY.rstrip())
    same_value = json.dumps(json.loads(BODY)).encode()
    assert idempotency_key(same_value) != idempotency_key(BODY)
