"""A GitHub-Actions-like OIDC issuer on loopback, for the tests: HTTPS with a throwaway CA (trustme),
the discovery document and a JWK set of RSA keys the tests generate, and an ID-token request endpoint
that answers like the runner's `ACTIONS_ID_TOKEN_REQUEST_URL` (bearer request token, `audience`
query parameter, `{"value": "<JWT>"}`). Tokens are signed with PyJWT, RS256 as GitHub signs them;
the forged ones (`alg: none`, HS256 keyed with the public key) are put together by hand.

Use it with `pytest_plugins = ["tests.oidc_issuer"]`: `issuer` is a new issuer per test. The
benchmarks start one with `issuing()`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

JWKS_PATH = "/.well-known/jwks"
DISCOVERY_PATH = "/.well-known/openid-configuration"
REQUEST_PATH = "/_apis/id-token"
REPOSITORY = "octo-org/octo-repo"
RUN_ID = "9876543210"
RUN_ATTEMPT = "2"
SHA = "4f6d0b2a9c1e8d7f3a5b6c4d2e1f0a9b8c7d6e5f"
WORKFLOW_REF = f"{REPOSITORY}/.github/workflows/validate.yml@refs/heads/main"


def claims_of_a_run(issuer: str, audience: str, **overrides: Any) -> dict[str, Any]:
    """The claims GitHub puts in a job's ID token, for a push to main of octo-org/octo-repo."""
    now = int(time.time())
    claims = {
        "iss": issuer, "aud": audience, "iat": now, "nbf": now - 5, "exp": now + 300,
        "jti": secrets.token_hex(8), "sub": f"repo:{REPOSITORY}:ref:refs/heads/main",
        "repository": REPOSITORY, "repository_owner": "octo-org", "repository_id": "74",
        "repository_owner_id": "65", "repository_visibility": "private", "actor": "octocat",
        "job_workflow_ref": WORKFLOW_REF, "workflow": "validate", "event_name": "push",
        "ref": "refs/heads/main", "ref_type": "branch", "sha": SHA, "run_id": RUN_ID, "run_number": "12",
        "run_attempt": RUN_ATTEMPT, "runner_environment": "github-hosted",
    }  # fmt: skip
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class SigningKey:
    kid: str
    private: rsa.RSAPrivateKey
    published: bool = True

    def jwk(self) -> dict[str, Any]:
        public: dict[str, Any] = jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**public, "kid": self.kid, "alg": "RS256", "use": "sig"}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@dataclass
class Issuer:
    server: HTTPServer
    ca_file: Path
    request_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    keys: list[SigningKey] = field(default_factory=list)
    down: bool = False  # discovery and JWKS answer 503
    minted: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server.port}"

    @property
    def request_url(self) -> str:
        """As the runner's ACTIONS_ID_TOKEN_REQUEST_URL, which already carries a query string."""
        return f"{self.url}{REQUEST_PATH}?api-version=2.0"

    def jwks_fetches(self) -> int:
        return sum(request.path == JWKS_PATH for request, _ in self.server.log)

    def add_key(self, private: rsa.RSAPrivateKey, *, published: bool = True) -> SigningKey:
        key = SigningKey(f"key-{len(self.keys) + 1}-{secrets.token_hex(4)}", private, published)
        self.keys.append(key)
        return key

    def mint(self, audience: str, *, key: SigningKey | None = None, headers: dict[str, Any] | None = None,
             **claims: Any) -> str:  # fmt: skip
        """A token signed with `key` (the first published one by default); `claims` override or, as
        None, leave out GitHub's."""
        key = key or next(k for k in self.keys if k.published)
        token = jwt.encode(
            claims_of_a_run(self.url, audience, **claims), key.private, algorithm="RS256",
            headers={"kid": key.kid, **(headers or {})},
        )  # fmt: skip
        self.minted.append(token)
        return token

    def forge(self, audience: str, alg: str) -> str:
        """A token the issuer never signed: `alg: none` (no signature), or HS256 with the published
        public key's PEM as the HMAC secret (the classic key-confusion attack)."""
        key = self.keys[0]
        header = _b64(json.dumps({"alg": alg, "typ": "JWT", "kid": key.kid}).encode())
        payload = _b64(json.dumps(claims_of_a_run(self.url, audience)).encode())
        signing_input = f"{header}.{payload}".encode()
        if alg == "none":
            token = f"{header}.{payload}."
        else:
            signature = hmac.new(key.public_pem(), signing_input, hashlib.sha256).digest()
            token = f"{header}.{payload}.{_b64(signature)}"
        self.minted.append(token)
        return token

    def _discovery(self, request: Request) -> Response:
        if self.down:
            return Response("down", 503)
        document = {"issuer": self.url, "jwks_uri": f"{self.url}{JWKS_PATH}"}
        return Response(json.dumps(document), 200, content_type="application/json")

    def _jwks(self, request: Request) -> Response:
        if self.down:
            return Response("down", 503)
        keys = [key.jwk() for key in self.keys if key.published]
        return Response(json.dumps({"keys": keys}), 200, content_type="application/json")

    def _id_token(self, request: Request) -> Response:
        """The runner's endpoint: the request token as bearer, the audience in the query string."""
        if request.headers.get("Authorization") != f"Bearer {self.request_token}":
            return Response('{"message": "bad request token"}', 401, content_type="application/json")
        audience = request.args.get("audience")
        if request.args.get("api-version") != "2.0" or not audience:
            return Response('{"message": "api-version and audience are required"}', 400)
        return Response(json.dumps({"count": 1, "value": self.mint(audience)}), 200,
                        content_type="application/json")  # fmt: skip


def make_ca(directory: Path) -> tuple[trustme.CA, Path]:
    """A new CA, and its certificate as a PEM file (what SSL_CERT_FILE or `ca_file` names)."""
    ca = trustme.CA()
    path = directory / "test-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return ca, path


@contextmanager
def issuing(ca: trustme.CA, ca_file: Path, key: rsa.RSAPrivateKey) -> Iterator[Issuer]:
    """An issuer on a free loopback port, serving HTTPS with a certificate of `ca`, signing with `key`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context, threaded=True)
    server.start()
    made = Issuer(server, ca_file)
    made.add_key(key)
    server.expect_request(DISCOVERY_PATH).respond_with_handler(made._discovery)
    server.expect_request(JWKS_PATH).respond_with_handler(made._jwks)
    server.expect_request(REQUEST_PATH).respond_with_handler(made._id_token)
    try:
        yield made
    finally:
        server.clear()
        if server.is_running():
            server.stop()


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path]:
    """A CA made for this session."""
    return make_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="session")
def rsa_keys() -> list[rsa.RSAPrivateKey]:
    """Three RSA keys, made once: generating one takes a good part of a second."""
    return [new_key() for _ in range(3)]


@pytest.fixture
def issuer(test_ca: tuple[trustme.CA, Path], rsa_keys: list[rsa.RSAPrivateKey]) -> Iterator[Issuer]:
    with issuing(*test_ca, rsa_keys[0]) as made:
        yield made
