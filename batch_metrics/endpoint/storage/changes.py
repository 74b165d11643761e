"""What changed since an ecosystem's previous run, worked out by the upload inside its own transaction.

The upload's answer says what broke and what was fixed, so the comparison cannot wait for the
roll-ups (made after the upload, storage/queue.py). Its state is kept apart from them, per
ecosystem, and moved on by each upload in the transaction that stores the batch:

- `ecosystem_heads`: the ecosystem's last compared run, how many runs it has had, the names of the
  recipes that run validated and the recipe x platform pairs that failed in it, each with the run
  where its failure began (each rewritten only when it changed);
- `run_changes`: each run's answer, per ecosystem: counts (what `/metrics` and the alerts read)
  and the lists (capped at MAX_LISTED each), so a re-delivered batch and the dashboard answer alike.

Comparing costs a few passes at C speed over the batch's rows in memory, one read of each
ecosystem's head and a write of what changed; no read of `recipe_results` (docs/benchmarks.md has
the cost: a few percent of the upload of a 100k-row batch).
Only platform validations count (rows of the generation stage do not). The previous run is the
one compared before this one: uploads take turns at the comparison (`SQLStorage.insert_batch`
holds a lock for it on PostgreSQL; SQLite has one writer), so runs compare in the order they were
stored. Migration 9 makes each ecosystem's head from the batches already stored (`build_heads`).
"""

from __future__ import annotations

import json
from collections import Counter
from operator import itemgetter, methodcaller
from typing import Any

GENERATION = "generation"
MAX_LISTED = 1000  # entries per list in an answer; the counts are always whole
# `recipes`: the names, UTF-8, separated by NUL (which no stored text holds: the endpoint takes none);
# `failures`: JSON [[recipe, platform, run number where the failure began, that run's id], ...].
TABLES = """
CREATE TABLE ecosystem_heads (
    ecosystem TEXT PRIMARY KEY,
    batch_run_id {fk} NOT NULL REFERENCES batch_runs(id),
    run_number INTEGER NOT NULL,
    recipes {bytes} NOT NULL,
    failures TEXT NOT NULL
);
CREATE TABLE run_changes (
    batch_run_id {fk} NOT NULL REFERENCES batch_runs(id),
    ecosystem TEXT NOT NULL,
    previous_run_id {fk},
    new_failures INTEGER NOT NULL,
    fixed INTEGER NOT NULL,
    still_failing INTEGER NOT NULL,
    new_recipes INTEGER NOT NULL,
    gone_recipes INTEGER NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (batch_run_id, ecosystem)
);
CREATE INDEX idx_run_changes_ecosystem ON run_changes(ecosystem, batch_run_id);
"""
COUNTS = ("new_failures", "fixed", "still_failing", "new_recipes", "gone_recipes")
_PER_PLATFORM = COUNTS[:3]
_HEAD = "SELECT batch_run_id, run_number, recipes, failures FROM ecosystem_heads WHERE ecosystem = {mark}"
_NEW_HEAD = (
    "INSERT INTO ecosystem_heads (ecosystem, batch_run_id, run_number, recipes, failures)"
    " VALUES ({mark}, {mark}, {mark}, {mark}, {mark})"
)
_STORE = (
    f"INSERT INTO run_changes (batch_run_id, ecosystem, previous_run_id, {', '.join(COUNTS)}, detail)"
    f" VALUES ({', '.join(['{mark}'] * (len(COUNTS) + 4))})"
)
STORED = (
    f"SELECT ecosystem, previous_run_id, {', '.join(COUNTS)}, detail FROM run_changes"
    " WHERE batch_run_id = {mark} ORDER BY ecosystem"
)
_RECIPE = itemgetter("recipe_name")
_ECOSYSTEM = itemgetter("ecosystem")
_PLATFORM_OF = itemgetter(1)
_STAGE = methodcaller("get", "stage")
Pair = tuple[str, str]


def _validations(results: list[Any], staged: bool) -> dict[str, list[Any]]:
    """The batch's platform validations by ecosystem (in the usual batch: all its rows, one ecosystem).
    `staged`: whether any row may name a stage (else none is looked at)."""
    rows = results if not staged or GENERATION not in map(_STAGE, results) else [
        row for row in results if row.get("stage") != GENERATION
    ]  # fmt: skip
    ecosystems = set(map(_ECOSYSTEM, rows))
    if len(ecosystems) == 1:
        return {ecosystems.pop(): rows}
    grouped: dict[str, list[Any]] = {}
    for row in rows:
        grouped.setdefault(row["ecosystem"], []).append(row)
    return grouped


