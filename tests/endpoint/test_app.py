"""The endpoint end to end: the real server on loopback, real HTTP, real SQLite files and PostgreSQL."""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import requests
from pydantic import ValidationError

from batch_metrics import TOKEN_ENV
from batch_metrics.client.upload import idempotency_key, upload
from batch_metrics.documents import OPENAPI_PATH
from batch_metrics.endpoint.access import TOKEN_FILE_ENV, load_tokens
from batch_metrics.endpoint.storage import PostgresStorage, RunFilter, SQLiteStorage, is_postgres_url
from batch_metrics.endpoint.views.batches import describe_error
from batch_metrics.models import PAYLOAD_ADAPTER
from tests.conftest import ROOT
from tests.live import (
    Live,
    Storage,
    batch,
    count_rows,
    execute_directly,
    hypercorn_process,
    poison_results,
    running,
    serve_process,
)

pytest_plugins = ["tests.live"]

CURL_FORM = "application/x-www-form-urlencoded"


# --- The Worker's own acceptance cases -------------------------------------------------------------


def test_201_with_results_stores_them_all(live: Live) -> None:
    sent = batch(3)
    sent["results"][1].update(result="failed", error_category="build", error_message="boom", extra_field=7)
    response = live.post(sent)
    assert response.status_code == 201
    assert response.headers["Content-Type"].startswith("application/json")
    run_id = response.json()["batch_run_id"]
    # The Worker's answer, and what changed since homebrew's previous run: it has none yet.
    assert response.json()["changes"][0]["previous_run_id"] is None
    assert set(response.json()) == {"batch_run_id", "changes"}
    stored = live.get(f"/batch-runs/{run_id}").json()
    assert stored["batch_id"] == "batch-1"
    assert [(r["recipe_name"], r["result"], r["platform"]) for r in stored["results"]] == [
        ("recipe-0", "passed", "linux-alpine-musl-arm64"),
        ("recipe-1", "failed", "linux-alpine-musl-arm64"),
        ("recipe-2", "passed", "linux-alpine-musl-arm64"),
    ]
    assert stored["results"][1]["error_message"] == "boom"


def test_201_without_results(live: Live) -> None:
    response = live.post(batch(0))
    assert response.status_code == 201
    assert live.get(f"/batch-runs/{response.json()['batch_run_id']}").json()["results"] == []


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}],
    ids=["no-token", "wrong-token", "not-bearer", "empty-token"],
)
def test_401_without_the_right_token(live: Live, headers: dict[str, str]) -> None:
    response = live.session.post(f"{live.url}/batch-metrics", json=batch(), headers=headers, timeout=30)
    assert (response.status_code, response.text) == (401, "Unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert count_rows_of(live) == 0


def test_the_token_without_its_scheme_is_refused(live: Live) -> None:
    response = live.post(batch(), headers={"Authorization": live.token})
    assert response.status_code == 401


def test_401_when_the_server_has_no_token_configured(storage: Storage) -> None:
    with running(storage, []) as url:
        for token in ("", "anything"):
            response = requests.post(f"{url}/batch-metrics", json=batch(), timeout=30,
                                     headers={"Authorization": f"Bearer {token}"})  # fmt: skip
            assert response.status_code == 401


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "Bad request: invalid JSON"),
        (b"", "Bad request: invalid JSON"),
        (b"[1, 2]", "Bad request: the body must be a JSON object"),
        ({"batch_id": None}, "Bad request: batch_id is required"),
        ({"batch_id": ""}, "Bad request: batch_id is required"),
        ({"ecosystem": None}, "Bad request: ecosystem is required"),
        ({"started_at": None}, "Bad request: started_at is required"),
        ({"results": None}, "Bad request: results array is required"),
        ({"results": "nope"}, "Bad request: results array is required"),
        ({"passed": -1}, "Bad request: passed: Input should be greater than or equal to 0"),
        (
            {"total_recipes": 2**40},
            "Bad request: total_recipes: Input should be less than or equal to 2147483647",
        ),
        ({"total_recipes": True}, "Bad request: total_recipes: Input should be a number"),
        ({"success_rate": "1"}, "Bad request: success_rate: Input should be a number"),
    ],
)
def test_400_names_the_field(live: Live, body: bytes | dict[str, object], message: str) -> None:
    sent = body if isinstance(body, bytes) else {key: value for key, value in {**batch(), **body}.items()
                                                 if value is not None}  # fmt: skip
    response = live.post(sent)
    assert (response.status_code, response.text) == (400, message)
    assert response.headers["Content-Type"].startswith("text/plain")


