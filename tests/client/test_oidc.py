"""The client's side of keyless uploads: asking the runner for an ID token (a real HTTPS issuer on
loopback, tests/oidc_issuer.py, that answers like ACTIONS_ID_TOKEN_REQUEST_URL), and choosing between
the token and the ID token."""

from __future__ import annotations

import socket
from pathlib import Path

import jwt
import pytest

from batch_metrics.client.actions import read_inputs
from batch_metrics.client.oidc import credential, default_audience, request_id_token
from tests.oidc_issuer import REQUEST_PATH, Issuer

pytest_plugins = ["tests.oidc_issuer"]

ENDPOINT = "https://metrics.example/batch-metrics/"


@pytest.fixture
def runner(issuer: Issuer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The two variables a job with `id-token: write` has; the issuer's CA trusted as the runner's is."""
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):  # they come first: this machine may set them
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(issuer.ca_file))
    return {
        "ACTIONS_ID_TOKEN_REQUEST_URL": issuer.request_url,
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": issuer.request_token,
    }


def requests_to_runner(issuer: Issuer) -> list[tuple[str, str | None]]:
    return [
        (request.args.get("audience", ""), request.headers.get("Authorization"))
        for request, _ in issuer.server.log
        if request.path == REQUEST_PATH
    ]


def test_without_a_token_the_runners_id_token_for_the_endpoint_is_used_and_masked(
    issuer: Issuer, runner: dict[str, str]
) -> None:
    masked: list[str] = []
    given = credential("auto", "", endpoint=ENDPOINT, audience="", env=runner, timeout=10, mask=masked.append)
    assert given.problem is None and given.how == "oidc"
    assert masked == [given.bearer] == issuer.minted
    assert jwt.decode(given.bearer, options={"verify_signature": False})["aud"] == "https://metrics.example"
    assert requests_to_runner(issuer) == [("https://metrics.example", f"Bearer {issuer.request_token}")]


def test_the_audience_input_replaces_the_endpoints_url(issuer: Issuer, runner: dict[str, str]) -> None:
    given = credential(
        "oidc", "", endpoint=ENDPOINT, audience="batch-metrics", env=runner, timeout=10, mask=lambda _: None
    )
    assert given.how == "oidc"
    assert requests_to_runner(issuer) == [("batch-metrics", f"Bearer {issuer.request_token}")]
    assert default_audience("https://metrics.example/") == "https://metrics.example"


def test_a_given_token_wins_under_auto_and_the_runner_is_not_asked(
    issuer: Issuer, runner: dict[str, str]
) -> None:
    given = credential("auto", "s3cret", endpoint=ENDPOINT, audience="", env=runner, timeout=10, mask=print)
    assert (given.bearer, given.how, given.problem) == ("s3cret", "token", None)
    assert requests_to_runner(issuer) == []


@pytest.mark.parametrize(
    ("auth", "token", "offered", "problem"),
    [
        ("token", "", True, "no token given (input token or $BATCH_METRICS_TOKEN)"),
        ("oidc", "", False, "auth is oidc, but the runner offers no ID token: grant the job "
         "`permissions: id-token: write`"),
        ("auto", "", False, "no token given (input token or $BATCH_METRICS_TOKEN), and no ID token offered: "
         "grant the job `permissions: id-token: write`"),
    ],
)  # fmt: skip
def test_what_is_missing_is_said(
    auth: str, token: str, offered: bool, problem: str, runner: dict[str, str]
) -> None:
    env = runner if offered else {}
    given = credential(auth, token, endpoint=ENDPOINT, audience="", env=env, timeout=10, mask=print)
    assert given.bearer == "" and given.problem is not None and given.problem.startswith(problem)


def test_a_runner_that_refuses_says_to_grant_id_token_write(issuer: Issuer, runner: dict[str, str]) -> None:
    token, problem = request_id_token({**runner, "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "wrong"}, "aud", 10)
    assert token == ""
    assert problem == (
        "the runner refused an ID token (HTTP 401); grant the job `permissions: id-token: write` (the runner "
        "then offers an ID token), or give a token"
    )


def test_the_request_token_never_goes_over_plain_http_to_another_host(issuer: Issuer) -> None:
    env = {
        "ACTIONS_ID_TOKEN_REQUEST_URL": "http://runner.example/token",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "t",
    }
    token, problem = request_id_token(env, "aud", 10)
    assert token == "" and problem is not None
    assert problem.startswith("ACTIONS_ID_TOKEN_REQUEST_URL: refusing to send the token over plain http://")


def test_a_runner_that_never_answers_costs_only_the_timeout(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts connections, never says a word
        env = {
            "ACTIONS_ID_TOKEN_REQUEST_URL": f"https://127.0.0.1:{silent.getsockname()[1]}/token?api-version=2.0",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "t",
        }
        token, problem = request_id_token(env, "aud", 0.5)
    assert (token, problem) == ("", "the runner gave no ID token within 0.5s")


def test_an_answer_without_a_jwt_is_no_token(issuer: Issuer, runner: dict[str, str]) -> None:
    issuer.server.clear_all_handlers()
    issuer.server.expect_request(REQUEST_PATH).respond_with_json({"value": "not a jwt <script>"})
    assert request_id_token(runner, "aud", 10) == ("", "the runner's answer holds no ID token")


def test_the_auth_input_takes_three_words() -> None:
    inputs, problems = read_inputs({"INPUT_AUTH": "OIDC", "INPUT_AUDIENCE": " https://m.example "})
    assert (inputs.auth, inputs.audience, problems) == ("oidc", "https://m.example", [])
    inputs, problems = read_inputs({"INPUT_AUTH": "keyless"})
    assert inputs.auth == "auto" and problems == [
        "input auth: 'keyless' is not one of auto, token, oidc; using auto"
    ]
