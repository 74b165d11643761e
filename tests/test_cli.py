"""The CLI and `entrypoint.py` as separate processes, the way the action, the image and people run them.

Every run is a real `python entrypoint.py` (or `-m batch_metrics.cli`) with its
own environment, stdin closed, files on disk and HTTP to 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from batch_metrics.documents import render_schema
from tests.client.test_actions import parse_command
from tests.conftest import ROOT, parse_outputs, unused_port, wait_healthy

TOKEN = "cli-tok-3b7e91-never-print-me"
ROWS = [
    {
        "recipe": "jq",
        "platform": "linux-debian-glibc-x86_64",
        "status": "pass",
        "exit_code": 0,
        "attempts": 1,
    },
    {"recipe": "fd", "platform": "darwin-arm64", "status": "fail", "exit_code": 6, "attempts": 2},
    {
        "recipe": "rg",
        "platform": "linux-alpine-musl-arm64",
        "status": "skipped",
        "exit_code": 0,
        "attempts": 0,
    },
]


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str

    @property
    def warnings(self) -> list[str]:
        return [parse_command(line)[2] for line in self.stdout.splitlines() if line.startswith("::warning")]

    def shown(self) -> str:
        """Everything a person could read, minus the one line that tells the runner to mask the token."""
        return (
            self.stdout.replace(f"::add-mask::{TOKEN}", "") + self.stderr + self.summary + str(self.outputs)
        )


@pytest.fixture
def github(tmp_path: Path) -> Path:
    return github_layout(tmp_path)


def github_layout(tmp_path: Path) -> Path:
    """The runner's layout as a Docker action sees it: /github/{workspace,home,file_commands}."""
    for part in ("workspace/results", "home", "file_commands"):
        (tmp_path / "github" / part).mkdir(parents=True)
    (tmp_path / "github/workspace/results/validation-results-all.json").write_text(json.dumps(ROWS))
    return tmp_path / "github"


def run_entrypoint(
    github: Path, inputs: dict[str, str], *, args: tuple[str, ...] = (), seconds: float = 60, **extra: str
) -> Run:
    """Only what the runner hands a Docker action: INPUT_*, GITHUB_* and HOME; no PATH, no TTY."""
    output, summary = github / "file_commands/set_output", github / "file_commands/step_summary"
    output.write_text("")
    summary.write_text("")
    env = {
        "HOME": str(github / "home"),
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(github / "workspace"),
        "GITHUB_OUTPUT": str(output),
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_REPOSITORY": "tsukumogami/tsuku",
        "GITHUB_RUN_ID": "4242",
        "GITHUB_RUN_ATTEMPT": "2",
        **{f"INPUT_{name.upper()}": value for name, value in inputs.items()},
        **extra,
    }
    proc = subprocess.run(
        [sys.executable, str(ROOT / "entrypoint.py"), *args],
        cwd=github / "workspace",
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=seconds,
        check=False,
    )
    return Run(
        proc.returncode, proc.stdout, proc.stderr, parse_outputs(output.read_text()), summary.read_text()
    )


