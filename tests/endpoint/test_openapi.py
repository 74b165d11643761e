"""The committed OpenAPI document: generated from the wire models, and the running server keeps to it."""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import schemathesis
from hypothesis import settings
from hypothesis import strategies as st

from batch_metrics.documents import OPENAPI_PATH
from batch_metrics.endpoint.openapi import render_openapi
from batch_metrics.endpoint.storage import open_storage
from batch_metrics.models import EARLIEST_TIME, rfc3339
from tests.conftest import ROOT
from tests.live import running

SCHEMA = schemathesis.openapi.from_path(ROOT / OPENAPI_PATH)
TOKEN = secrets.token_urlsafe(24)
# A batch time is a `date-time` from 2000 to a day ahead (its description says so; JSON Schema cannot):
# valid cases get one in that window, as they get every other field within its schema.
_NAIVE_NOW = datetime.now(UTC).replace(tzinfo=None)
schemathesis.openapi.format(
    "date-time", st.datetimes(EARLIEST_TIME.replace(tzinfo=None), _NAIVE_NOW).map(rfc3339)
)


@SCHEMA.auth(refresh_interval=None, retry_on=[])
class _Bearer:
    """The token, through schemathesis' own auth: the cases it means to send without one go without."""

    def get(self, case: schemathesis.Case, context: schemathesis.AuthContext) -> str:
        return TOKEN

    def set(self, case: schemathesis.Case, data: str, context: schemathesis.AuthContext) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


def test_committed_document_matches_the_models() -> None:
    committed = (ROOT / OPENAPI_PATH).read_text(encoding="utf-8")
    assert committed == render_openapi(), "openapi.json drifted: run `batch-metrics schema`"


_UPLOADS: Counter[int] = Counter()  # the status of every generated upload


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One server (SQLite) for every generated case: its base URL."""
    storage = open_storage(str(tmp_path_factory.mktemp("openapi") / "metrics.db"))
    storage.migrate()
    with running(storage, [TOKEN]) as url:
        yield url
    storage.close()
    # The auth above reached the server: generated uploads were stored, and some went without a token.
    assert not _UPLOADS or (_UPLOADS[201] and _UPLOADS[401]), _UPLOADS


@SCHEMA.parametrize()
@settings(max_examples=30, deadline=None)
def test_the_running_server_keeps_to_its_document(case: schemathesis.Case, endpoint: str) -> None:
    """Generated valid and invalid requests: no 5xx, and every answer is documented and conforms."""
    response = case.call_and_validate(base_url=endpoint)
    if case.method == "POST":
        _UPLOADS[response.status_code] += 1
