"""Keyless uploads from GitHub Actions, end to end against a real issuer on loopback (tests/oidc_issuer.py:
HTTPS with a test CA, discovery, a JWK set, the runner's ID-token endpoint) and the real app on both
databases. Every refusal is a 401 or 403 with one log line that says why and never the token.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from batch_metrics.endpoint.access import CredentialsFile
from batch_metrics.endpoint.access.credentials import parse_credentials
from batch_metrics.endpoint.access.oidc import KeySet, Refused
from tests.conftest import unused_port
from tests.live import Storage, batch, count_rows, running
from tests.oidc_issuer import REPOSITORY, RUN_ATTEMPT, RUN_ID, SHA, WORKFLOW_REF, Issuer
from tests.test_cli import github_layout, run_entrypoint

pytest_plugins = ["tests.live", "tests.oidc_issuer"]

READER = "bmt_" + secrets.token_urlsafe(32)
RUN_URL = f"https://github.com/{REPOSITORY}/actions/runs/{RUN_ID}/attempts/{RUN_ATTEMPT}"


def config(issuer_url: str, ca_file: Path, audience: str, **settings: float) -> str:
    """A credentials file: a read token, the issuer, and one rule for octo-org's main branch."""
    numbers = "".join(
        f"{name} = {value}\n" for name, value in {"fetch_timeout_seconds": 2, **settings}.items()
    )
    return (
        f'[[token]]\nname = "reader"\nsha256 = "{hashlib.sha256(READER.encode()).hexdigest()}"\n'
        'can = ["read"]\n\n'
        f'[oidc]\nissuer = "{issuer_url}"\naudience = "{audience}"\nca_file = "{ca_file}"\n{numbers}\n'
        '[[oidc.rule]]\nname = "octo main"\nrepository_owner = "octo-org"\nref = "refs/heads/main"\n'
        'ecosystems = ["homebrew", "npm"]\n'
    )