def test_400_names_the_result_and_its_field(live: Live) -> None:
    sent = batch(5)
    del sent["results"][3]["recipe_name"]
    response = live.post(sent)
    assert (response.status_code, response.text) == (400, "Bad request: results[3].recipe_name is required")
    sent["results"][3]["recipe_name"] = "x"
    sent["results"][4]["duration_seconds"] = -1
    assert (
        live.post(sent).text
        == "Bad request: results[4].duration_seconds: Input should be greater than or equal to 0"
    )
    assert count_rows_of(live) == 0


def test_non_finite_numbers_are_refused(live: Live) -> None:
    body = json.dumps(batch(1)).replace('"macos_minutes": 1.5', '"macos_minutes": Infinity').encode()
    response = live.post(body)
    assert (response.status_code, response.text) == (
        400,
        "Bad request: macos_minutes: Input should be a finite number",
    )


def test_describe_error_for_a_body_that_is_not_an_object() -> None:
    with pytest.raises(ValidationError) as caught:
        PAYLOAD_ADAPTER.validate_json(b'"text"')
    assert describe_error(caught.value.errors()[0]) == "the body must be a JSON object"


# --- Accepting everything the Worker accepts -------------------------------------------------------


def test_a_json_body_sent_with_curls_form_content_type_is_accepted(live: Live) -> None:
    response = live.post(json.dumps(batch(1)).encode(), headers={"Content-Type": CURL_FORM})
    assert response.status_code == 201


def test_null_numbers_are_stored_as_zero_and_whole_floats_as_counts(live: Live) -> None:
    sent = {**batch(1), "total_recipes": 1.0, "passed": None, "skipped": 0, "success_rate": None}
    sent.pop("macos_minutes", None)
    response = live.post(json.dumps(sent).encode())
    assert response.status_code == 201
    run = live.get(f"/batch-runs/{response.json()['batch_run_id']}").json()
    numbers = ("total_recipes", "passed", "skipped", "success_rate", "macos_minutes")
    assert [run[key] for key in numbers] == [1, 0, 0, 0.0, 0.0]
    assert isinstance(run["total_recipes"], int)


def test_nul_characters_are_stored_alike_on_both_backends(live: Live) -> None:
    """PostgreSQL text cannot hold NUL: it becomes U+FFFD everywhere; an escaped backslash stays text."""
    sent = batch(2)
    sent["results"][0]["error_message"] = "before\x00after"
    sent["results"][1]["error_message"] = "a literal \\u0000 in a log"
    response = live.post(json.dumps(sent).encode())
    assert response.status_code == 201
    results = live.get(f"/batch-runs/{response.json()['batch_run_id']}").json()["results"]
    assert [r["error_message"] for r in results] == ["before\ufffdafter", "a literal \\u0000 in a log"]


def test_the_projects_uploader_stores_a_batch_end_to_end(live: Live) -> None:
    body = json.dumps(batch(4)).encode()
    first = upload(body, endpoint=live.url, token=live.token, retries=0)
    again = upload(body, endpoint=live.url, token=live.token, retries=0)
    assert (first.status, first.http_status) == ("uploaded", 201)
    assert (again.status, again.http_status, again.batch_run_id) == ("duplicate", 200, first.batch_run_id)
    assert count_rows_of(live) == 1