def compare_run(db: Any, mark: str, run_id: int, results: list[Any], *, staged: bool) -> list[dict[str, Any]]:
    """Compare the batch `run_id` (its rows: `results`) with each of its ecosystems' previous run, store
    the answers and move the heads on; the answers, by ecosystem. Runs inside the caller's transaction.
    `staged`: whether any row may carry a `stage` (statements.result_columns tells)."""
    return [
        _compare(db, mark, run_id, ecosystem, rows)
        for ecosystem, rows in sorted(_validations(results, staged).items())
    ]


def _names(blob: bytes | memoryview) -> set[str]:
    return set(bytes(blob).decode("utf-8", "surrogatepass").split("\0")) if blob else set()


def _blob(names: set[str]) -> bytes:
    text = "\0".join(names)
    if text.count("\0") != max(len(names) - 1, 0):
        raise ValueError("a recipe name holds a NUL character, which the endpoint never stores")
    return text.encode("utf-8", "surrogatepass")


def _compare(db: Any, mark: str, run_id: int, ecosystem: str, rows: list[Any]) -> dict[str, Any]:
    """One ecosystem: the sets of this run (names, failing pairs) against its head's."""
    names = set(map(_RECIPE, rows))
    failing = {
        (row["recipe_name"], row.get("platform") or ""): row for row in rows if row["result"] == "failed"
    }
    head = db.execute(_HEAD.format(mark=mark), (ecosystem,)).fetchone()
    if head is None:  # the ecosystem's first run: nothing to compare with
        failures = [[recipe, platform, 1, run_id] for recipe, platform in failing]
        db.execute(_NEW_HEAD.format(mark=mark), (ecosystem, run_id, 1, _blob(names), json.dumps(failures)))
        return _store(db, mark, run_id, ecosystem, None, _Changes())
    previous_id, number = int(head[0]), int(head[1]) + 1
    previous_names = _names(head[2])
    before: dict[Pair, tuple[int, int]] = {
        (recipe, platform): (since, since_run) for recipe, platform, since, since_run in json.loads(head[3])
    }
    new_recipes = names - previous_names
    # Every name of before is still here when as many are here, less the new ones: no second pass.
    same_rest = len(previous_names) == len(names) - len(new_recipes)
    changes = _Changes(new_recipes, set() if same_rest else previous_names - names)
    ended = before.keys() - failing.keys()  # failed last time, not this time: fixed where it passed now
    if ended:
        wanted = {recipe for recipe, _ in ended}
        passed = {
            (row["recipe_name"], row.get("platform") or "")
            for row in rows
            if row["recipe_name"] in wanted and row["result"] == "passed"
        }
        changes.fixed = {pair: number - before[pair][0] for pair in ended & passed}
    changes.still_failing = failing.keys() & before.keys()
    changes.since = before
    changes.number = number
    started = failing.keys() - before.keys()
    changes.new_failures = {pair: (failing[pair], pair[0] in new_recipes) for pair in started}
    sets = ["batch_run_id = {mark}", "run_number = {mark}"]
    values: list[object] = [run_id, number]
    if changes.new_recipes or changes.gone_recipes:
        sets.append("recipes = {mark}")
        values.append(_blob(names))
    if started or ended:
        kept = [[recipe, platform, *before[recipe, platform]] for recipe, platform in changes.still_failing]
        kept += [[recipe, platform, number, run_id] for recipe, platform in started]
        sets.append("failures = {mark}")
        values.append(json.dumps(kept))
    db.execute(f"UPDATE ecosystem_heads SET {', '.join(sets)} WHERE ecosystem = {{mark}}".format(mark=mark),
               (*values, ecosystem))  # fmt: skip
    return _store(db, mark, run_id, ecosystem, previous_id, changes)


