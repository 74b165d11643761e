"""The dashboard holds a read token only, in a real browser (Debian's chromium via playwright, as in
test_browser.py): a token that can also upload is refused and forgotten; in the legacy mode (the
single-token options alone) the page says that it holds one; a run says who uploaded it and links its
CI run, and only an http(s) URL ever becomes that link.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from hashlib import sha256
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from batch_metrics.endpoint.storage import open_storage
from batch_metrics.endpoint.storage.uploaders import Uploader
from batch_metrics.models import PAYLOAD_ADAPTER, rfc3339
from tests.endpoint.test_browser import browser, screenshot
from tests.live import ServeProcess, batch, execute_directly, serve_process
from tests.oidc_issuer import REPOSITORY, RUN_ATTEMPT, RUN_ID, SHA, WORKFLOW_REF

__all__ = ["browser"]  # the chromium fixture, shared with test_browser.py

READ = "bmt_" + secrets.token_urlsafe(32)
BOTH = "bmt_" + secrets.token_urlsafe(32)
HOSTILE_NAME = "<b>ci</b>"
RUN_URL = f"https://github.com/{REPOSITORY}/actions/runs/{RUN_ID}/attempts/{RUN_ATTEMPT}"
TOKEN_KEY = "batch-metrics-token"
expect.set_options(timeout=20_000)


def stored_runs(database: Path) -> dict[str, int]:
    """Three runs of today: one sent with OIDC, one with a token, one whose stored URL is a script."""
    storage = open_storage(str(database))
    storage.migrate()
    now = rfc3339(datetime.now(UTC))
    oidc = Uploader("oidc", "octo main", repository=REPOSITORY, workflow=WORKFLOW_REF, run_id=RUN_ID,
                    run_attempt=RUN_ATTEMPT, ref="refs/heads/main", sha=SHA)  # fmt: skip
    ids = {}
    try:
        for name, uploader, url in (
            ("oidc", oidc, RUN_URL),
            ("token", Uploader("token", HOSTILE_NAME), "https://ci.example/builds/7"),
            ("script", Uploader("token", "ops"), "https://ci.example/builds/8"),
        ):
            payload = PAYLOAD_ADAPTER.validate_python(batch(2, batch_id=name, started_at=now, run_url=url))
            ids[name], _ = storage.insert_batch(payload, None, uploader)
    finally:
        storage.close()
    # Past the server's own check, as a row imported from elsewhere could be: the page must not link it.
    execute_directly(
        str(database),
        "UPDATE batch_uploaders SET run_url = 'javascript:document.title=1' "
        "WHERE run_url = 'https://ci.example/builds/8'",
    )
    return ids


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServeProcess, dict[str, int]]]:
    work = tmp_path_factory.mktemp("browser-access")
    ids = stored_runs(work / "metrics.db")
    credentials = work / "credentials.toml"
    credentials.write_text(
        f'[[token]]\nname = "dashboard"\nsha256 = "{sha256(READ.encode()).hexdigest()}"\ncan = ["read"]\n'
        f'[[token]]\nname = "ops"\nsha256 = "{sha256(BOTH.encode()).hexdigest()}"\ncan = ["read", "write"]\n'
        'ecosystems = ["*"]\n'
    )
    with serve_process(
        str(work / "metrics.db"), "", work / "serve.log", "--credentials", str(credentials)
    ) as p:
        yield p, ids


def sign_in(page: Page, token: str) -> None:
    expect(page.locator("#login")).to_be_visible()
    page.fill("#token", token)
    page.click("#login button")


def test_a_token_that_can_upload_is_refused_and_forgotten_and_a_read_token_is_kept(
    browser: Browser, server: tuple[ServeProcess, dict[str, int]]
) -> None:
    page = browser.new_page()
    page.goto(f"{server[0].url}/")
    sign_in(page, BOTH)
    expect(page.locator("#login-why")).to_contain_text("this token can also upload")
    expect(page.locator("#panels")).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0  # the write token is gone from the tab
    sign_in(page, READ)
    expect(page.locator("#panels")).to_be_visible()
    expect(page.locator("#token-warning")).to_be_hidden()
    assert page.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')") == READ


def test_a_run_says_who_uploaded_it_and_links_its_ci_run(
    browser: Browser, server: tuple[ServeProcess, dict[str, int]]
) -> None:
    served, ids = server
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{served.url}/?run={ids['oidc']}")
    sign_in(page, READ)
    expect(page.locator("#run-uploader")).to_have_text(
        f"Uploaded by {REPOSITORY} ({WORKFLOW_REF}, refs/heads/main, {SHA[:12]}) with GitHub OIDC, let in by "
        "the rule “octo main”. CI run ↗"
    )
    assert page.locator("#run-link").get_attribute("href") == RUN_URL
    assert page.locator("#run-link").get_attribute("rel") == "noopener noreferrer"
    screenshot(page, "run-uploader")

    page.goto(f"{served.url}/?run={ids['token']}")
    expect(page.locator("#run-uploader")).to_have_text(f"Uploaded with the token “{HOSTILE_NAME}”. CI run ↗")
    assert page.locator("#run-link").get_attribute("href") == "https://ci.example/builds/7"
    assert page.locator("main b").count() == 0  # a name like markup stays text

    page.goto(f"{served.url}/?run={ids['script']}")
    expect(page.locator("#run-uploader")).to_have_text("Uploaded with the token “ops”.")
    assert page.locator("#drill-body a[href^='javascript']").count() == 0
    assert page.title() == "batch-metrics"


def test_in_the_legacy_mode_the_page_says_it_holds_a_token_that_can_upload(
    browser: Browser, tmp_path: Path
) -> None:
    legacy = secrets.token_urlsafe(24)
    stored_runs(tmp_path / "metrics.db")
    with serve_process(str(tmp_path / "metrics.db"), legacy, tmp_path / "serve.log") as served:
        page = browser.new_page()
        page.goto(f"{served.url}/")
        sign_in(page, legacy)
        expect(page.locator("#panels")).to_be_visible()
        expect(page.locator("#token-warning")).to_be_visible()
        expect(page.locator("#token-warning")).to_contain_text("This token can also upload batches")