def test_the_actions_job_uploads_the_shared_fixtures_to_this_server(
    live: Live, fixtures: Path, tmp_path: Path
) -> None:
    """`batch-metrics run` (what the action runs) on real pipeline output, then a replay of its payload."""
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    shutil.copy(fixtures / "tsuku" / "failures" / "batch-2026-02-19T14-31-25Z.jsonl", workspace)
    env = {**os.environ, TOKEN_ENV: live.token, "GITHUB_RUN_ID": "7", "GITHUB_RUN_ATTEMPT": "1"}
    cli = [sys.executable, "-m", "batch_metrics.cli"]
    job = [*cli, "run", "--workspace", str(workspace), "--results", "*.jsonl", "--endpoint", live.url,
           "--ecosystem", "homebrew", "--payload-path", "payload.json", "--no-summary",
           "--fail-on-error"]  # fmt: skip
    replay = [*cli, "upload", str(workspace / "payload.json"), "--endpoint", live.url]
    runs = [subprocess.run(argv, env=env, capture_output=True, text=True, cwd=tmp_path, check=False)
            for argv in (job, replay)]  # fmt: skip
    assert [run.returncode for run in runs] == [0, 0], runs[0].stdout + runs[0].stderr
    assert "duplicate" in runs[1].stdout
    sent = json.loads((workspace / "payload.json").read_text(encoding="utf-8"))
    stored_runs, _ = live.storage.list_runs(RunFilter())
    assert len(stored_runs) == 1, "the replay is a duplicate delivery, not a second run"
    stored = live.storage.get_run(stored_runs[0]["id"])
    assert stored is not None
    assert len(stored["results"]) == len(sent["results"]) > 0
    assert {row["platform"] for row in stored["results"]} == {row["platform"] for row in sent["results"]}
    assert all(live.token not in run.stdout + run.stderr for run in runs)


# --- Idempotency -------------------------------------------------------------------------------------


def test_a_repeated_delivery_returns_the_stored_run(live: Live, database: str) -> None:
    body = json.dumps(batch(3)).encode()
    key = {"Idempotency-Key": idempotency_key(body)}
    first = live.post(body, headers=key)
    again = live.post(body, headers=key)
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json() == {**first.json(), "duplicate": True}  # the same run, compared as it was then
    assert (count_rows(database, "batch_runs"), count_rows(database, "recipe_results")) == (1, 3)


def test_two_keys_for_one_batch_id_are_two_runs(live: Live, database: str) -> None:
    ids = {
        live.post(batch(1), headers={"Idempotency-Key": key}).json()["batch_run_id"] for key in ("a1", "a2")
    }
    assert len(ids) == 2
    assert count_rows(database, "batch_runs") == 2


def test_an_over_long_idempotency_key_is_refused(live: Live) -> None:
    response = live.post(batch(1), headers={"Idempotency-Key": "k" * 256})
    assert (response.status_code, response.text) == (
        400,
        "Bad request: Idempotency-Key is longer than 255 characters",
    )


# --- Body size and encoding --------------------------------------------------------------------------


@pytest.fixture
def small(storage: Storage) -> Iterator[Live]:
    """A server whose body limit is 4 KiB, 64 KiB once inflated."""
    token = secrets.token_urlsafe(16)
    with running(storage, [token], max_body_bytes=4096, max_inflated_bytes=65536) as url:
        yield Live(url, token, storage)


def test_413_for_a_declared_body_over_the_limit(small: Live) -> None:
    response = small.post(json.dumps(batch(100)).encode())
    assert response.status_code == 413
    assert count_rows_of(small) == 0


def test_413_for_a_chunked_body_over_the_limit(small: Live) -> None:
    body = json.dumps(batch(100)).encode()
    response = small.post(iter([body[i : i + 1000] for i in range(0, len(body), 1000)]))
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert response.status_code == 413


def test_a_chunked_body_under_the_limit_is_stored(live: Live) -> None:
    body = json.dumps(batch(20)).encode()
    response = live.post(iter([body[i : i + 100] for i in range(0, len(body), 100)]))
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert response.status_code == 201


def test_gzip_bodies_are_inflated(live: Live) -> None:
    response = live.post(gzip.compress(json.dumps(batch(50)).encode()), headers={"Content-Encoding": "gzip"})
    assert response.status_code == 201
    assert len(live.get(f"/batch-runs/{response.json()['batch_run_id']}").json()["results"]) == 50


