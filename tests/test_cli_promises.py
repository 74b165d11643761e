"""The action's promises under a new user's mistakes and an attacker's input, `entrypoint.py` driven the
way a runner drives it (INPUT_* with hyphens, GITHUB_OUTPUT, GITHUB_STEP_SUMMARY, no TTY): secrets stay
out of everything shown or sent, the step exits 0 with its payload written, deadlines hold, and a
failed batch waits, with a command that sends it, until it is sent.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import stat
import subprocess
import sys
import time
from pathlib import Path
from xml.sax.saxutils import quoteattr

import pytest
from pytest_httpserver import HTTPServer

from tests.client.test_upload_limits import Trickler
from tests.conftest import ROOT, parse_outputs, unused_port
from tests.test_cli import TOKEN, cli, github_layout, run_entrypoint

HINT = "with the token in $BATCH_METRICS_TOKEN: "


@pytest.fixture
def github(tmp_path: Path) -> Path:
    return github_layout(tmp_path)


# --- secrets --------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [(), ("run",), ("upload", "p.json"), ("serve",)])
@pytest.mark.parametrize(
    "flag",
    [
        ("--token", "tok-SEKRIT-1"),
        ("--token=tok-SEKRIT-1",),
        ("--tok", "tok-SEKRIT-1"),
        ("--token-f=tok-SEKRIT-1",),
    ],
)
def test_a_token_flag_is_refused_without_echoing_its_value(
    command: tuple[str, ...], flag: tuple[str, ...]
) -> None:
    proc = cli(*command, *flag)
    assert proc.returncode == 2
    assert "tok-SEKRIT-1" not in proc.stdout + proc.stderr
    if flag[0].split("=")[0] == "--token":
        assert (
            "--token is not accepted (a flag shows in ps and shell history): pass the token in "
            "$BATCH_METRICS_TOKEN or --token-file" in proc.stderr
        )
    else:  # no prefix matching: neither --tok nor --token-f is taken for --token-file
        assert "error: " in proc.stderr
        if command:
            assert f"unrecognized arguments: {flag[0].split('=')[0]}\n" in proc.stderr


def test_secrets_in_result_text_reach_no_log_summary_or_payload(github: Path) -> None:
    token = "tok_with_under_scores_0042"  # Markdown escaping would turn each `_` into `&#95;`
    leaks = {
        "masked token": f"curl -H 'X: {token}' failed",
        "bearer": "Authorization: Bearer abc.DEF-123_456~ghi rejected",
        "basic": "proxy said: Basic dXNlcjpwYXNzd29yZA== is wrong",
        "url user-info": "fatal: https://x-access-token:s3cr3t-pw@github.com/o/r.git not found",
        "ghp": "token ghp_0123456789abcdefghijABCDEFGHIJ012345 expired",
        "github_pat": "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789 bad",
        "ghs": "ghs_abcdefghijklmnopqrstuvwxyz0123456789 revoked",
    }
    secrets = [
        token,
        "abc.DEF-123_456~ghi",
        "dXNlcjpwYXNzd29yZA==",
        "s3cr3t-pw",
        "x-access-token",
        "ghp_0123456789",
        "github_pat_11ABC",
        "ghs_abcdefghij",
    ]
    cases = "".join(
        f'<testcase classname="leaks" name="{name}"><failure message={quoteattr(message)}/></testcase>'
        for name, message in leaks.items()
    )
    (github / "workspace/results/junit.xml").write_text(f"<testsuite>{cases}</testsuite>")
    (github / "workspace/results/leak.ndjson").write_text(f"not json, and it names {token}\n")
    run = run_entrypoint(
        github,
        {
            "results": "results/*",
            "ecosystem": "npm",
            "endpoint": "https://x.invalid",
            "token": token,
            "dry-run": "true",
        },
    )
    assert run.code == 0 and run.outputs["status"] == "dry-run", run.stdout + run.stderr
    payload = (github / "workspace/batch-metrics-payload.json").read_text()
    shown = run.stdout.replace(f"::add-mask::{token}", "") + run.stderr + run.summary + payload
    for secret in secrets:
        assert secret not in shown, secret
        assert secret.replace("_", "&#95;") not in shown, secret
    messages = [row.get("error_message") for row in json.loads(payload)["results"]]
    assert "Authorization: Bearer *** rejected" in messages
    assert "fatal: https://***@github.com/o/r.git not found" in messages
    assert "curl -H 'X: ***' failed" in messages
    assert "&#42;&#42;&#42;" in run.summary  # `***`, escaped for Markdown


# --- paths and streams ------------------------------------------------------------------------------


def test_a_fifo_as_payload_path_is_left_alone(github: Path) -> None:
    fifo = github / "workspace/payload.fifo"
    os.mkfifo(fifo)
    run = run_entrypoint(
        github,
        {"results": "results/*", "ecosystem": "npm", "payload-path": "payload.fifo", "dry-run": "true"},
    )
    assert (run.code, run.outputs["status"], run.outputs["total"]) == (0, "dry-run", "3")
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert run.outputs["payload-path"] == ""
    assert any(
        "the payload was not written to payload.fifo: " in warning and "not a regular file" in warning
        for warning in run.warnings
    )
    assert [p.name for p in fifo.parent.iterdir() if p.name.startswith(".payload")] == []  # no temp left


def test_dev_null_as_payload_path_stays_the_null_device(github: Path) -> None:
    before = os.stat("/dev/null")
    run = run_entrypoint(
        github, {"results": "results/*", "ecosystem": "npm", "payload-path": "/dev/null", "dry-run": "true"}
    )
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)
    assert run.code == 0 and any("not written to /dev/null" in warning for warning in run.warnings)


def test_a_directory_in_the_way_is_a_warning_and_the_rest_of_the_job_still_runs(github: Path) -> None:
    (github / "workspace/blocker").write_text("a file where the payload's directory should be")
    run = run_entrypoint(
        github,
        {
            "results": "results/*",
            "ecosystem": "npm",
            "payload-path": "blocker/p.json",
            "dry-run": "true",
            "fail-on-error": "true",
        },
    )
    assert (run.code, run.outputs["status"], run.outputs["total"]) == (1, "dry-run", "3")
    assert any(w.startswith("the payload was not written to blocker/p.json: ") for w in run.warnings)


def test_a_missing_workspace_is_a_warning_and_is_not_created(github: Path) -> None:
    missing = github / "no-such-workspace"
    run = run_entrypoint(github, {"results": "results/*", "ecosystem": "npm"}, GITHUB_WORKSPACE=str(missing))
    assert run.code == 0 and run.outputs["status"] == "no-results"
    assert not missing.exists()
    assert any(f"the workspace {missing} is not a directory" in warning for warning in run.warnings)


def run_with_stdout(github: Path, stdout: int, *, actions: bool) -> subprocess.CompletedProcess[bytes]:
    env = {
        "PATH": os.environ["PATH"],
        "INPUT_RESULTS": "results/*",
        "INPUT_ECOSYSTEM": "npm",
        "INPUT_DRY-RUN": "true",
        "GITHUB_WORKSPACE": str(github / "workspace"),
    }
    if actions:
        env |= {"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(github / "file_commands/set_output")}
    return subprocess.run(
        [sys.executable, str(ROOT / "entrypoint.py")],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.PIPE,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("actions", [False, True])
def test_stdout_closed_early_still_exits_0_with_the_payload_written(github: Path, actions: bool) -> None:
    (github / "workspace/results/bad.json").write_text("{oops")  # a warning to print, too
    read_end, write_end = os.pipe()
    os.close(read_end)  # `| head -0`: nobody will ever read
    try:
        proc = run_with_stdout(github, write_end, actions=actions)
    finally:
        os.close(write_end)
    assert proc.returncode == 0, proc.stderr
    assert b"Traceback" not in proc.stderr and b"Exception ignored" not in proc.stderr
    assert json.loads((github / "workspace/batch-metrics-payload.json").read_bytes())["total_recipes"] == 3
    if actions:
        assert parse_outputs((github / "file_commands/set_output").read_text())["status"] == "dry-run"


@pytest.mark.parametrize("actions", [False, True])
def test_stdout_and_stderr_closed_outright_still_exit_0_with_the_payload_written(
    github: Path, actions: bool
) -> None:
    env = {"PATH": os.environ["PATH"], "INPUT_RESULTS": "results/*", "INPUT_ECOSYSTEM": "npm",
           "INPUT_DRY-RUN": "true", "GITHUB_WORKSPACE": str(github / "workspace"),
           "GITHUB_ACTIONS": "true" if actions else "false"}  # fmt: skip
    # `>&- 2>&-`: Python starts with no sys.stdout or sys.stderr at all.
    script = f"exec {shlex.quote(sys.executable)} {shlex.quote(str(ROOT / 'entrypoint.py'))} >&- 2>&-; "
    proc = subprocess.run(["sh", "-c", script], env=env, stdin=subprocess.DEVNULL, timeout=60, check=False)
    assert proc.returncode == 0
    assert (github / "workspace/batch-metrics-payload.json").is_file()


@pytest.mark.parametrize("actions", [False, True])
def test_stdout_on_a_full_device_still_exits_0_with_the_payload_written(github: Path, actions: bool) -> None:
    with open("/dev/full", "wb") as full:
        proc = run_with_stdout(github, full.fileno(), actions=actions)
    assert proc.returncode == 0, proc.stderr
    assert b"Traceback" not in proc.stderr and b"Exception ignored" not in proc.stderr
    assert (github / "workspace/batch-metrics-payload.json").is_file()


# --- inputs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ecosystem", "batch-id"])
def test_a_bad_ecosystem_or_batch_id_is_named_as_itself(github: Path, name: str) -> None:
    run = run_entrypoint(github, {"results": "results/*", "dry-run": "true", name: "bad\udcffvalue"})
    assert (run.code, run.outputs["status"], run.outputs["total"]) == (0, "dry-run", "3")
    assert any(
        warning.startswith(f"input {name}: 'bad\\udcffvalue' is not valid UTF-8 text")
        for warning in run.warnings
    ), run.warnings
    assert not any("started-at" in warning for warning in run.warnings)


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-23:59"])
def test_started_at_out_of_range_is_a_warning(github: Path, value: str) -> None:
    run = run_entrypoint(
        github, {"results": "results/*", "ecosystem": "npm", "dry-run": "true", "started-at": value}
    )
    assert (run.code, run.outputs["status"], run.outputs["total"]) == (0, "dry-run", "3")
    assert run.warnings == [
        f"input started-at: {value!r} is not an RFC 3339 timestamp with a zone, in years 1 to 9999 UTC, "
        "e.g. 2026-02-19T14:31:25Z; using the earliest timestamp in the results"
    ]


def test_run_without_an_ecosystem_says_what_the_batch_is_stored_as(github: Path) -> None:
    run = run_entrypoint(github, {"results": "results/*", "dry-run": "true", "fail-on-error": "true"})
    assert run.code == 1 and run.outputs["status"] == "dry-run"
    assert run.warnings == [
        "input ecosystem is not set, so the batch is stored as 'unknown' (no row names one); "
        "set ecosystem to the one this batch validates"
    ]


# --- a failed batch waits until it is sent -----------------------------------------------------------


def test_a_failed_batch_is_kept_and_the_printed_command_sends_it(
    github: Path, httpserver_ipv4: HTTPServer
) -> None:
    endpoint = httpserver_ipv4.url_for("/").rstrip("/")
    httpserver_ipv4.expect_ordered_request("/batch-metrics").respond_with_data("down", status=503)
    httpserver_ipv4.expect_ordered_request("/batch-metrics").respond_with_data("down", status=503)
    httpserver_ipv4.expect_ordered_request("/batch-metrics").respond_with_json(
        {"batch_run_id": 7}, status=201
    )
    inputs = {
        "results": "results/*",
        "ecosystem": "npm",
        "endpoint": endpoint,
        "token": TOKEN,
        "retries": "0",
    }
    first = run_entrypoint(github, inputs, GITHUB_RUN_ID="100")
    second = run_entrypoint(github, inputs, GITHUB_RUN_ID="101")  # the next run, same folder
    assert (first.outputs["status"], second.outputs["status"]) == ("failed", "failed")

    pending = github / "workspace/batch-metrics-pending"
    kept = sorted(pending.iterdir())
    ids = ("tsukumogami/tsuku#100.2", "tsukumogami/tsuku#101.2")
    digests = [hashlib.sha256(batch_id.encode()).hexdigest()[:8] for batch_id in ids]
    assert [path.name for path in kept] == [
        f"tsukumogami_tsuku_100.2-{digests[0]}.json",
        f"tsukumogami_tsuku_101.2-{digests[1]}.json",
    ]
    [warning] = [w for w in first.warnings if w.startswith("upload failed")]
    assert "The payload is kept in batch-metrics-pending/tsukumogami_tsuku_100.2-" in warning
    command = shlex.split(warning.split(HINT, 1)[1])
    assert command[:2] == ["batch-metrics", "upload"] and str(github) not in warning  # no container path
    assert command[3:] == ["--endpoint", endpoint]

    # As printed, from the workspace, with the token where the hint says.
    sent = cli(*command[1:], cwd=github / "workspace", BATCH_METRICS_TOKEN=TOKEN)
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.startswith("uploaded: stored as batch run 7\n")
    assert not (github / "workspace" / command[2]).exists()  # sent, so no longer kept
    assert len(list(pending.iterdir())) == 1  # the other run's batch still waits
    body = httpserver_ipv4.log[-1][0].get_data()
    assert json.loads(body)["batch_id"] == "tsukumogami/tsuku#100.2"
    assert TOKEN not in first.shown() + second.shown() + sent.stdout + sent.stderr


def test_kept_payloads_are_never_collected_as_results(github: Path) -> None:
    pending = github / "workspace/batch-metrics-pending"
    pending.mkdir()
    (pending / "old.json").write_text(json.dumps([{"recipe": "x", "platform": "linux", "status": "pass"}]))
    run = run_entrypoint(github, {"results": "**/*.json", "ecosystem": "npm", "dry-run": "true"})
    assert run.outputs["total"] == "3", run.warnings


# --- deadlines --------------------------------------------------------------------------------------


def test_a_trickling_endpoint_cannot_hold_the_step(github: Path) -> None:
    trickler = Trickler(interval=1.5)
    try:
        started = time.monotonic()
        run = run_entrypoint(
            github,
            {
                "results": "results/*",
                "ecosystem": "npm",
                "token": TOKEN,
                "endpoint": f"http://127.0.0.1:{trickler.port}",
                "timeout": "2",
                "retries": "0",
            },
        )
        elapsed = time.monotonic() - started
    finally:
        trickler.close()
    assert run.code == 0 and run.outputs["status"] == "failed"
    assert any("gave no complete answer within 2s" in warning for warning in run.warnings), run.warnings
    assert elapsed < 2 + 5, elapsed  # the attempt's 2 s, plus starting Python and collecting


def test_an_https_endpoint_that_is_plain_http_is_said_so_at_once(github: Path) -> None:
    port = unused_port()
    with HTTPServer(host="127.0.0.1", port=port) as plain:
        plain.expect_request("/batch-metrics").respond_with_json({"batch_run_id": 1}, status=201)
        run = run_entrypoint(
            github,
            {
                "results": "results/*",
                "ecosystem": "npm",
                "token": TOKEN,
                "endpoint": f"https://127.0.0.1:{port}",
                "timeout": "5",
            },
        )
    assert run.outputs["status"] == "failed"
    assert any(f"127.0.0.1:{port} does not speak TLS" in warning for warning in run.warnings), run.warnings
    assert not any("retrying" in line for line in run.stdout.splitlines())
