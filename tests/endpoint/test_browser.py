"""The dashboard in a real browser: Debian's chromium, headless, driven by playwright (no downloaded browser).

`batch-metrics serve` runs as its own process on a stored history (tests/history.py: a flaky
recipe, an ecosystem that stopped reporting, a recipe named like markup). Each panel is read
back as the user sees it. Screenshots at desktop and phone width are kept in
`tests/artifacts/` (ignored by git); their paths are printed.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from hashlib import sha256
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import ROOT, need
from tests.history import HOSTILE, HOSTILE_MESSAGE, seeded_database
from tests.live import ServeProcess, serve_process

# Debian's chromium here and in .ci/run; the Google Chrome that GitHub's Ubuntu runners ship there.
CHROMIUM = next(
    (path for path in map(Path, ("/usr/bin/chromium", "/usr/bin/google-chrome")) if path.exists()),
    Path("/usr/bin/chromium"),
)
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
# The README's picture: test_browser_answers.py makes it; `BATCH_METRICS_UPDATE_SCREENSHOT=1` writes it.
README_SCREENSHOT = ROOT / "docs" / "dashboard.png"
TOKEN = secrets.token_urlsafe(24)
expect.set_options(timeout=20_000)  # waits, not sleeps: generous for a machine busy with other work


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    work = tmp_path_factory.mktemp("browser")
    database = seeded_database(work / "metrics.db", datetime.now(UTC))
    # The dashboard as it should run: a read-only token from a credentials file.
    credentials = work / "credentials.toml"
    credentials.write_text(f'[[token]]\nname = "dashboard"\nsha256 = "{sha256(TOKEN.encode()).hexdigest()}"\n'
                           'can = ["read"]\n')  # fmt: skip
    with serve_process(database, "", work / "serve.log", "--credentials", str(credentials)) as process:
        yield process


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    need(CHROMIUM, "chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def open_dashboard(browser: Browser, url: str, width: int = 1280) -> Page:
    page = browser.new_page(viewport={"width": width, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: errors.append(f"dialog: {dialog.message}"))
    # Console errors, such as a blocked script or style, except the 401s that ask for the token.
    page.on("console", lambda message: message.type == "error" and "401" not in message.text
            and errors.append(f"console: {message.text}"))  # fmt: skip
    page.goto(url)
    expect(page.locator("#login")).to_be_visible()  # no data without the token
    expect(page.locator("#panels")).to_be_hidden()
    page.fill("#token", TOKEN)
    page.click("#login button")
    expect(page.locator("#panels")).to_be_visible()
    expect(page.locator("#status")).to_have_text("")
    page.errors = errors  # type: ignore[attr-defined]  # checked by each test at its end
    return page


def cells(page: Page, table: str) -> list[list[str]]:
    """The text of each body row's cells, as shown."""
    return [
        [cell.strip() for cell in row.locator("td").all_inner_texts()]
        for row in page.locator(f"#{table} tbody tr").all()
    ]


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"dashboard-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def test_every_panel_names_the_right_recipes_rates_and_ecosystems(
    browser: Browser, server: ServeProcess
) -> None:
    page = open_dashboard(browser, f"{server.url}/")
    ecosystems = {row[0]: row for row in cells(page, "ecosystems-table")}
    assert set(ecosystems) == {"cargo", "homebrew", "npm"}
    # rate, failed, generation failures, runs since green, status
    assert ecosystems["homebrew"][2:] == ["57.1%", "3", "0", "20", "ok"]
    assert ecosystems["npm"][6] == "stale"  # stopped reporting 12 days ago
    assert ecosystems["cargo"][2:] == ["100.0%", "0", "0", "0", "ok"]

    legend = page.locator("#rate-panel .legend li").all_inner_texts()
    assert legend == ["cargo", "homebrew", "npm"]
    assert page.locator("#rate-chart svg path.series").count() == 3
    assert page.locator("#minutes-chart svg circle").count() == 20 + 10 + 6  # one point per run
    rate_rows = cells(page, "rate-table")
    assert len(rate_rows) == 21  # days with any run: 1 to 21 days ago
    platforms = {(row[0], row[1]): row[2] for row in cells(page, "platforms-table")}
    assert platforms == {("cargo", "linux"): "66.7%", ("homebrew", "darwin"): "88.9%",
                         ("homebrew", "linux"): "50.0%", ("npm", "linux"): "95.0%"}  # fmt: skip

    failing = cells(page, "failing-table")
    assert [row[:3] for row in failing[:4]] == [
        ["broken", "homebrew", "20"], ["fixed", "homebrew", "10"], ["flaky", "homebrew", "10"],
        [HOSTILE, "homebrew", "5"],
    ]  # fmt: skip
    assert failing[0][3] == "▲ 6 → 14" and failing[1][3] == "▼ 6 → 4"
    assert [row[0] for row in cells(page, "categories-table")][:3] == ["checksum", "network", "<b>oops</b>"]
    assert [row[:4] for row in cells(page, "flaky-table")] == [["flaky", "homebrew", "19", "1"]]
    # Markup in stored text stays text: no element made from it, nothing run.
    assert page.locator("main img, main b, main script").count() == 0
    assert page.title() == "batch-metrics"
    screenshot(page, "desktop")
    assert page.errors == []  # type: ignore[attr-defined]


def png_size(image: bytes) -> tuple[int, int]:
    """Width and height from a PNG's header chunk."""
    assert image.startswith(b"\x89PNG\r\n\x1a\n") and image[12:16] == b"IHDR"
    return int.from_bytes(image[16:20], "big"), int.from_bytes(image[20:24], "big")


