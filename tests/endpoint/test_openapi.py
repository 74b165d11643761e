"""The committed OpenAPI document: generated from the wire models, and the running server keeps to it."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import settings

from batch_metrics.documents import OPENAPI_PATH
from batch_metrics.endpoint.openapi import render_openapi
from batch_metrics.endpoint.storage import open_storage
from tests.conftest import ROOT
from tests.live import running

SCHEMA = schemathesis.openapi.from_path(ROOT / OPENAPI_PATH)


def test_committed_document_matches_the_models() -> None:
    committed = (ROOT / OPENAPI_PATH).read_text(encoding="utf-8")
    assert committed == render_openapi(), "openapi.json drifted: run `batch-metrics schema`"


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """One server (SQLite) for every generated case: (base URL, token)."""
    storage = open_storage(str(tmp_path_factory.mktemp("openapi") / "metrics.db"))
    storage.migrate()
    token = secrets.token_urlsafe(24)
    with running(storage, [token]) as url:
        yield url, token
    storage.close()


@SCHEMA.parametrize()
@settings(max_examples=30, deadline=None)
def test_the_running_server_keeps_to_its_document(case: schemathesis.Case, endpoint: tuple[str, str]) -> None:
    """Generated valid and invalid requests: no 5xx, and every answer is documented and conforms."""
    url, token = endpoint
    case.call_and_validate(base_url=url, headers={"Authorization": f"Bearer {token}"})
