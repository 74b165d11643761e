"""Read and write credentials: the credentials file, what each token may do, the dashboard's read-only
rule, who sent each batch, and reloading without a restart. The real app on loopback, on both databases.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from batch_metrics.endpoint.access import CredentialsFile, source
from batch_metrics.endpoint.access.credentials import CredentialsError, parse_credentials, token_entry
from tests.conftest import ROOT
from tests.live import Storage, batch, count_rows, hypercorn_process, running, serve_process

pytest_plugins = ["tests.live"]

READER = "bmt_" + secrets.token_urlsafe(32)
WRITER = "bmt_" + secrets.token_urlsafe(32)
BOTH = "bmt_" + secrets.token_urlsafe(32)
LEGACY = secrets.token_urlsafe(24)
RUN_URL = "https://github.com/octo-org/octo-repo/actions/runs/77/attempts/1"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def entry(name: str, token: str, can: str, ecosystems: str | None = None) -> str:
    """A [[token]] table written by hand, as an operator would from the docs."""
    lines = f'[[token]]\nname = "{name}"\nsha256 = "{digest(token)}"\ncan = {can}\n'
    return lines + (f"ecosystems = {ecosystems}\n" if ecosystems else "") + "\n"


FILE = (
    entry("dashboard", READER, '["read"]')
    + entry("ci-npm", WRITER, '["write"]', '["npm", "homebrew*"]')
    + entry("ops", BOTH, '["read", "write"]', '["*"]')
)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def upload(url: str, token: str, **fields: Any) -> requests.Response:
    """A batch whose rows are all of the batch's own ecosystem."""
    body = batch(2, **fields)
    for row in body["results"]:
        row["ecosystem"] = body["ecosystem"]
    return requests.post(f"{url}/batch-metrics", json=body, headers=auth(token), timeout=30)


def read(url: str, path: str, token: str) -> requests.Response:
    return requests.get(f"{url}{path}", headers=auth(token), timeout=30)


