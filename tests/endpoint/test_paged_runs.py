"""`GET /batch-runs/{id}` answers a run's results a page at a time (issue 19, item 4).

A 300k-row run used to be one 58 MB answer built whole in the server's memory; the memory it takes
now, page by page, is measured in bench/ (`python -m bench --only runread`).
"""

from __future__ import annotations

import pytest

from batch_metrics.endpoint.storage import RESULTS_PAGE
from tests.endpoint.test_limits import hours_ago
from tests.live import Live, batch

pytest_plugins = ["tests.live"]

ROWS = 2 * RESULTS_PAGE + 500


@pytest.fixture
def big_run(live: Live) -> int:
    body = batch(ROWS, started_at=hours_ago(1))
    for number, row in enumerate(body["results"]):
        row["recipe_name"] = f"recipe-{number:05d}"
    answer = live.post(body)
    assert answer.status_code == 201, answer.text
    run_id: int = answer.json()["batch_run_id"]
    return run_id


def _pages(live: Live, run_id: int, **params: str) -> list[dict[str, object]]:
    pages = []
    cursor: str | None = None
    while True:
        answer = live.get(
            f"/batch-runs/{run_id}", params={**params, **({"cursor": cursor} if cursor else {})}
        )
        assert answer.status_code == 200, answer.text
        pages.append(answer.json())
        cursor = pages[-1]["next_cursor"]  # type: ignore[assignment]
        if cursor is None:
            return pages


def test_a_runs_results_come_in_pages_of_the_default_size_in_stored_order(live: Live, big_run: int) -> None:
    pages = _pages(live, big_run)
    assert [len(page["results"]) for page in pages] == [RESULTS_PAGE, RESULTS_PAGE, 500]  # type: ignore[arg-type]
    names = [row["recipe_name"] for page in pages for row in page["results"]]  # type: ignore[attr-defined]
    assert names == [f"recipe-{number:05d}" for number in range(ROWS)]
    for page in pages:  # every page carries the run itself
        assert (page["id"], page["batch_id"], page["total_recipes"]) == (big_run, "batch-1", ROWS)


def test_a_smaller_page_is_asked_with_limit(live: Live, big_run: int) -> None:
    pages = _pages(live, big_run, limit="700")
    assert [len(page["results"]) for page in pages] == [700, 700, 700, 400]  # type: ignore[arg-type]
    ids = [row["id"] for page in pages for row in page["results"]]  # type: ignore[attr-defined]
    assert ids == sorted(set(ids)) and len(ids) == ROWS


@pytest.mark.parametrize(
    ("query", "answer"),
    [
        ("limit=0", f"Bad request: limit must be between 1 and {RESULTS_PAGE}"),
        (f"limit={RESULTS_PAGE + 1}", f"Bad request: limit must be between 1 and {RESULTS_PAGE}"),
        ("cursor=abc", "Bad request: cursor must be a whole number of at most 18 digits"),
        ("page=2", "Bad request: unknown query parameter 'page'"),
    ],
)
def test_a_bad_page_request_is_refused_plainly(live: Live, big_run: int, query: str, answer: str) -> None:
    refused = live.get(f"/batch-runs/{big_run}?{query}")
    assert (refused.status_code, refused.text) == (400, answer)


def test_a_cursor_past_the_last_result_is_an_empty_last_page(live: Live, big_run: int) -> None:
    last = live.get(f"/batch-runs/{big_run}?cursor=999999999999999999").json()
    assert (last["results"], last["next_cursor"], last["id"]) == ([], None, big_run)