def cli(*args: str, cwd: Path = ROOT, seconds: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m batch_metrics.cli ...` outside Actions: a clean environment plus `env`."""
    return subprocess.run(
        [sys.executable, "-m", "batch_metrics.cli", *args],
        cwd=cwd,
        env={"PATH": os.environ["PATH"], **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=seconds,
        check=False,
    )


# --- the container contract -----------------------------------------------------------------------


def test_runs_exactly_as_the_container_runs_it(github: Path, httpserver_ipv4: HTTPServer) -> None:
    httpserver_ipv4.expect_request("/batch-metrics", method="POST").respond_with_json(
        {"batch_run_id": 31}, status=201
    )
    run = run_entrypoint(
        github,
        {
            "endpoint": httpserver_ipv4.url_for("/"),
            "token": TOKEN,
            "results": "results/*",
            "ecosystem": "npm",
        },
    )
    assert run.code == 0, run.stdout + run.stderr
    assert run.stdout.splitlines()[0] == f"::add-mask::{TOKEN}"
    payload_path = github / "workspace/batch-metrics-payload.json"
    assert run.outputs == {
        "status": "uploaded",
        "batch-run-id": "31",
        "total": "3",
        "passed": "1",
        "failed": "1",
        "skipped": "1",
        "success-rate": "0.5",
        "payload-path": "batch-metrics-payload.json",
        # The Worker's answer says nothing of what changed (tests/test_changes_in_the_action.py: ours does).
        "new-failures": "",
        "fixed": "",
        "changes-path": "",
    }
    [(request, _)] = httpserver_ipv4.log
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.get_data() == payload_path.read_bytes()
    assert (
        request.headers["Idempotency-Key"]
        == "sha256:" + hashlib.sha256(payload_path.read_bytes()).hexdigest()
    )
    assert json.loads(payload_path.read_bytes())["batch_id"] == "tsukumogami/tsuku#4242.2"
    assert "**Upload:** uploaded — stored as batch run 31" in run.summary
    assert TOKEN not in run.shown() + payload_path.read_text()
    assert run.stderr == "" and run.warnings == []
    assert list((github / "home").iterdir()) == []  # nothing written to HOME


@pytest.mark.parametrize("spelling", ["hyphens", "underscores"])
def test_input_names_with_hyphens_and_with_underscores(github: Path, spelling: str) -> None:
    inputs = {
        "results": "results/*",
        "batch-id": "nightly-9",
        "dry-run": "true",
        "payload-path": "out/p.json",
    }
    if spelling == "underscores":  # the composite action maps inputs through `env:` with underscores
        inputs = {name.replace("-", "_"): value for name, value in inputs.items()}
    run = run_entrypoint(github, inputs)
    assert (run.code, run.outputs["status"]) == (0, "dry-run"), run.stdout + run.stderr
    payload = json.loads((github / "workspace/out/p.json").read_bytes())
    assert payload["batch_id"] == "nightly-9"
    assert run.outputs["payload-path"] == "out/p.json"  # relative: valid in the container and on the host


def test_the_payload_file_is_never_collected_as_a_result(github: Path) -> None:
    first = run_entrypoint(github, {"results": "**/*.json", "dry-run": "true"})
    second = run_entrypoint(github, {"results": "**/*.json", "dry-run": "true"})
    assert first.outputs["total"] == second.outputs["total"] == "3"


def test_hostile_result_text_cannot_inject_workflow_commands_or_markup(github: Path) -> None:
    hostile = "x::warning::pwned%0A|c|<script>alert(1)</script>[l](javascript:alert(1))`t`\r\n::error::y"
    rows = [
        {"recipe": hostile, "platform": hostile, "status": "fail", "category": hostile, "message": hostile}
    ]
    (github / "workspace/results/validation-results-all.json").write_text(json.dumps(rows))
    (github / f"workspace/results/bad{hostile[:12]}.json").write_text("[{oops")
    run = run_entrypoint(github, {"results": "results/*", "dry-run": "true", "ecosystem": hostile})
    assert run.code == 0
    commands = [line for line in run.stdout.splitlines() if line.startswith("::")]
    assert [parse_command(line)[0] for line in commands] == ["warning", "warning"]
    assert "input ecosystem is longer than the endpoint takes" in parse_command(commands[0])[2]
    _, properties, _ = parse_command(commands[1])
    assert properties["file"] == f"results/bad{hostile[:12]}.json"
    for raw in ("<script>", "](javascript:", "`t`", "|c|", "\r"):
        assert raw not in run.summary


def test_a_console_that_cannot_encode_the_text_does_not_break_the_run(github: Path) -> None:
    rows = [{"recipe": "naïve—库", "platform": "linux", "status": "fail", "message": "→ ✗"}]
    (github / "workspace/results/validation-results-all.json").write_text(json.dumps(rows))
    (github / "workspace/results/bad—库.json").write_text("{oops")
    run = run_entrypoint(github, {"results": "results/*", "dry-run": "true"}, PYTHONIOENCODING="ascii")
    assert (run.code, run.outputs["status"]) == (0, "dry-run"), run.stderr
    [warning] = [line for line in run.stdout.splitlines() if line.startswith("::warning file=")]
    assert warning.startswith("::warning file=results/bad\\u2014\\u5e93.json,line=1::")
    assert "malformed JSON" in warning
    assert "naïve—库" in run.summary  # files are always UTF-8


# --- exit codes -----------------------------------------------------------------------------------


def respond(server: HTTPServer, released: threading.Event, how: str | int) -> None:
    """`stall`: hold the answer until `released` is set; a number: answer with that status."""

    def stalled(_request: Request) -> Response:
        released.wait(10)
        return Response('{"batch_run_id": 1}', status=201)

    if how == "stall":
        server.expect_request("/batch-metrics").respond_with_handler(stalled)
    else:
        server.expect_request("/batch-metrics").respond_with_data("nope", status=int(how))


# problem -> (inputs, how the server answers or None for not used, text in the warnings, status output)
PROBLEMS: dict[str, tuple[dict[str, str], str | int | None, str, str]] = {
    "no files": (
        {"results": "nothing/*.json", "endpoint": "https://unused.invalid"},
        None,
        "no files match",
        "no-results",
    ),
    "bad file": ({"results": "results/*\nbad.json", "dry-run": "true"}, None, "malformed JSON", "dry-run"),
    "bad input": ({"retries": "many", "dry-run": "true"}, None, "input retries: 'many'", "dry-run"),
    "bad started-at": ({"started-at": "yesterday", "dry-run": "true"}, None, "input started-at:", "dry-run"),
    "no endpoint": ({}, None, "no endpoint given", "failed"),
    "no token": ({"token": "", "endpoint": "https://unused.invalid"}, None, "no token given", "failed"),
    "refused": ({"retries": "0"}, "closed", "ConnectionError: cannot connect", "failed"),
    "plain http": (
        {"endpoint": "http://metrics.example.invalid"},
        None,
        "refusing to send the token",
        "failed",
    ),
    "read timeout": ({"timeout": "0.3", "retries": "0"}, "stall", "Timeout", "failed"),
    "400": ({"retries": "0"}, 400, "HTTP 400: nope", "failed"),
    "401": ({"retries": "0"}, 401, "HTTP 401: nope", "failed"),
    "500": ({"retries": "0"}, 500, "gave up after 1 attempts: HTTP 500: nope", "failed"),
}


@pytest.mark.parametrize("fail_on_error", ["false", "true"])
@pytest.mark.parametrize("problem", sorted(PROBLEMS))
def test_every_problem_exits_0_or_1_with_fail_on_error(
    github: Path, httpserver_ipv4: HTTPServer, problem: str, fail_on_error: str
) -> None:
    server, released = httpserver_ipv4, threading.Event()
    inputs, how, expected, status = PROBLEMS[problem]
    (github / "workspace/bad.json").write_text('[{"recipe": "x", "status": "pass"},\n{oops')
    given = {"results": "results/*", "token": TOKEN, "fail-on-error": fail_on_error}
    if how == "closed":
        given["endpoint"] = f"http://127.0.0.1:{unused_port()}"
    elif how is not None:
        respond(server, released, how)
        given["endpoint"] = server.url_for("/")
    run = run_entrypoint(github, {**given, **inputs})
    released.set()
    if how == "stall":  # let the server answer the held request before the next test clears its log
        deadline = time.monotonic() + 10
        while not server.log and time.monotonic() < deadline:
            time.sleep(0.01)
    assert run.code == (1 if fail_on_error == "true" else 0), run.stdout + run.stderr
    assert any(expected in warning for warning in run.warnings), run.stdout
    assert run.outputs["status"] == status
    assert (github / "workspace/batch-metrics-payload.json").is_file()  # written before any network
    assert "Traceback" not in run.stdout + run.stderr
    assert TOKEN not in run.shown()


@pytest.mark.parametrize("fail_on_error", ["false", "true"])
def test_success_exits_0_even_with_fail_on_error(
    github: Path, httpserver_ipv4: HTTPServer, fail_on_error: str
) -> None:
    httpserver_ipv4.expect_request("/batch-metrics").respond_with_json({"batch_run_id": 2, "duplicate": True})
    run = run_entrypoint(
        github,
        {
            "results": "results/*",
            "endpoint": httpserver_ipv4.url_for("/"),
            "token": TOKEN,
            "fail-on-error": fail_on_error,
            "ecosystem": "npm",
        },
    )
    assert (run.code, run.outputs["status"], run.outputs["batch-run-id"], run.warnings) == (
        0,
        "duplicate",
        "2",
        [],
    )


@pytest.mark.parametrize(("fail_on_error", "code"), [("false", 0), ("true", 1)])
def test_an_unexpected_error_is_one_warning_without_a_traceback(
    github: Path, fail_on_error: str, code: int
) -> None:
    # A directory where $GITHUB_OUTPUT should be: nothing the job handles, so the last-resort catch.
    outputs = str(github / "file_commands")
    inputs = {"results": "results/*", "dry-run": "true", "fail-on-error": fail_on_error, "ecosystem": "npm"}
    run = run_entrypoint(github, inputs, GITHUB_OUTPUT=outputs)
    assert run.code == code
    [warning] = run.warnings
    assert warning.startswith("batch-metrics stopped on an unexpected error: IsADirectoryError: ")
    assert "Traceback" not in run.stdout + run.stderr

    debug = run_entrypoint(github, inputs, RUNNER_DEBUG="1", GITHUB_OUTPUT=outputs)
    assert debug.code == code and "Traceback (most recent call last)" in debug.stderr


# --- replay: `batch-metrics upload` ---------------------------------------------------------------


def test_a_failed_upload_is_replayed_byte_for_byte_with_the_same_key(
    github: Path, httpserver_ipv4: HTTPServer
) -> None:
    run = run_entrypoint(
        github,
        {
            "results": "results/*",
            "endpoint": f"http://127.0.0.1:{unused_port()}",
            "token": TOKEN,
            "retries": "0",
        },
    )
    assert (run.code, run.outputs["status"]) == (0, "failed")
    payload_file = github / "workspace/batch-metrics-payload.json"

    httpserver_ipv4.expect_ordered_request("/batch-metrics").respond_with_json(
        {"batch_run_id": 3}, status=201
    )
    httpserver_ipv4.expect_ordered_request("/batch-metrics").respond_with_json(
        {"batch_run_id": 3, "duplicate": True}
    )
    token_file = github / "token"
    token_file.write_text(TOKEN + "\n")
    replay = (
        "upload",
        str(payload_file),
        "--endpoint",
        httpserver_ipv4.url_for("/"),
        "--token-file",
        str(token_file),
    )
    first, second = cli(*replay), cli(*replay)
    assert (first.returncode, first.stdout) == (0, "uploaded: stored as batch run 3\n")
    assert (second.returncode, second.stdout) == (0, "duplicate: already stored as batch run 3\n")
    body = payload_file.read_bytes()
    assert [request.get_data() for request, _ in httpserver_ipv4.log] == [body, body]
    keys = [request.headers["Idempotency-Key"] for request, _ in httpserver_ipv4.log]
    assert keys == ["sha256:" + hashlib.sha256(body).hexdigest()] * 2
    assert TOKEN not in first.stdout + first.stderr + second.stdout + second.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read {path}: No such file or directory"),
        ("{not json", "{path} is not a batch payload: the document: Invalid JSON"),
        (
            '{"batch_id": "b"}',
            "{path} is not a batch payload: ecosystem: Field required (and 2 more problems)",
        ),
    ],
)
def test_upload_names_the_file_that_is_not_a_payload(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "payload.json"
    if content is not None:
        path.write_text(content)
    args = ("upload", str(path), "--endpoint", "https://unused.invalid")
    quiet, strict = (
        cli(*args, BATCH_METRICS_TOKEN=TOKEN),
        cli(*args, "--fail-on-error", BATCH_METRICS_TOKEN=TOKEN),
    )
    assert (quiet.returncode, strict.returncode) == (0, 1)
    assert quiet.stderr.startswith("warning: " + message.format(path=path)), quiet.stderr


@pytest.mark.parametrize(
    ("kind", "reason"),
    [("fifo", "not a regular file"), ("device", "not a regular file"), ("directory", "Is a directory")],
)
def test_upload_refuses_what_is_not_a_regular_file_without_waiting_on_it(
    tmp_path: Path, kind: str, reason: str
) -> None:
    """A FIFO with no writer would block the read for ever, /dev/zero would fill memory."""
    path = {"fifo": tmp_path / "payload.fifo", "device": Path("/dev/zero"), "directory": tmp_path}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    args = ("upload", str(path), "--endpoint", "https://unused.invalid")
    proc = cli(*args, seconds=20, BATCH_METRICS_TOKEN=TOKEN)
    assert proc.returncode == 0
    assert proc.stderr.startswith(f"warning: cannot read {path}: {reason}"), proc.stderr


def test_upload_without_endpoint_or_token_says_what_is_missing(tmp_path: Path, github: Path) -> None:
    run_entrypoint(github, {"results": "results/*", "dry-run": "true"})
    payload = str(github / "workspace/batch-metrics-payload.json")
    missing = cli("upload", payload, "--fail-on-error")
    assert missing.returncode == 1
    assert "give --endpoint (or $BATCH_METRICS_ENDPOINT) and a token" in missing.stderr
    unreadable = cli(
        "upload", payload, "--token-file", str(tmp_path / "nope"), BATCH_METRICS_ENDPOINT="https://x.invalid"
    )
    assert f"cannot read the token file {tmp_path / 'nope'}: No such file or directory" in unreadable.stderr


# --- `run` outside Actions, the other subcommands, the entrypoint ----------------------------------


def test_run_outside_actions_prints_plain_lines_and_outputs(
    github: Path, httpserver_ipv4: HTTPServer
) -> None:
    httpserver_ipv4.expect_request("/batch-metrics").respond_with_json({"batch_run_id": 12}, status=201)
    workspace = github / "workspace"
    (workspace / "bad.json").write_text("{oops")
    proc = cli(
        "run",
        "--workspace",
        str(workspace),
        "--results",
        "results/*\nbad.json",
        "--endpoint",
        httpserver_ipv4.url_for("/"),
        "--retries",
        "1",
        BATCH_METRICS_TOKEN=TOKEN,
    )
    assert proc.returncode == 0
    assert proc.stdout.splitlines()[0] == "status=uploaded"
    assert "batch-run-id=12" in proc.stdout.splitlines()
    [warning] = [line for line in proc.stderr.splitlines() if line.startswith("warning: bad.json")]
    assert warning.startswith("warning: bad.json:1: ") and "malformed JSON" in warning
    assert "::" not in proc.stdout + proc.stderr and TOKEN not in proc.stdout + proc.stderr


def test_flags_override_inputs_and_the_token_file_is_read(github: Path, httpserver_ipv4: HTTPServer) -> None:
    httpserver_ipv4.expect_request("/batch-metrics").respond_with_json({"batch_run_id": 5}, status=201)
    (github / "token").write_text(f"{TOKEN}\n")
    run = run_entrypoint(
        github,
        {"results": "nothing/*", "dry-run": "false", "batch-id": "from-input"},
        args=(
            "run",
            "--results",
            "results/*",
            "--batch-id",
            "from-flag",
            "--endpoint",
            httpserver_ipv4.url_for("/"),
            "--token-file",
            str(github / "token"),
        ),
    )
    assert (run.code, run.outputs["status"]) == (0, "uploaded"), run.stdout + run.stderr
    [(request, _)] = httpserver_ipv4.log
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert json.loads(request.get_data())["batch_id"] == "from-flag"
    assert TOKEN not in run.shown().replace(f"::add-mask::{TOKEN}", "")


def test_no_results_writes_the_payload_and_sends_nothing(github: Path, httpserver_ipv4: HTTPServer) -> None:
    run = run_entrypoint(
        github,
        {
            "results": "nothing/*",
            "endpoint": httpserver_ipv4.url_for("/"),
            "token": TOKEN,
            "summary": "false",
        },
    )
    assert (run.code, run.outputs["status"], run.outputs["total"]) == (0, "no-results", "0")
    assert json.loads((github / "workspace/batch-metrics-payload.json").read_bytes())["results"] == []
    assert httpserver_ipv4.log == [] and run.summary == ""


def test_run_does_not_load_the_http_client_server_or_database_drivers(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "batch_metrics.cli", "run", "--dry-run",
         "--workspace", str(tmp_path)],
        cwd=ROOT, env={"PATH": os.environ["PATH"]}, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    modules = {
        line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")
    }
    assert "batch_metrics.client.collect" in modules  # the measurement sees our imports
    heavy = {"requests", "urllib3", "batch_metrics.client.upload", "batch_metrics.endpoint", "starlette",
             "hypercorn", "psycopg", "sqlite3"}  # fmt: skip
    assert heavy.isdisjoint(modules)


def test_entrypoint_uses_its_own_directory_from_any_cwd(tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(
        ROOT / "batch_metrics", app / "batch_metrics", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "entrypoint.py", app / "entrypoint.py")
    init = app / "batch_metrics/__init__.py"
    init.write_text(init.read_text().replace('__version__ = "', '__version__ = "copy-'))
    proc = subprocess.run(
        [sys.executable, str(app / "entrypoint.py"), "--version"],
        cwd="/", env={"PATH": os.environ["PATH"]}, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert proc.stdout.startswith("batch-metrics copy-"), proc.stdout + proc.stderr


def test_schema_writes_the_committed_schema(tmp_path: Path) -> None:
    proc = cli("schema", str(tmp_path / "out/schema.json"))
    assert proc.returncode == 0 and proc.stdout.strip() == str(tmp_path / "out/schema.json")
    assert (tmp_path / "out/schema.json").read_text() == render_schema()


def test_migrate_then_serve_then_the_action_uploads_once(tmp_path: Path, github: Path) -> None:
    db = tmp_path / "metrics.db"
    migrated = cli("migrate", "--db", str(db))
    assert migrated.returncode == 0 and migrated.stdout.startswith("applied migrations: 1"), migrated.stderr
    assert cli("migrate", "--db", str(db)).stdout == "the database is up to date\n"

    port = unused_port()
    (tmp_path / "tokens").write_text(f"{TOKEN}\n")
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "entrypoint.py"), "serve", "--port", str(port), "--db", str(db),
         "--token-file", str(tmp_path / "tokens")],
        env={"PATH": os.environ["PATH"]}, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(endpoint, seconds=30, alive=lambda: server.poll() is None)
        run = run_entrypoint(github, {"results": "results/*", "endpoint": endpoint, "token": TOKEN})
        assert (run.code, run.outputs["status"]) == (0, "uploaded"), run.stdout + run.stderr
        replay = cli("upload", str(github / "workspace/batch-metrics-payload.json"), "--endpoint", endpoint,
                     BATCH_METRICS_TOKEN=TOKEN)  # fmt: skip
        assert replay.stdout == (
            f"duplicate: already stored as batch run {run.outputs['batch-run-id']}\n"
            "unknown: its first run, nothing to compare with\n"  # as the endpoint compared it then
        )
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
    assert server.returncode == 0
    assert TOKEN.encode() not in output