@dataclass
class Endpoint:
    url: str
    credentials: CredentialsFile
    issuer: Issuer

    def configure(self, issuer_url: str | None = None, **settings: float) -> None:
        """Rewrite the credentials file (audience: this endpoint's URL) and reload it, as SIGHUP would."""
        self.credentials.path.write_text(
            config(issuer_url or self.issuer.url, self.issuer.ca_file, self.url, **settings)
        )
        assert self.credentials.reload("the test's settings")

    def token(self, **claims: Any) -> str:
        return self.issuer.mint(self.url, **claims)

    def upload(self, token: str, **fields: Any) -> requests.Response:
        body = batch(2, **fields)
        return requests.post(
            f"{self.url}/batch-metrics", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def read(self, path: str, token: str = READER) -> requests.Response:
        return requests.get(f"{self.url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=30)


@pytest.fixture
def endpoint(storage: Storage, issuer: Issuer, tmp_path: Path) -> Iterator[Endpoint]:
    path = tmp_path / "credentials.toml"
    path.write_text(config(issuer.url, issuer.ca_file, "set once the port is known"))
    credentials = CredentialsFile(path)
    with running(storage, [], credentials=credentials) as url:
        made = Endpoint(url, credentials, issuer)
        made.configure()
        yield made


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if "upload refused" in record.getMessage()]


def test_a_token_from_an_allowed_workflow_stores_a_batch_tagged_with_its_run(endpoint: Endpoint) -> None:
    answer = endpoint.upload(endpoint.token(), run_url=RUN_URL)
    assert answer.status_code == 201, answer.text
    run = endpoint.read(f"/batch-runs/{answer.json()['batch_run_id']}").json()
    assert run["uploader"] == {
        "kind": "oidc", "name": "octo main", "repository": REPOSITORY, "workflow": WORKFLOW_REF,
        "run_id": RUN_ID, "run_attempt": RUN_ATTEMPT, "ref": "refs/heads/main", "sha": SHA,
    }  # fmt: skip
    assert run["run_url"] == RUN_URL
    # A run URL that is not this token's run is not kept: a link must lead to the run that sent it.
    other = endpoint.upload(
        endpoint.token(), batch_id="b2", run_url="https://github.com/evil/repo/actions/runs/1"
    )
    assert endpoint.read(f"/batch-runs/{other.json()['batch_run_id']}").json()["run_url"] is None


def assert_refused_401(endpoint: Endpoint, token: str, reason: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="batch_metrics.auth"):
        answer = endpoint.upload(token)
    assert (answer.status_code, answer.text) == (401, "Unauthorized")
    assert answer.headers["WWW-Authenticate"] == 'Bearer realm="batch-metrics"'
    (line,) = refusals(caplog)
    assert "upload refused (401): OIDC token refused: " + reason in line, line
    for part in token.split("."):
        if len(part) > 8:  # the header, the claims and the signature: none is in the log
            assert part not in caplog.text
    assert endpoint.read("/batch-runs").json()["runs"] == []


def test_an_expired_token_is_refused(endpoint: Endpoint, caplog: pytest.LogCaptureFixture) -> None:
    now = int(time.time())
    token = endpoint.token(iat=now - 3600, nbf=now - 3600, exp=now - 600)  # beyond the 60 s leeway
    assert_refused_401(endpoint, token, "expired: exp is in the past", caplog)


def test_a_token_not_yet_valid_is_refused(endpoint: Endpoint, caplog: pytest.LogCaptureFixture) -> None:
    now = int(time.time())
    token = endpoint.token(nbf=now + 600, exp=now + 900)
    assert_refused_401(endpoint, token, "not yet valid: nbf or iat is in the future", caplog)


def test_a_token_issued_in_the_future_is_refused(
    endpoint: Endpoint, caplog: pytest.LogCaptureFixture
) -> None:
    now = int(time.time())
    token = endpoint.token(iat=now + 600, nbf=None, exp=now + 900)
    assert_refused_401(endpoint, token, "not yet valid: nbf or iat is in the future", caplog)


def test_a_token_for_another_audience_is_refused(
    endpoint: Endpoint, caplog: pytest.LogCaptureFixture
) -> None:
    token = endpoint.issuer.mint("https://some-other-service.example")
    assert_refused_401(endpoint, token, f"wrong audience: aud is not {endpoint.url!r}", caplog)


def test_a_token_from_another_issuer_is_refused(endpoint: Endpoint, caplog: pytest.LogCaptureFixture) -> None:
    token = endpoint.token(iss="https://token.actions.githubusercontent.com")
    assert_refused_401(endpoint, token, "wrong issuer: iss is not", caplog)


def test_an_unsigned_alg_none_token_is_refused(endpoint: Endpoint, caplog: pytest.LogCaptureFixture) -> None:
    token = endpoint.issuer.forge(endpoint.url, "none")
    assert_refused_401(
        endpoint, token, "algorithm 'none' is not allowed (the issuer signs with RS256)", caplog
    )


def test_hs256_keyed_with_the_public_key_is_refused(
    endpoint: Endpoint, caplog: pytest.LogCaptureFixture
) -> None:
    token = endpoint.issuer.forge(endpoint.url, "HS256")
    assert_refused_401(endpoint, token, "algorithm 'HS256' is not allowed", caplog)


def test_a_tampered_token_is_refused(endpoint: Endpoint, caplog: pytest.LogCaptureFixture) -> None:
    header, _, signature = endpoint.token().split(".")
    forged_claims = endpoint.token(repository="octo-org/other").split(".")[1]
    assert_refused_401(endpoint, f"{header}.{forged_claims}.{signature}", "bad signature", caplog)


def test_a_token_without_exp_is_refused(endpoint: Endpoint, caplog: pytest.LogCaptureFixture) -> None:
    assert_refused_401(endpoint, endpoint.token(exp=None), "the exp claim is missing", caplog)


def test_an_unknown_kid_is_refused_after_one_refresh(
    endpoint: Endpoint, rsa_keys: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    endpoint.configure(keys_min_refresh_seconds=0)  # the kid is refused however soon it comes
    assert endpoint.upload(endpoint.token()).status_code == 201  # the keys are cached
    fetched = endpoint.issuer.jwks_fetches()
    unpublished = endpoint.issuer.add_key(rsa_keys[1], published=False)
    with caplog.at_level(logging.INFO, logger="batch_metrics.auth"):
        answer = endpoint.upload(endpoint.issuer.mint(endpoint.url, key=unpublished), batch_id="b2")
    assert answer.status_code == 401
    assert endpoint.issuer.jwks_fetches() == fetched + 1  # the unknown kid made it look again, once
    assert (
        "OIDC token refused: unknown key id (kid), also after refreshing the issuer's keys"
        in refusals(caplog)[0]
    )


def test_a_rotated_key_is_found_by_refreshing_on_its_unknown_kid(
    endpoint: Endpoint, rsa_keys: list[Any]
) -> None:
    endpoint.configure(keys_min_refresh_seconds=0)
    assert endpoint.upload(endpoint.token()).status_code == 201
    rotated = endpoint.issuer.add_key(rsa_keys[2])
    answer = endpoint.upload(endpoint.issuer.mint(endpoint.url, key=rotated), batch_id="b2")
    assert answer.status_code == 201, answer.text
    assert endpoint.issuer.jwks_fetches() == 2


def test_forged_key_ids_cause_no_fetch_storm(endpoint: Endpoint) -> None:
    assert endpoint.upload(endpoint.token()).status_code == 201
    for _ in range(20):
        forged = endpoint.token(headers={"kid": secrets.token_hex(8)})
        assert endpoint.upload(forged, batch_id="b2").status_code == 401
    assert endpoint.issuer.jwks_fetches() == 1  # fetched less than a minute ago: no refetch per forged kid


def test_a_valid_token_whose_claims_no_rule_allows_is_403(
    endpoint: Endpoint, caplog: pytest.LogCaptureFixture
) -> None:
    token = endpoint.token(ref="refs/heads/experiment")
    with caplog.at_level(logging.INFO, logger="batch_metrics.auth"):
        answer = endpoint.upload(token)
    assert answer.status_code == 403
    assert answer.text.startswith(
        "Forbidden: no OIDC rule lets this workflow upload "
        f"(repository '{REPOSITORY}', ref 'refs/heads/experiment'"
    )
    assert "upload refused (403): no OIDC rule lets this workflow upload" in refusals(caplog)[0]
    assert token.split(".")[2] not in caplog.text


def test_an_allowed_workflow_cannot_write_an_ecosystem_outside_its_rule(
    endpoint: Endpoint, database: str
) -> None:
    answer = endpoint.upload(endpoint.token(), ecosystem="cargo")
    assert answer.status_code == 403
    assert (
        answer.text
        == "Forbidden: this credential may not write ecosystem 'cargo' (it may write: homebrew, npm)"
    )
    assert count_rows(database, "batch_runs") == 0


def test_an_oidc_token_cannot_read(endpoint: Endpoint) -> None:
    for path in ("/batch-runs", "/api/dashboard", "/metrics"):
        assert endpoint.read(path, endpoint.token()).status_code == 401, path


def test_an_issuer_that_is_down_costs_a_quick_401(
    endpoint: Endpoint, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint.issuer.down = True
    with caplog.at_level(logging.INFO, logger="batch_metrics.auth"):
        assert endpoint.upload(endpoint.token()).status_code == 401
        assert endpoint.upload(endpoint.token()).status_code == 401  # no second fetch within the minute
    assert endpoint.issuer.jwks_fetches() == 0
    lines = refusals(caplog)
    assert all("the issuer's keys cannot be fetched: 127.0.0.1 answered HTTP 503" in line for line in lines)
    assert len(lines) == 2


@pytest.mark.parametrize("how", ["refused", "silent"])
def test_an_issuer_that_does_not_answer_never_hangs_an_upload(
    endpoint: Endpoint, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A port with nothing behind it, and one that accepts connections but never says a word."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = unused_port() if how == "refused" else silent.getsockname()[1]
        endpoint.configure(f"https://127.0.0.1:{port}", fetch_timeout_seconds=1)
        with caplog.at_level(logging.INFO, logger="batch_metrics.auth"):
            answer = endpoint.upload(endpoint.token())  # the test's own timeout is 30 s
    assert answer.status_code == 401
    error = "ConnectionError" if how == "refused" else "Timeout"
    (line,) = refusals(caplog)
    assert "the issuer's keys cannot be fetched: " in line and error in line and "from 127.0.0.1" in line


def test_when_the_issuer_goes_down_the_last_good_keys_stay_in_use(
    endpoint: Endpoint, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint.configure(keys_refresh_seconds=0, keys_min_refresh_seconds=0)  # every upload refreshes
    assert endpoint.upload(endpoint.token()).status_code == 201
    endpoint.issuer.down = True
    with caplog.at_level(logging.INFO, logger="batch_metrics.auth"):
        assert endpoint.upload(endpoint.token(), batch_id="b2").status_code == 201
    assert "HTTP 503 for /.well-known/openid-configuration; keeping the 1 last good keys" in caplog.text


def test_the_last_good_keys_expire(issuer: Issuer) -> None:
    """The key cache's clock, moved by hand: kept through failed refreshes, until keys_max_age_seconds."""
    now = [1000.0]
    settings = parse_credentials(
        config(issuer.url, issuer.ca_file, "aud", keys_refresh_seconds=600, keys_max_age_seconds=3600)
    ).oidc
    assert settings is not None
    keys = KeySet(settings, clock=lambda: now[0])
    kid = issuer.keys[0].kid
    assert keys.key(kid).key_id == kid
    issuer.down = True
    now[0] += 3000  # stale, and the refresh fails: the last good keys serve
    assert keys.key(kid).key_id == kid and keys.fetches == 2
    now[0] += 1000  # past the maximum age
    with pytest.raises(Refused, match="the issuer's last good keys have expired and cannot be refreshed"):
        keys.key(kid)
    issuer.down = False
    now[0] += 60
    assert keys.key(kid).key_id == kid and keys.fetches == 4  # the issuer is back: fresh keys


def test_unknown_key_ids_refresh_the_keys_at_most_once_a_minute(issuer: Issuer) -> None:
    now = [0.0]
    settings = parse_credentials(config(issuer.url, issuer.ca_file, "aud")).oidc
    assert settings is not None and settings.keys_min_refresh_seconds == 60
    keys = KeySet(settings, clock=lambda: now[0])
    keys.key(issuer.keys[0].kid)
    for second in range(1, 60):
        now[0] = second
        with pytest.raises(Refused, match="unknown key id"):
            keys.key(f"forged-{second}")
    assert keys.fetches == issuer.jwks_fetches() == 1
    now[0] = 61
    with pytest.raises(Refused, match="unknown key id"):
        keys.key("forged-again")
    assert keys.fetches == issuer.jwks_fetches() == 2


def test_the_action_with_id_token_write_and_no_secret_stores_a_batch_tagged_with_its_run(
    endpoint: Endpoint, tmp_path: Path
) -> None:
    """The real client, as the runner starts it: no token, the ID-token request variables, the CA."""
    ran = run_entrypoint(
        github_layout(tmp_path),
        {"endpoint": endpoint.url, "results": "results/*", "ecosystem": "homebrew"},
        GITHUB_SERVER_URL="https://github.com",
        GITHUB_REPOSITORY=REPOSITORY,
        GITHUB_RUN_ID=RUN_ID,
        GITHUB_RUN_ATTEMPT=RUN_ATTEMPT,
        ACTIONS_ID_TOKEN_REQUEST_URL=endpoint.issuer.request_url,
        ACTIONS_ID_TOKEN_REQUEST_TOKEN=endpoint.issuer.request_token,
        SSL_CERT_FILE=str(endpoint.issuer.ca_file),
    )
    assert ran.code == 0 and ran.outputs["status"] == "uploaded", ran.stdout + ran.stderr
    run = endpoint.read(f"/batch-runs/{ran.outputs['batch-run-id']}").json()
    assert run["uploader"]["kind"] == "oidc" and run["uploader"]["repository"] == REPOSITORY
    assert run["run_url"] == RUN_URL
    (id_token,) = endpoint.issuer.minted
    # Each secret shows only in the runner's own ::add-mask:: command, before anything else is printed.
    lines = ran.stdout.splitlines()
    for secret in (id_token, endpoint.issuer.request_token):
        (shown,) = [number for number, line in enumerate(lines) if secret in line]
        assert lines[shown] == f"::add-mask::{secret}"
    assert id_token not in ran.stderr and id_token not in ran.summary
    assert "uploading with the job's OIDC ID token" in ran.stdout