def readme_screenshot(page: Page) -> None:
    """The first screen of a seeded dashboard, as the README shows it (docs/dashboard.png)."""
    image = page.screenshot(clip={"x": 0, "y": 0, "width": 1280, "height": 820})
    (ARTIFACTS / "dashboard-readme.png").write_bytes(image)
    if os.environ.get("BATCH_METRICS_UPDATE_SCREENSHOT") == "1":
        README_SCREENSHOT.write_bytes(image)
    assert png_size(README_SCREENSHOT.read_bytes()) == png_size(image)  # the committed one is this shot


def test_window_and_ecosystem_live_in_the_query_string(browser: Browser, server: ServeProcess) -> None:
    page = open_dashboard(browser, f"{server.url}/")
    page.select_option("#days", "7")
    expect(page).to_have_url(f"{server.url}/?days=7")
    expect(page.locator("#flaky-table tbody tr td").nth(2)).to_have_text("6")
    assert "npm" not in page.locator("#rate-panel .legend").inner_text()  # nothing from npm in 7 days
    page.select_option("#ecosystem", "npm")
    expect(page).to_have_url(f"{server.url}/?days=7&ecosystem=npm")
    expect(page.locator("#ecosystems-table tbody tr")).to_have_count(1)
    assert cells(page, "ecosystems-table")[0][0] == "npm"
    page.select_option("#ecosystem", "homebrew")  # one ecosystem: the rate chart's lines are its platforms
    expect(page.locator("#rate-title")).to_have_text("Success rate per day on each platform: homebrew")
    assert page.locator("#rate-panel .legend li").all_inner_texts() == ["darwin", "linux"]
    page.click("#rate-panel summary")  # the table behind the chart
    assert cells(page, "rate-table")[-1][1:] == ["66.7% (1 failed)", "50.0% (2 failed)"]  # last night

    shared = open_dashboard(browser, f"{server.url}/?days=90&ecosystem=cargo")  # a shared URL
    assert shared.locator("#days").input_value() == "90"
    assert shared.locator("#ecosystem").input_value() == "cargo"
    assert [row[0] for row in cells(shared, "failing-table")] == ["ripgrep"]
    page.go_back()
    page.go_back()
    expect(page).to_have_url(f"{server.url}/?days=7")
    expect(page.locator("#ecosystems-table tbody tr")).to_have_count(3)
    assert page.errors == shared.errors == []  # type: ignore[attr-defined]


def test_drill_down_to_a_recipe_and_to_a_run(browser: Browser, server: ServeProcess) -> None:
    page = open_dashboard(browser, f"{server.url}/")
    page.click("#flaky-table a")
    expect(page.locator("#drill-title")).to_contain_text("Recipe flaky")
    strips = page.locator("#drill-body svg.strip")
    expect(strips).to_have_count(2)  # darwin and linux
    linux = page.locator("#drill-body h3").all_inner_texts().index("homebrew · linux")
    boxes = strips.nth(linux).locator("rect")
    results = boxes.evaluate_all("boxes => boxes.map(box => box.className.baseVal)")
    assert results == ["passed", "failed"] * 10
    assert "recipe=flaky" in page.url

    page.locator("#failing-table a", has_text=HOSTILE).click()
    expect(page.locator("#drill-title")).to_have_text(f"Recipe {HOSTILE} close")
    page.locator("#ecosystems-table tbody tr", has_text="homebrew").locator("a.time").click()
    expect(page.locator("#drill-title")).to_contain_text("homebrew-19")
    by_recipe = {row[0]: row for row in cells(page, "run-failures")}
    assert set(by_recipe) == {"broken", "flaky", HOSTILE}
    # platform, stage, category (and subcategory), blocked by, message
    assert by_recipe["broken"][1:] == ["linux", "validation", "checksum", "", "sha256 mismatch"]
    assert by_recipe[HOSTILE][5] == HOSTILE_MESSAGE
    assert page.locator("main script, main img").count() == 0 and page.title() == "batch-metrics"

    page.reload()  # the token is kept for the tab's session: no second prompt
    expect(page.locator("#panels")).to_be_visible()
    expect(page.locator("#login")).to_be_hidden()
    screenshot(page, "run")
    assert page.errors == []  # type: ignore[attr-defined]


def test_a_wrong_token_is_asked_again(browser: Browser, server: ServeProcess) -> None:
    page = browser.new_page()
    page.goto(f"{server.url}/")
    page.fill("#token", "not-the-token")
    page.click("#login button")
    expect(page.locator("#login-why")).to_contain_text("refused")
    expect(page.locator("#panels")).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0


def test_it_reads_at_phone_width(browser: Browser, server: ServeProcess) -> None:
    page = open_dashboard(browser, f"{server.url}/", width=390)
    # Nothing wider than the screen but the tables' own scrolling boxes.
    widest = page.evaluate("document.documentElement.scrollWidth")
    assert widest <= 390, widest
    for panel in ("ecosystems-panel", "rate-panel", "failing-panel", "flaky-panel"):
        box = page.locator(f"#{panel}").bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, panel
    chart = page.locator("#rate-chart svg").bounding_box()
    assert chart is not None and chart["width"] <= 370
    path = screenshot(page, "phone")
    assert path.stat().st_size > 10_000
    assert page.errors == []  # type: ignore[attr-defined]