class _Changes:
    """One ecosystem's comparison before it is written: pairs and names, with what the answer says of each."""

    def __init__(self, new_recipes: set[str] | None = None, gone_recipes: set[str] | None = None) -> None:
        self.new_failures: dict[Pair, tuple[dict[str, Any], bool]] = {}  # the row; whether its recipe is new
        self.fixed: dict[Pair, int] = {}  # how many runs it had been failing
        self.still_failing: set[Pair] = set()
        self.since: dict[Pair, tuple[int, int]] = {}  # a failure's first run: its number, its id
        self.number = 1  # this run's number among the ecosystem's
        self.new_recipes = new_recipes or set()
        self.gone_recipes = gone_recipes or set()

    def detail(self) -> dict[str, Any]:
        """The lists (MAX_LISTED each, by recipe and platform) and the counts per platform."""
        per_platform: dict[str, dict[str, int]] = {}
        for name in _PER_PLATFORM:
            for platform, count in Counter(map(_PLATFORM_OF, getattr(self, name))).items():
                per_platform.setdefault(platform, dict.fromkeys(_PER_PLATFORM, 0))[name] = count
        return {
            "new_failures": [
                {"recipe_name": recipe, "platform": platform, "error_category": row.get("error_category"),
                 "error_subcategory": row.get("error_subcategory"), "new_recipe": new}
                for (recipe, platform), (row, new) in sorted(self.new_failures.items())[:MAX_LISTED]
            ],
            "fixed": [
                {"recipe_name": recipe, "platform": platform, "failed_runs": runs}
                for (recipe, platform), runs in sorted(self.fixed.items())[:MAX_LISTED]
            ],
            "still_failing": [
                {"recipe_name": recipe, "platform": platform,
                 "failed_runs": self.number - self.since[recipe, platform][0] + 1,
                 "since_run_id": self.since[recipe, platform][1]}
                for recipe, platform in sorted(self.still_failing)[:MAX_LISTED]
            ],
            "new_recipes": sorted(self.new_recipes)[:MAX_LISTED],
            "gone_recipes": sorted(self.gone_recipes)[:MAX_LISTED],
            "platforms": [{"platform": name, **counts} for name, counts in sorted(per_platform.items())],
        }  # fmt: skip


def _store(
    db: Any, mark: str, run_id: int, ecosystem: str, previous_id: int | None, changes: _Changes
) -> dict[str, Any]:
    counts = [len(getattr(changes, name)) for name in COUNTS]
    detail = changes.detail()
    db.execute(_STORE.format(mark=mark), (run_id, ecosystem, previous_id, *counts, json.dumps(detail)))
    counted = dict(zip(COUNTS, counts, strict=True))
    return {"ecosystem": ecosystem, "previous_run_id": previous_id, "counts": counted, **detail}


def stored_changes(db: Any, mark: str, run_id: int) -> list[dict[str, Any]]:
    """The answers `compare_run` stored for the run, by ecosystem (a re-delivered batch's answer)."""
    found = []
    for ecosystem, previous, *rest in db.execute(STORED.format(mark=mark), (run_id,)).fetchall():
        counts, detail = rest[:-1], json.loads(rest[-1])
        found.append({
            "ecosystem": ecosystem, "previous_run_id": None if previous is None else int(previous),
            "counts": dict(zip(COUNTS, map(int, counts), strict=True)), **detail,
        })  # fmt: skip
    return found


_VALIDATION = "(stage IS NULL OR stage <> 'generation')"
_RUNS_OF = f"SELECT DISTINCT ecosystem, batch_run_id FROM recipe_results WHERE {_VALIDATION}"
_ROWS_OF = (
    "SELECT recipe_name, coalesce(platform, ''), result FROM recipe_results"
    f" WHERE batch_run_id = {{mark}} AND ecosystem = {{mark}} AND {_VALIDATION}"
)
_FAILED_IN = (
    "SELECT recipe_name, coalesce(platform, '') FROM recipe_results"
    f" WHERE batch_run_id = {{mark}} AND result = 'failed' AND ecosystem = {{mark}} AND {_VALIDATION}"
)


def build_heads(db: Any, mark: str) -> None:
    """Migration 9: each ecosystem's head from the batches stored before it, so the next upload compares
    with its real previous run. One pass over the rows to find each ecosystem's runs, the last run's
    rows, then each of its failures followed back run by run (failed rows only) to where it began."""
    runs: dict[str, list[int]] = {}
    for ecosystem, run_id in db.execute(_RUNS_OF).fetchall():
        runs.setdefault(ecosystem, []).append(int(run_id))
    for ecosystem, ids in runs.items():
        ids.sort()
        last = ids[-1]
        rows = db.execute(_ROWS_OF.format(mark=mark), (last, ecosystem)).fetchall()
        open_pairs = {(recipe, platform) for recipe, platform, result in rows if result == "failed"}
        since = dict.fromkeys(open_pairs, (len(ids), last))
        for position in range(len(ids) - 2, -1, -1):
            if not open_pairs:
                break
            earlier = set(db.execute(_FAILED_IN.format(mark=mark), (ids[position], ecosystem)).fetchall())
            open_pairs = {pair for pair in open_pairs if pair in earlier}
            since.update(dict.fromkeys(open_pairs, (position + 1, ids[position])))
        failures = [[recipe, platform, number, run] for (recipe, platform), (number, run) in since.items()]
        names = {recipe for recipe, _, _ in rows}
        values = (ecosystem, last, len(ids), _blob(names), json.dumps(failures))
        db.execute(_NEW_HEAD.format(mark=mark), values)