def test_a_gzip_bomb_is_refused_without_inflating_it(small: Live) -> None:
    bomb = gzip.compress(b'{"batch_id": "' + b"a" * 3_000_000 + b'"}')
    assert len(bomb) < 4096
    response = small.post(bomb, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert "inflated" in response.text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not gzip at all", "Bad request: invalid gzip body"),
        (gzip.compress(b'{"a": 1}')[:-12], "Bad request: truncated gzip body or data after it"),
        (gzip.compress(b"{}") + b"junk", "Bad request: truncated gzip body or data after it"),
    ],
)
def test_broken_gzip_is_a_400(live: Live, body: bytes, message: str) -> None:
    response = live.post(body, headers={"Content-Encoding": "gzip"})
    assert (response.status_code, response.text) == (400, message)


def test_an_unknown_content_encoding_is_a_415(live: Live) -> None:
    response = live.post(zlib.compress(b"{}"), headers={"Content-Encoding": "br"})
    assert response.status_code == 415


# --- Failures stay atomic and say nothing internal ---------------------------------------------------


def test_a_failing_insert_is_a_generic_500_and_leaves_no_run(
    live: Live, database: str, caplog: pytest.LogCaptureFixture
) -> None:
    live.post(batch(2, batch_id="kept"))
    poison_results(database)
    sent = batch(2000, batch_id="doomed")
    sent["results"][1000]["recipe_name"] = "poison"
    with caplog.at_level(logging.ERROR, logger="batch_metrics.server"):
        response = live.post(sent)
    assert response.status_code == 500
    body = response.json()
    assert body == {"error": "Internal server error", "request_id": response.headers["X-Request-Id"]}
    for secret in ("poison", "INSERT", "recipe_results", "/srv", str(Path(database).parent), "Traceback"):
        assert secret not in response.text
    logged = [record for record in caplog.records if body["request_id"] in record.getMessage()]
    assert logged and "poisoned row" in (logged[0].exc_text or "")
    assert (count_rows(database, "batch_runs"), count_rows(database, "recipe_results")) == (1, 2)


def test_health_and_uploads_are_503_with_a_reason_when_the_database_cannot_be_opened(tmp_path: Path) -> None:
    storage = SQLiteStorage(str(tmp_path / "missing-dir" / "metrics.db"))
    with running(storage, ["t"]) as url:
        health = requests.get(f"{url}/health", timeout=30)
        upload_response = requests.post(f"{url}/batch-metrics", json=batch(), timeout=30,
                                        headers={"Authorization": "Bearer t"})  # fmt: skip
    assert (health.status_code, health.json()) == (
        503, {"status": "unavailable", "reason": "the database does not answer"}
    )  # fmt: skip
    assert (upload_response.status_code, upload_response.headers["Retry-After"]) == (503, "30")
    assert upload_response.text == (
        "Service unavailable: the database does not answer; the batch was not stored, send it again later"
    )


@pytest.mark.postgres
def test_health_is_503_when_postgresql_is_unreachable() -> None:
    # Bound but never listening: connections are refused, and no other process can take the port
    # while the test runs (closing it first left a race under parallel load).
    with socket.socket() as refusing:
        refusing.bind(("127.0.0.1", 0))
        port = refusing.getsockname()[1]
        url = f"postgresql://nobody@127.0.0.1:{port}/none?connect_timeout=1"
        storage = PostgresStorage(url, wait_seconds=1)
        try:
            with running(storage, ["t"]) as server:
                health = requests.get(f"{server}/health", timeout=60)
        finally:
            storage.close()
    assert health.status_code == 503


# --- Health, routing ---------------------------------------------------------------------------------


def test_health_answers_without_a_token(live: Live) -> None:
    response = requests.get(f"{live.url}/health", timeout=30)
    assert (response.status_code, response.json()) == (
        200, {"status": "ok", "rollups_queued": 0, "rollups_set_aside": 0}
    )  # fmt: skip
    head = requests.head(f"{live.url}/health", timeout=30)
    assert (head.status_code, head.content) == (200, b"")


def test_unknown_paths_are_404_and_wrong_methods_405(live: Live) -> None:
    assert live.get("/nope").status_code == 404
    wrong = live.get("/batch-metrics")
    assert (wrong.status_code, wrong.headers["Allow"]) == (405, "POST")
    assert live.session.delete(f"{live.url}/batch-runs", timeout=30).status_code == 405


