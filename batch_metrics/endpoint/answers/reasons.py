"""Why: failures grouped by error category and subcategory, when each group was first and last seen, an
example message's head and tail, and the CI run that produced it.

Read from `run_failure_reasons` (storage/answer_rollups.py): per run, ecosystem, category and
subcategory, the failures, the recipes and the id of the group's first failed row, whose message
is the example (read by its id: one row). The CI run is the one the uploader sent
(`batch_uploaders.run_url`, http(s) only), of the group's latest run.
"""

from __future__ import annotations

from typing import Any

from batch_metrics.endpoint.answers.dashboard import Window
from batch_metrics.endpoint.storage import SQLStorage

TOP = 20
EDGE = 240  # characters of a message's head and of its tail
_GROUP = "x.ecosystem, x.error_category, x.error_subcategory"


def head_and_tail(message: str | None) -> tuple[str, str]:
    """The message's first and last EDGE characters; all of it in the head when it is that short."""
    text = message or ""
    if len(text) <= 2 * EDGE:
        return text, ""
    return text[:EDGE], text[-EDGE:]


def _examples(storage: SQLStorage, row_ids: list[int]) -> dict[int, dict[str, Any]]:
    """The example failures by id (each read by its id), with their message's head and tail, and the CI
    link of their run."""
    if not row_ids:
        return {}
    rows = storage.query(
        "SELECT f.id, f.recipe_name, coalesce(f.platform, '') AS platform, f.stage, f.error_message,"
        " u.run_url"
        " FROM recipe_results f LEFT JOIN batch_uploaders u ON u.batch_run_id = f.batch_run_id"
        f" WHERE f.id IN ({', '.join(['{mark}'] * len(row_ids))})",
        row_ids,
    )
    examples = {}
    for row in rows:
        head, tail = head_and_tail(row["error_message"])
        examples[int(row["id"])] = {
            "recipe_name": row["recipe_name"], "platform": row["platform"], "stage": row["stage"],
            "message_head": head, "message_tail": tail, "run_url": row["run_url"],
        }  # fmt: skip
    return examples


def _missing() -> dict[str, Any]:
    """An example whose row is gone (never, as the roll-up read it; an answer still never fails for it)."""
    return {"recipe_name": "", "platform": "", "stage": None, "message_head": "", "message_tail": "",
            "run_url": None}  # fmt: skip


_OF_GROUP = (
    "FROM run_failure_reasons WHERE ecosystem = {mark} AND error_category = {mark}"
    " AND error_subcategory = {mark}"
)


def _seen(storage: SQLStorage, groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per group, in one statement: its first and last run over all stored runs (each an index seek), and
    its example row and recipes in its latest run of the window."""
    parts, params = [], []
    for position, group in enumerate(groups):
        key = [group["ecosystem"], group["error_category"], group["error_subcategory"]]
        parts.append(
            f"SELECT {position} AS position, (SELECT min(batch_run_id) {_OF_GROUP}) AS first_id,"
            f" (SELECT max(batch_run_id) {_OF_GROUP}) AS last_id,"
            f" (SELECT example_id {_OF_GROUP} AND batch_run_id = {{mark}}) AS example_id,"
            f" (SELECT recipes {_OF_GROUP} AND batch_run_id = {{mark}}) AS recipes"
        )
        params += [*key, *key, *key, group["last_run_id"], *key, group["last_run_id"]]
    rows = storage.query(" UNION ALL ".join(parts), params)
    return sorted(rows, key=lambda row: int(row["position"]))


def failure_reasons(storage: SQLStorage, window: Window, limit: int = TOP) -> list[dict[str, Any]]:
    """The window's groups with the most failures; first and last seen over all stored runs."""
    where, params = window.runs("x.ecosystem")
    groups = storage.query(
        f"SELECT {_GROUP}, sum(x.failures) AS failures, count(*) AS runs, max(x.batch_run_id) AS last_run_id"
        f" FROM run_failure_reasons x JOIN batch_runs r ON r.id = x.batch_run_id WHERE {where}"
        f" GROUP BY {_GROUP} ORDER BY failures DESC, {_GROUP} LIMIT {{mark}}",
        [*params, limit],
    )
    if not groups:
        return []
    seen = _seen(storage, groups)
    runs = {int(row["first_id"]) for row in seen} | {int(row["last_id"]) for row in seen}
    times = {
        int(row["id"]): row["started_at"]
        for row in storage.query(
            f"SELECT id, started_at FROM batch_runs WHERE id IN ({', '.join(['{mark}'] * len(runs))})",
            sorted(runs),
        )
    }
    examples = _examples(storage, [int(row["example_id"]) for row in seen])
    return [
        {"ecosystem": group["ecosystem"], "error_category": group["error_category"],
         "error_subcategory": group["error_subcategory"], "failures": int(group["failures"]),
         "runs": int(group["runs"]), "last_run_id": int(group["last_run_id"]),
         "last_run_recipes": int(found["recipes"]),
         "first_seen_run_id": int(found["first_id"]), "first_seen_at": times[int(found["first_id"])],
         "last_seen_run_id": int(found["last_id"]), "last_seen_at": times[int(found["last_id"])],
         "example": examples.get(int(found["example_id"])) or _missing()}
        for group, found in zip(groups, seen, strict=True)
    ]  # fmt: skip


def run_reasons(storage: SQLStorage, run_id: int) -> list[dict[str, Any]]:
    """One run's failures by category and subcategory, each with an example and the run's CI link."""
    groups = storage.query(
        f"SELECT {_GROUP}, x.failures, x.recipes, x.example_id FROM run_failure_reasons x"
        f" WHERE x.batch_run_id = {{mark}} ORDER BY x.failures DESC, {_GROUP} LIMIT {TOP * 5}",
        [run_id],
    )
    examples = _examples(storage, [int(group["example_id"]) for group in groups])
    return [
        {"ecosystem": group["ecosystem"], "error_category": group["error_category"],
         "error_subcategory": group["error_subcategory"], "failures": int(group["failures"]),
         "recipes": int(group["recipes"]), "example": examples.get(int(group["example_id"])) or _missing()}
        for group in groups
    ]  # fmt: skip
