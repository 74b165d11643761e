"""The answers on the page, in a real browser (Debian's chromium, headless): `batch-metrics serve` as its own
process on tests/answers_history.py's history, served with a 200-minute weekly macOS budget. Each answer is
read back where a user looks first (the known regression, the musl-arm64-only failure, flaky recipes by each
definition, the minutes overrun), and screenshots of the page and of the run's drill-down are kept in
`tests/artifacts/`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from hashlib import sha256

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.answers_history import BUDGET, NIGHTS, RUN_URL, seeded_database
from tests.endpoint.test_browser import TOKEN, browser, cells, open_dashboard, readme_screenshot, screenshot
from tests.live import ServeProcess, serve_process

__all__ = ["browser"]  # the fixture, shared with test_browser.py
MUSL = "linux-alpine-musl-arm64"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    work = tmp_path_factory.mktemp("answers")
    database = seeded_database(work / "metrics.db", datetime.now(UTC))
    credentials = work / "credentials.toml"
    credentials.write_text(f'[[token]]\nname = "dashboard"\nsha256 = "{sha256(TOKEN.encode()).hexdigest()}"\n'
                           'can = ["read"]\n')  # fmt: skip
    options = ("--credentials", str(credentials), "--minutes-budget", BUDGET)
    with serve_process(database, "", work / "serve.log", *options) as process:
        yield process


def change_rows(page: Page, ecosystem: str, table: str) -> list[list[str]]:
    found = page.locator(f'#changes-body .changes[data-ecosystem="{ecosystem}"] table.{table} tbody tr')
    return [[cell.strip() for cell in line.locator("td").all_inner_texts()] for line in found.all()]


def test_each_answer_is_where_a_user_looks_first(browser: Browser, server: ServeProcess) -> None:
    page = open_dashboard(browser, f"{server.url}/")
    # What changed since the last run: the regression, what was fixed, what still fails and how long.
    homebrew = page.locator('#changes-body .changes[data-ecosystem="homebrew"]')
    expect(homebrew.locator(".counts")).to_have_text(
        "2 new failures, 2 fixed, 1 still failing, 1 new recipe, 1 gone recipe"
    )
    assert change_rows(page, "homebrew", "new-failures") == [
        ["new-tool", "darwin-arm64", "new_failed (new recipe)"],
        ["ripgrep", "linux-debian-glibc-x86_64", "install_failed / verify_failed"],
    ]
    assert change_rows(page, "homebrew", "fixed") == [
        ["bat", "darwin-arm64", f"{NIGHTS - 1} runs"], ["flaky-net", "linux-debian-glibc-arm64", "1 run"],
    ]  # fmt: skip
    assert change_rows(page, "homebrew", "still-failing") == [["zstd", MUSL, f"{NIGHTS} runs"]]
    # The minutes over the weekly budget, beside it.
    budget = {row[0]: row for row in cells(page, "budget-table")}
    assert budget["macOS"][2] == "200" and budget["macOS"][3].endswith("over budget")
    assert budget["Linux"][3] == "7.4%"  # 370 of 5,000 (6 or 7 nights: it ends last night)
    expect(page.locator("#budget-panel")).to_have_class("overrun")
    # Where: zstd fails only on musl arm64, and passes on glibc.
    header = page.locator("#matrix-table thead td").all_inner_texts()
    matrix = {row[0]: dict(zip(header, row, strict=True)) for row in cells(page, "matrix-table")}
    assert matrix["zstd"][MUSL] == f"{NIGHTS}/{NIGHTS} failed"
    assert matrix["zstd"]["linux-debian-glibc-x86_64"] == f"{NIGHTS}/{NIGHTS} passed"
    assert (
        page.locator("#platform-only-list li")
        .first.inner_text()
        .startswith(f"zstd (homebrew) fails only on {MUSL}; passes on darwin-arm64")
    )
    # Why: by category and subcategory, an example's message and the CI run that produced it.
    reasons = {row[0]: row for row in cells(page, "reasons-table")}
    musl = reasons["install_failed / musl_link"]
    assert musl[1:4] == ["homebrew", str(NIGHTS), str(NIGHTS)]
    assert "ld: cannot find -lzstd (musl)" in musl[6]
    link = page.locator("#reasons-table tbody tr", has_text="musl_link").locator("a.ci-run")
    assert link.get_attribute("href") == RUN_URL.format(night=1000 + NIGHTS - 1)
    # Flaky by each definition, apart.
    assert [row[:3] for row in cells(page, "flaky-table")] == [["flaky-net", "homebrew", str(NIGHTS - 1)]]
    assert [row[:4] for row in cells(page, "retried-table")] == [["retry-me", "homebrew", "4", "3"]]
    # How slow: llvm leads darwin-arm64.
    slow = [row for row in cells(page, "slow-table") if row[1] == "darwin-arm64"]
    assert slow[0][2:5] == ["llvm", "25.0 min", "25.0 min"]
    assert page.locator("#duration-chart svg path.series").count() == 2  # homebrew and pypi
    screenshot(page, "answers")
    readme_screenshot(page)  # the first screen a newcomer sees: the regression, the minutes over budget
    assert page.errors == []  # type: ignore[attr-defined]


def test_a_runs_page_says_what_changed_where_and_why(browser: Browser, server: ServeProcess) -> None:
    page = open_dashboard(browser, f"{server.url}/")
    page.locator('#changes-body .changes[data-ecosystem="homebrew"] h3 a').nth(1).click()  # its latest run
    expect(page.locator("#drill-title")).to_contain_text(f"homebrew-{NIGHTS - 1}")
    drill = page.locator("#drill-body")
    expect(drill.locator(".changes .counts")).to_have_text(
        "2 new failures, 2 fixed, 1 still failing, 1 new recipe, 1 gone recipe"
    )
    header = drill.locator("table.run-matrix thead td").all_inner_texts()
    matrix = {
        row[0]: dict(zip(header, row, strict=True)) for row in cells(page, "drill-body table.run-matrix")
    }
    assert matrix["ripgrep"]["linux-debian-glibc-x86_64"] == "failed"
    assert matrix["ripgrep"]["linux-debian-glibc-arm64"] == "passed"
    assert (
        matrix["zstd"][MUSL] == "failed" and matrix["zstd"]["ecosystem"] == "homebrew (some platforms only)"
    )
    reasons = {row[0]: row for row in cells(page, "drill-body table.run-reasons")}
    assert "install_failed / verify_failed" in reasons
    assert "error: exit status 127 (rg not found)" in reasons["install_failed / verify_failed"][4]  # the tail
    assert {row[0] for row in cells(page, "run-failures")} == {"new-tool", "ripgrep", "zstd"}
    screenshot(page, "answers-run")
    assert page.errors == []  # type: ignore[attr-defined]