def test_the_served_openapi_document_is_the_committed_one(live: Live) -> None:
    response = requests.get(f"{live.url}/openapi.json", timeout=30)
    assert response.json() == json.loads((ROOT / OPENAPI_PATH).read_text(encoding="utf-8"))


# --- The read API --------------------------------------------------------------------------------------


def test_the_read_api_filters_and_pages(live: Live) -> None:
    for number, ecosystem in enumerate(["npm", "cargo", "npm", "npm", "cargo"]):
        sent = batch(
            1, batch_id=f"b{number % 2}", ecosystem=ecosystem, started_at=f"2026-03-0{number + 1}T08:00:00Z"
        )
        assert live.post(sent).status_code == 201
    listed = live.get("/batch-runs").json()
    assert [run["started_at"][:10] for run in listed["runs"]] == [f"2026-03-0{n}" for n in (5, 4, 3, 2, 1)]
    assert listed["next_cursor"] is None
    assert {
        run["ecosystem"] for run in live.get("/batch-runs", params={"ecosystem": "cargo"}).json()["runs"]
    } == {"cargo"}
    assert len(live.get("/batch-runs", params={"batch_id": "b0"}).json()["runs"]) == 3
    window = live.get("/batch-runs", params={"since": "2026-03-02", "until": "2026-03-04"}).json()["runs"]
    assert [run["started_at"][:10] for run in window] == ["2026-03-03", "2026-03-02"]
    seen: list[int] = []
    params: dict[str, str] = {"limit": "2"}
    while True:
        page = live.get("/batch-runs", params=params).json()
        seen += [run["id"] for run in page["runs"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == [run["id"] for run in listed["runs"]]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "501"},
        {"limit": "+5"},
        {"cursor": "-1"},
        {"cursor": ""},
        {"ecosytem": "npm"},
    ],
)
def test_the_read_api_refuses_bad_paging(live: Live, params: dict[str, str]) -> None:
    response = live.get("/batch-runs", params=params)
    assert response.status_code == 400
    assert response.text.startswith("Bad request: ")


def test_the_read_api_needs_the_token_and_knows_missing_runs(live: Live) -> None:
    assert live.get("/batch-runs", headers={}).status_code == 401
    assert live.get("/batch-runs/1", headers={"Authorization": "Bearer no"}).status_code == 401
    assert live.get("/batch-runs/999999").status_code == 404


# --- Tokens ----------------------------------------------------------------------------------------------


def test_tokens_come_from_the_environment_and_a_file(tmp_path: Path) -> None:
    token_file = tmp_path / "tokens"
    token_file.write_text("file-old\n\n  file-new  \n", encoding="utf-8")
    env = {TOKEN_ENV: "env-a, env-b\nenv-c"}
    assert load_tokens(str(token_file), env) == ["env-a", "env-b", "env-c", "file-old", "file-new"]
    assert load_tokens(None, {}) == []


def test_every_configured_token_is_accepted_during_a_rotation(storage: Storage) -> None:
    with running(storage, ["old-token", "new-token"]) as url:
        statuses = [
            requests.post(f"{url}/batch-metrics", json=batch(0), timeout=30,
                          headers={"Authorization": f"Bearer {token}"}).status_code
            for token in ("old-token", "new-token", "old-tokenX", "new-toke", "retired")
        ]  # fmt: skip
    assert statuses == [201, 201, 401, 401, 401]


def test_the_access_log_has_one_line_per_request_and_never_the_token(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="batch_metrics.access"):
        created = live.post(batch(1))
        live.get("/batch-runs", params={"limit": "5"})
        live.post(batch(1), headers={"Authorization": f"Bearer {live.token}x"})
    lines = [record.getMessage() for record in caplog.records if record.name == "batch_metrics.access"]
    assert len(lines) == 3
    request_id = created.headers["X-Request-Id"]
    assert re.fullmatch(
        rf'127\.0\.0\.1 "POST /batch-metrics" 201 in=\d+ out=\d+ [\d.]+ms id={request_id}', lines[0]
    )
    assert '"GET /batch-runs" 200' in lines[1]
    assert '"POST /batch-metrics" 401' in lines[2]
    assert all(live.token not in record.getMessage() for record in caplog.records)