def auth_log(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(record.getMessage() for record in caplog.records if record.name == "batch_metrics.auth")


@pytest.fixture
def credentials_file(tmp_path: Path) -> Path:
    path = tmp_path / "credentials.toml"
    path.write_text(FILE)
    return path


@pytest.fixture
def endpoint(storage: Storage, credentials_file: Path) -> Iterator[str]:
    with running(storage, [LEGACY], credentials=CredentialsFile(credentials_file, [LEGACY])) as url:
        yield url


def test_a_read_token_reads_but_an_upload_with_it_is_refused_403(
    endpoint: str, database: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="batch_metrics.auth"):
        refused = upload(endpoint, READER)
    assert refused.status_code == 403
    assert refused.text == "Forbidden: token 'dashboard' may read but not upload"
    assert count_rows(database, "batch_runs") == 0
    for path in ("/batch-runs", "/api/dashboard", "/metrics"):
        assert read(endpoint, path, READER).status_code == 200, path
    assert "upload refused (403): token 'dashboard' may read but not upload" in auth_log(caplog)
    assert READER not in caplog.text


def test_a_writer_uploads_its_ecosystems_and_a_403_names_any_other(
    endpoint: str, database: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert upload(endpoint, WRITER, ecosystem="npm").status_code == 201
    assert upload(endpoint, WRITER, ecosystem="homebrew-cask", batch_id="b2").status_code == 201  # homebrew*
    with caplog.at_level(logging.INFO, logger="batch_metrics.auth"):
        other = upload(endpoint, WRITER, ecosystem="cargo", batch_id="b3")
        # The batch names npm, but one of its rows writes cargo's numbers: refused as well.
        smuggled = batch(2, ecosystem="npm", batch_id="b4")
        smuggled["results"][1]["ecosystem"] = "cargo"
        hidden = requests.post(f"{endpoint}/batch-metrics", json=smuggled, headers=auth(WRITER), timeout=30)
    for answer in (other, hidden):
        assert answer.status_code == 403
        assert answer.text == (
            "Forbidden: this credential may not write ecosystem 'cargo' (it may write: npm, homebrew*)"
        )
    assert count_rows(database, "batch_runs") == 2
    assert (
        auth_log(caplog).count("upload refused (403): this credential may not write ecosystem 'cargo'") == 2
    )


def test_a_write_only_token_cannot_read(endpoint: str) -> None:
    for path in ("/batch-runs", "/batch-runs/1", "/api/dashboard", "/metrics"):
        answer = read(endpoint, path, WRITER)
        assert (answer.status_code, answer.text) == (403, "Forbidden: this token may upload but not read"), (
            path
        )


def test_the_dashboard_refuses_a_token_that_can_write_once_a_credentials_file_is_in_use(
    endpoint: str,
) -> None:
    for token in (BOTH, LEGACY):
        answer = read(endpoint, "/api/dashboard", token)
        assert answer.status_code == 403
        assert "The dashboard takes a read-only token" in answer.text
        assert read(endpoint, "/batch-runs", token).status_code == 200  # the read API still answers it
    shown = read(endpoint, "/api/dashboard", READER)
    assert shown.status_code == 200 and "X-Token-Can-Write" not in shown.headers


def test_in_the_legacy_mode_the_old_token_still_does_everything_and_the_dashboard_says_it_can_write(
    storage: Storage,
) -> None:
    with running(storage, [LEGACY]) as url:
        assert upload(url, LEGACY, ecosystem="anything").status_code == 201
        shown = read(url, "/api/dashboard", LEGACY)
        assert shown.status_code == 200 and shown.headers["X-Token-Can-Write"] == "true"
        assert read(url, "/batch-runs", LEGACY).json()["runs"][0]["uploader"]["name"] == "legacy token"
        assert upload(url, READER).status_code == 401  # a token of no file means nothing here


def test_each_batch_records_the_token_that_uploaded_it_and_its_run_url(endpoint: str) -> None:
    stored = upload(endpoint, WRITER, ecosystem="npm", run_url=RUN_URL).json()["batch_run_id"]
    legacy = upload(endpoint, LEGACY, batch_id="b2", run_url="javascript:alert(1)").json()["batch_run_id"]
    run = read(endpoint, f"/batch-runs/{stored}", READER).json()
    assert run["uploader"] == {
        "kind": "token", "name": "ci-npm", "repository": None, "workflow": None, "run_id": None,
        "run_attempt": None, "ref": None, "sha": None,
    }  # fmt: skip
    assert run["run_url"] == RUN_URL
    listed = {item["id"]: item for item in read(endpoint, "/batch-runs", READER).json()["runs"]}
    assert listed[stored]["uploader"]["name"] == "ci-npm" and listed[stored]["run_url"] == RUN_URL
    assert listed[legacy]["uploader"]["name"] == "legacy token"
    assert listed[legacy]["run_url"] is None  # only http(s) URLs are kept, so only they become links
    dashboard_run = read(endpoint, f"/api/dashboard/runs/{stored}", READER).json()
    assert dashboard_run["uploader"]["name"] == "ci-npm" and dashboard_run["run_url"] == RUN_URL


def test_neither_credential_shows_the_others_secret(endpoint: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        run_id = upload(endpoint, WRITER, ecosystem="npm", run_url=RUN_URL).json()["batch_run_id"]
        upload(endpoint, READER)  # refused
        read(endpoint, "/batch-runs", WRITER)  # refused
        answers = [
            read(endpoint, path, READER).text
            for path in ("/batch-runs", f"/batch-runs/{run_id}", "/api/dashboard",
                         f"/api/dashboard/runs/{run_id}", "/metrics")
        ]  # fmt: skip
    for secret in (WRITER, BOTH, LEGACY, digest(WRITER), digest(BOTH), digest(LEGACY)):
        assert all(secret not in answer for answer in answers)
    for secret in (READER, WRITER, BOTH, LEGACY, digest(READER), digest(WRITER), digest(BOTH)):
        assert secret not in caplog.text


def test_the_file_is_reloaded_when_it_changes_so_a_token_rotates_without_a_restart(
    storage: Storage,
    credentials_file: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(source, "CHECK_EVERY_SECONDS", 0.0)
    successor = "bmt_" + secrets.token_urlsafe(32)
    with running(storage, [], credentials=CredentialsFile(credentials_file)) as url:
        credentials_file.write_text(FILE + entry("ci-npm-2", successor, '["write"]', '["npm"]'))
        assert upload(url, successor, ecosystem="npm").status_code == 201  # added: both work
        assert upload(url, WRITER, ecosystem="npm", batch_id="b2").status_code == 201
        credentials_file.write_text(entry("ci-npm-2", successor, '["write"]', '["npm"]'))
        assert upload(url, WRITER, ecosystem="npm", batch_id="b3").status_code == 401  # removed
        with caplog.at_level(logging.INFO, logger="batch_metrics.auth"):
            credentials_file.write_text('[[token]]\nname = "half-written')
            assert upload(url, successor, ecosystem="npm", batch_id="b4").status_code == 201  # last good
    assert "credentials not reloaded from" in auth_log(caplog)
    assert "(the file changed): not valid TOML" in auth_log(caplog)
    assert "the last good ones stay in force" in auth_log(caplog)


def test_sighup_makes_a_running_serve_reload_its_credentials(tmp_path: Path, credentials_file: Path) -> None:
    successor = "bmt_" + secrets.token_urlsafe(32)
    log = tmp_path / "serve.log"
    with serve_process(str(tmp_path / "m.db"), "", log, "--credentials", str(credentials_file)) as served:
        assert upload(served.url, successor).status_code == 401
        credentials_file.write_text(FILE + entry("new", successor, '["write"]', '["*"]'))
        served.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while "(SIGHUP)" not in served.output():
            assert time.monotonic() < deadline, served.output()
            time.sleep(0.05)
        assert upload(served.url, successor).status_code == 201
        assert "tokens [dashboard, ci-npm, ops, new]" in served.output()
        assert successor not in served.output() and digest(successor) not in served.output()


def test_serve_with_a_broken_credentials_file_says_what_and_where_and_exits_2(tmp_path: Path) -> None:
    broken = tmp_path / "credentials.toml"
    broken.write_text(entry("ci", WRITER, '["write"]'))  # a writer must name its ecosystems
    env = {key: value for key, value in os.environ.items() if not key.startswith("BATCH_METRICS")}
    served = subprocess.run(
        [sys.executable, "-m", "batch_metrics.cli", "serve", "--port", "0", "--db", str(tmp_path / "m.db"),
         "--credentials", str(broken)],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env=env, check=False,
    )  # fmt: skip
    assert served.returncode == 2
    assert served.stderr.strip().splitlines()[-1] == (
        f"batch-metrics serve: cannot use the credentials file {broken}: [[token]] 'ci': ecosystems is "
        'required for a writer ("*" for every ecosystem)'
    )


OIDC = "[oidc]\nissuer = 'https://i.example'\naudience = 'a'\n"
RULE = OIDC + "[[oidc.rule]]\nname = 'r'\necosystems = ['npm']\n"
NO_OWNER = "[[oidc.rule]] 'r': name the owner without wildcards"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (entry("x", READER, '["read"]').replace(digest(READER), "ab"), "'x': sha256 must be 64 hex"),
        (entry("x", READER, '["read"]').replace("can =", "cna ="), "[[token]] #1: unknown key 'cna'"),
        (entry("x", READER, '["admin"]'), "[[token]] 'x': can must list read, write or both"),
        (entry("x", READER, '["read"]', '["npm"]'), "[[token]] 'x': ecosystems is for writers"),
        (entry("x", READER, '["read"]') + entry("x", WRITER, '["read"]'), "the name 'x' is used twice"),
        (entry("x", READER, '["read"]') + entry("y", READER, '["read"]'), "two entries have the same sha256"),
        (entry("legacy token", READER, '["read"]'), "this name is kept for the tokens given the old way"),
        (OIDC.replace("https", "http"), "issuer must be an https:// URL"),
        (OIDC + "algorithms = ['HS256']", "algorithms may list only"),
        (RULE + "ref = 'refs/heads/main'", NO_OWNER),
        (RULE + "repository = '*/tools'", NO_OWNER),
        (RULE + "repository_owner = 'octo-*'", NO_OWNER),
        (RULE + "repository_owner = 'octo'\nbranch = 'main'", "[[oidc.rule]] #1: unknown key 'branch'"),
        ("[[token]\n", "not valid TOML"),
    ],
    ids=["short-hash", "typo", "unknown-can", "reader-ecosystems", "same-name", "same-hash", "reserved-name",
         "http-issuer", "hs256", "no-owner", "wildcard-owner", "owner-pattern", "unknown-claim", "toml"],
)  # fmt: skip
def test_every_mistake_in_the_file_is_named_without_its_secret(text: str, message: str) -> None:
    with pytest.raises(CredentialsError) as raised:
        parse_credentials(text)
    assert message in str(raised.value)
    assert digest(READER) not in str(raised.value) and digest(WRITER) not in str(raised.value)


def test_a_rule_pinned_to_an_owner_matches_only_that_owners_workflows() -> None:
    parsed = parse_credentials(
        "[oidc]\nissuer = 'https://i.example/'\naudience = 'https://m.example'\n"
        "[[oidc.rule]]\nname = 'main'\nrepository_owner = 'octo-org'\n"
        "ref = ['refs/heads/main', 'refs/tags/v*']\necosystems = ['npm', 'homebrew']\n"
    )
    assert parsed.oidc is not None and parsed.oidc.issuer == "https://i.example"  # the trailing / is dropped
    (rule,) = parsed.rules
    assert rule.allows({"repository_owner": "octo-org", "ref": "refs/heads/main"})
    assert rule.allows({"repository_owner": "octo-org", "ref": "refs/tags/v1.2"})
    assert not rule.allows({"repository_owner": "octo-org-evil", "ref": "refs/heads/main"})
    assert not rule.allows({"repository_owner": "octo-org", "ref": "refs/heads/feature"})
    assert not rule.allows({"ref": "refs/heads/main"})  # a claim the token lacks never matches


def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batch_metrics.cli", *args], input=stdin, capture_output=True, text=True,
        timeout=60, cwd=ROOT, check=False,
    )  # fmt: skip


def test_token_new_prints_the_token_once_and_the_entry_that_accepts_it() -> None:
    made = cli("token", "new", "--name", "tsuku-ci", "--can", "write", "--ecosystems", "npm,homebrew*")
    assert made.returncode == 0, made.stderr
    lines = made.stdout.splitlines()
    token = lines[1]
    assert token.startswith("bmt_") and len(token) > 40 and made.stdout.count(token) == 1
    entry_text = made.stdout.split("on SIGHUP):\n", 1)[1]
    assert entry_text == (
        f'[[token]]\nname = "tsuku-ci"\nsha256 = "{digest(token)}"\ncan = ["write"]\n'
        'ecosystems = ["npm", "homebrew*"]\n'
    )
    (grant,) = (token_entry_grant.grant for token_entry_grant in parse_credentials(entry_text).tokens)
    assert grant.may_write("homebrew-cask") and not grant.may_write("cargo") and not grant.can_read
    assert cli("token", "new", "--name", "x", "--can", "write").returncode == 2  # a writer needs ecosystems


def test_token_hash_reads_an_existing_token_from_stdin_and_never_prints_it() -> None:
    hashed = cli(
        "token", "hash", "--name", "old", "--can", "read,write", "--ecosystems", "*", stdin=LEGACY + "\n"
    )
    assert hashed.returncode == 0, hashed.stderr
    assert LEGACY not in hashed.stdout + hashed.stderr
    assert f'sha256 = "{digest(LEGACY)}"' in hashed.stdout
    assert token_entry("old", LEGACY, ["read", "write"], ["*"]) in hashed.stdout
    assert cli("token", "hash", "--name", "x", "--can", "read").returncode == 2  # nothing on stdin


def test_the_deploy_example_is_a_credentials_file_the_endpoint_takes() -> None:
    example = parse_credentials((ROOT / "deploy" / "credentials.toml").read_text(encoding="utf-8"))
    assert example.oidc is not None and example.oidc.issuer == "https://token.actions.githubusercontent.com"
    assert [rule.grant.name for rule in example.rules] == ["tsukumogami main", "tsuku release batches"]
    main, release = example.rules
    assert main.allows({"repository_owner": "tsukumogami", "ref": "refs/heads/main"})
    assert release.allows({
        "repository": "tsukumogami/tsuku",
        "job_workflow_ref": "tsukumogami/tsuku/.github/workflows/batch.yml@refs/tags/v1.4.0",
    })  # fmt: skip
    assert not release.grant.may_write("npm") and main.grant.may_write("npm")


def test_app_from_env_takes_the_credentials_file_from_its_variable(
    database: str, credentials_file: Path, tmp_path: Path
) -> None:
    """Any ASGI server: `$BATCH_METRICS_CREDENTIALS` names the file, beside `$BATCH_METRICS_TOKEN`."""
    env = {"DATABASE_URL": database, "BATCH_METRICS_CREDENTIALS": str(credentials_file),
           "BATCH_METRICS_TOKEN": LEGACY}  # fmt: skip
    with hypercorn_process(env, tmp_path / "hypercorn.log") as url:
        statuses = [
            upload(url, WRITER, ecosystem="npm").status_code,
            upload(url, READER).status_code,
            upload(url, LEGACY, batch_id="b2").status_code,
            read(url, "/api/dashboard", LEGACY).status_code,
            read(url, "/api/dashboard", READER).status_code,
        ]
    assert statuses == [201, 403, 201, 403, 200]