# --- Concurrency ------------------------------------------------------------------------------------------


def test_sixteen_concurrent_uploaders_lose_nothing(database: str, storage: Storage) -> None:
    """16 clients against two servers sharing one database (two storages: for SQLite, two lock holders)."""
    second = type(storage)(database)
    uploads_each, rows_each = 5, 200
    statuses: list[int] = []
    try:
        with running(storage, ["t"]) as first_url, running(second, ["t"]) as second_url:
            barrier = threading.Barrier(16)

            def uploader(number: int) -> None:
                url = first_url if number % 2 else second_url
                with requests.Session() as session:
                    barrier.wait()
                    for upload_number in range(uploads_each):
                        body = batch(rows_each, batch_id=f"client-{number}-{upload_number}")
                        response = session.post(f"{url}/batch-metrics", json=body, timeout=120,
                                                headers={"Authorization": "Bearer t"})  # fmt: skip
                        statuses.append(response.status_code)

            clients = [threading.Thread(target=uploader, args=(number,)) for number in range(16)]
            for client in clients:
                client.start()
            for client in clients:
                client.join()
    finally:
        second.close()
    assert statuses == [201] * 16 * uploads_each
    assert count_rows(database, "batch_runs") == 16 * uploads_each
    assert count_rows(database, "recipe_results") == 16 * uploads_each * rows_each


# --- As a process: `batch-metrics serve`, graceful stop, kill -9 mid-insert ---------------------------------


def test_serve_drains_a_request_in_flight_on_sigterm(database: str, tmp_path: Path) -> None:
    token = secrets.token_urlsafe(16)
    body = json.dumps(batch(100)).encode()
    with serve_process(database, token, tmp_path / "serve.log") as served:
        port = int(served.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
            head = (
                f"POST /batch-metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            client.sendall(head.encode() + body[:1000])
            wait_until_read(port)  # the server has the request in hand: it is in flight
            served.process.send_signal(signal.SIGTERM)
            wait_for_log(served.log, "no longer accepting")
            client.sendall(body[1000:])
            answer = read_all(client)
        assert served.process.wait(timeout=30) == 0
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{served.url}/health", timeout=5)
        log = served.output()
    assert answer.startswith(b"HTTP/1.1 201 ")
    assert "stopped" in log
    assert token not in log
    assert count_rows(database, "recipe_results") == 100


def test_a_server_killed_mid_insert_leaves_no_orphan_run(
    database: str, storage: Storage, tmp_path: Path
) -> None:
    """SIGKILL while the batch's transaction is open (a trigger stalls it halfway): nothing is kept."""
    stall_halfway(database)
    token = secrets.token_urlsafe(16)
    sent = batch(20_000, batch_id="killed")
    sent["results"][10_000]["recipe_name"] = "stall"
    with serve_process(database, token, tmp_path / "serve.log") as served:
        poster = threading.Thread(
            target=lambda: post_ignoring_errors(f"{served.url}/batch-metrics", sent, token), daemon=True
        )
        poster.start()
        wait_until_mid_transaction(database)
        served.process.send_signal(signal.SIGKILL)
        served.process.wait(timeout=30)
        poster.join(timeout=30)
    assert (count_rows(database, "batch_runs"), count_rows(database, "recipe_results")) == (0, 0)
    if is_postgres_url(database):
        wait_until_the_orphaned_backend_ends(database)
        assert (count_rows(database, "batch_runs"), count_rows(database, "recipe_results")) == (0, 0)
    if not is_postgres_url(database):
        with sqlite3.connect(database) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    # The same database serves the re-delivery after a restart.
    execute_directly(database, *UNSTALL[is_postgres_url(database)])
    with serve_process(database, token, tmp_path / "again.log") as served:
        response = requests.post(f"{served.url}/batch-metrics", json=sent, timeout=120,
                                 headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert response.status_code == 201
    assert count_rows(database, "recipe_results") == 20_000


def test_app_from_env_serves_under_hypercorn_with_several_workers(database: str, tmp_path: Path) -> None:
    """The documented multi-process deployment: `hypercorn --workers 2 '...:app_from_env()'`."""
    token_file = tmp_path / "tokens"
    token_file.write_text("from-file\n", encoding="utf-8")
    env = {"DATABASE_URL": database, TOKEN_ENV: "from-env", TOKEN_FILE_ENV: str(token_file)}
    with hypercorn_process(env, tmp_path / "hypercorn.log", "--workers", "2") as url:
        statuses = [
            requests.post(f"{url}/batch-metrics", json=batch(1, batch_id=token), timeout=30,
                          headers={"Authorization": f"Bearer {token}"}).status_code
            for token in ("from-env", "from-file", "neither")
        ]  # fmt: skip
    assert statuses == [201, 201, 401]
    assert count_rows(database, "batch_runs") == 2


# --- helpers ---


def count_rows_of(live: Live) -> int:
    runs, _ = live.storage.list_runs(RunFilter(limit=500))
    return len(runs)


STALL = {
    False: [
        "CREATE TABLE stall_work (n INTEGER)",
        "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 2000) "
        "INSERT INTO stall_work SELECT n FROM c",
        "CREATE TRIGGER stall AFTER INSERT ON recipe_results WHEN NEW.recipe_name = 'stall' "
        "BEGIN SELECT count(*) FROM stall_work a, stall_work b, stall_work c; END",
    ],
    True: [
        "CREATE FUNCTION stall() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.recipe_name = 'stall' THEN PERFORM pg_sleep(3); END IF; RETURN NEW; END $$",
        "CREATE TRIGGER stall BEFORE INSERT ON recipe_results FOR EACH ROW EXECUTE FUNCTION stall()",
    ],
}
UNSTALL = {False: ["DROP TRIGGER stall"], True: ["DROP TRIGGER stall ON recipe_results"]}


def stall_halfway(database: str) -> None:
    """A trigger that stalls the insert of the row named `stall`.

    SQLite: endless busy work inside the server process. PostgreSQL: a 3 s sleep in the server's
    backend, after which it reads on, finds its client gone and rolls the transaction back.
    """
    execute_directly(database, *STALL[is_postgres_url(database)])


def wait_until_the_orphaned_backend_ends(database: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    with psycopg.connect(database, autocommit=True) as db:
        while db.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'COPY %'"
        ).fetchone() != (0,):
            assert time.monotonic() < deadline, "PostgreSQL kept the killed server's session"
            time.sleep(0.05)


def wait_until_mid_transaction(database: str, timeout: float = 60) -> None:
    """Until the server holds the batch's write transaction open (and the trigger stalls it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_postgres_url(database):
            with psycopg.connect(database, autocommit=True) as db:
                row = db.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event = 'PgSleep'"
                ).fetchone()
            if row and row[0]:
                return
        else:
            probe = sqlite3.connect(database, timeout=0, isolation_level=None)
            try:
                probe.execute("BEGIN IMMEDIATE")
                probe.execute("ROLLBACK")
            except sqlite3.OperationalError as error:
                assert "locked" in str(error)
                return
            finally:
                probe.close()
        time.sleep(0.01)
    raise AssertionError("the server never got into the batch's transaction")


def post_ignoring_errors(url: str, body: dict[str, object], token: str) -> None:
    with contextlib.suppress(requests.ConnectionError):  # the server is killed mid-request: the point
        requests.post(url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=120)


def wait_for_log(log: Path, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"{text!r} never appeared in {log}"
        time.sleep(0.02)


def wait_until_read(port: int, timeout: float = 30) -> None:
    """Until the server's end of every connection to `port` has an empty receive queue (/proc/net/tcp)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
        # local address is `IP:PORT` in hex; st 01 is ESTABLISHED; tx_queue:rx_queue in hex
        queues = [int(row[4].split(":")[1], 16) for row in rows
                  if int(row[1].split(":")[1], 16) == port and row[3] == "01"]  # fmt: skip
        if queues and not any(queues):
            return
        assert time.monotonic() < deadline, f"the server never read its connection: {queues}"
        time.sleep(0.01)


def read_all(client: socket.socket) -> bytes:
    chunks = []
    while chunk := client.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)
