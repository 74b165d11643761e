"""What changed since an ecosystem's previous run, worked out by the upload inside its own transaction.

The upload's answer says what broke and what was fixed, so the comparison cannot wait for the
roll-ups (made after the upload, storage/queue.py). Its state is kept apart from them, per
ecosystem, and moved on by each upload in the transaction that stores the batch:

- `ecosystem_heads`: the ecosystem's last compared run and how many runs it has had;
- `head_failures`: the recipe x platform pairs that failed in that run, each with the run where
  its failure began (only what changed is written: new failures in, ended ones out);
- `run_changes`: each run's answer, per ecosystem: counts (what `/metrics` and the alerts read)
  and the lists (capped at MAX_LISTED each), so a re-delivered batch and the dashboard answer alike.

The names of the recipes the previous run validated are that run's own rows. The process keeps the
last ones it compared (`Heads`, checked against the head's run on every use), so the usual upload
reads none; after a restart, or when another process stored the previous run, they are read once
from that run's rows (by its index, one run's worth). So comparing costs one pass over the
batch's rows in memory and writes proportional to what changed (docs/benchmarks.md has the cost
beside the upload's). Only platform validations count (rows of the generation stage do not). The
previous run is the one compared before this one: uploads take turns at the comparison
(`SQLStorage.store_batch` holds a lock for it on PostgreSQL; SQLite has one writer), so runs
compare in the order they were stored. Migration 9 makes each ecosystem's head from the batches
already stored (`build_heads`).
"""

from __future__ import annotations

import gc
import json
from collections import Counter
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

GENERATION = "generation"
MAX_LISTED = 1000  # entries per list in an answer; the counts are always whole
TABLES = """
CREATE TABLE ecosystem_heads (
    ecosystem TEXT PRIMARY KEY,
    batch_run_id {fk} NOT NULL REFERENCES batch_runs(id),
    run_number INTEGER NOT NULL
);
CREATE TABLE head_failures (
    ecosystem TEXT NOT NULL,
    recipe_name TEXT NOT NULL,
    platform TEXT NOT NULL,
    since_number INTEGER NOT NULL,
    since_run_id {fk} NOT NULL,
    PRIMARY KEY (ecosystem, recipe_name, platform)
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
_VALIDATION = "(stage IS NULL OR stage <> 'generation')"
_HEAD = "SELECT batch_run_id, run_number FROM ecosystem_heads WHERE ecosystem = {mark}"
_NEW_HEAD = (
    "INSERT INTO ecosystem_heads (ecosystem, batch_run_id, run_number) VALUES ({mark}, {mark}, {mark})"
)
_MOVE_HEAD = "UPDATE ecosystem_heads SET batch_run_id = {mark}, run_number = {mark} WHERE ecosystem = {mark}"
_FAILURES = (
    "SELECT recipe_name, platform, since_number, since_run_id FROM head_failures WHERE ecosystem = {mark}"
)
_ADD_FAILURE = (
    "INSERT INTO head_failures (ecosystem, recipe_name, platform, since_number, since_run_id)"
    " VALUES ({mark}, {mark}, {mark}, {mark}, {mark})"
)
_DROP_FAILURE = (
    "DELETE FROM head_failures WHERE ecosystem = {mark} AND recipe_name = {mark} AND platform = {mark}"
)
_NAMES = (
    "SELECT recipe_name FROM recipe_results"
    f" WHERE batch_run_id = {{mark}} AND ecosystem = {{mark}} AND {_VALIDATION}"
)
_STORE = (
    f"INSERT INTO run_changes (batch_run_id, ecosystem, previous_run_id, {', '.join(COUNTS)}, detail)"
    f" VALUES ({', '.join(['{mark}'] * (len(COUNTS) + 4))})"
)
STORED = (
    f"SELECT ecosystem, previous_run_id, {', '.join(COUNTS)}, detail FROM run_changes"
    " WHERE batch_run_id = {mark} ORDER BY ecosystem"
)
_PLATFORM_OF = itemgetter(1)
Pair = tuple[str, str]


@dataclass
class _Head:
    """An ecosystem's state after a run: the run, its names, its failures (pair -> (number, run id))."""

    run_id: int
    number: int
    names: set[str]
    failures: dict[Pair, tuple[int, int]]


@dataclass
class Heads:
    """The heads this process compared last, by ecosystem: each is used only while it is still the
    database's (same run), so a head moved by another process or a rolled-back upload is read again."""

    known: dict[str, _Head] = field(default_factory=dict)

    def forget(self) -> None:
        """After a rollback: a run id may be given again (SQLite), so no copy may outlive its upload."""
        self.known.clear()


class _Seen:
    """One ecosystem's platform validations in the batch, as the comparison needs them: the recipe names,
    the failing pairs (with their rows), and the passing pairs of recipes that failed before."""

    __slots__ = ("failing", "names", "passed")

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.failing: dict[Pair, Any] = {}
        self.passed: set[Pair] = set()


def _scan(results: list[Any], staged: bool, wanted: set[str]) -> dict[str, _Seen]:
    """The batch's platform validations by ecosystem, in one pass over its rows: over 100k rows each pass
    costs tens of milliseconds of memory traffic, more than the work done on them (so one Python pass
    beats several at C speed). `staged`: whether any row may name a stage (else none is looked at);
    `wanted`: the recipes whose passes may fix a failure (failing in the heads this process knows)."""
    seen: dict[str, _Seen] = {}
    for row in results:
        if staged and row.get("stage") == GENERATION:
            continue
        name, result = row["recipe_name"], row["result"]
        ecosystem = seen.get(row["ecosystem"])
        if ecosystem is None:
            ecosystem = seen[row["ecosystem"]] = _Seen()
        ecosystem.names.add(name)
        if result == "failed":
            ecosystem.failing[name, row.get("platform") or ""] = row
        elif result == "passed" and name in wanted:
            ecosystem.passed.add((name, row.get("platform") or ""))
    return seen


def _passed(results: list[Any], staged: bool, ecosystem: str, wanted: set[str]) -> set[Pair]:
    """The ecosystem's passing pairs of `wanted` recipes: a second pass, only for a head this process
    did not know (after a restart, or stored by another process)."""
    return {
        (row["recipe_name"], row.get("platform") or "")
        for row in results
        if row["ecosystem"] == ecosystem
        and row["result"] == "passed"
        and row["recipe_name"] in wanted
        and not (staged and row.get("stage") == GENERATION)
    }


def compare_run(
    db: Any, mark: str, run_id: int, results: list[Any], *, staged: bool, heads: Heads
) -> list[dict[str, Any]]:
    """Compare the batch `run_id` (its rows: `results`) with each of its ecosystems' previous run, store
    the answers and move the heads on; the answers, by ecosystem. Runs inside the caller's transaction.
    `staged`: whether any row may carry a `stage` (statements.result_columns tells).

    The cyclic garbage collector is paused meanwhile: the comparison makes no cycles, and a full
    collection, which walks every object alive (the batch's rows too), costs more than it does.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        known = {recipe for head in heads.known.values() for recipe, _ in head.failures}
        answers = []
        for ecosystem, seen in sorted(_scan(results, staged, known).items()):
            head = _previous(db, mark, ecosystem, heads)
            if head is not None and head is not heads.known.get(ecosystem):  # read: its passes not looked at
                seen.passed = _passed(results, staged, ecosystem, {recipe for recipe, _ in head.failures})
            answers.append(_compare(db, mark, run_id, ecosystem, seen, head, heads))
        return answers
    finally:
        if collecting:
            gc.enable()


def _previous(db: Any, mark: str, ecosystem: str, heads: Heads) -> _Head | None:
    """The ecosystem's head: this process's copy while it is the database's, else read."""
    found = db.execute(_HEAD.format(mark=mark), (ecosystem,)).fetchone()
    if found is None:
        return None
    run_id, number = int(found[0]), int(found[1])
    known = heads.known.get(ecosystem)
    if known is not None and (known.run_id, known.number) == (run_id, number):
        return known
    names = {row[0] for row in db.execute(_NAMES.format(mark=mark), (run_id, ecosystem))}
    failures = {
        (recipe, platform): (int(since), int(since_run))
        for recipe, platform, since, since_run in db.execute(_FAILURES.format(mark=mark), (ecosystem,))
    }
    return _Head(run_id, number, names, failures)


def _compare(
    db: Any, mark: str, run_id: int, ecosystem: str, seen: _Seen, head: _Head | None, heads: Heads
) -> dict[str, Any]:
    """One ecosystem: this run's names and failing pairs against its head's."""
    names, failing, passed = seen.names, seen.failing, seen.passed
    before = head.failures if head is not None else {}
    if head is None:  # the ecosystem's first run: nothing to compare with
        db.execute(_NEW_HEAD.format(mark=mark), (ecosystem, run_id, 1))
        _add_failures(db, mark, ecosystem, failing, 1, run_id)
        heads.known[ecosystem] = _Head(run_id, 1, names, dict.fromkeys(failing, (1, run_id)))
        return _store(db, mark, run_id, ecosystem, None, _Changes())
    number = head.number + 1
    differ = names.symmetric_difference(head.names)  # one pass over the previous names: the few that differ
    new_recipes = {name for name in differ if name in names}
    changes = _Changes(new_recipes, differ - new_recipes, number, before)
    ended = before.keys() - failing.keys()  # failed last time, not this time: fixed where it passed now
    changes.fixed = {pair: number - before[pair][0] for pair in ended & passed}
    changes.still_failing = failing.keys() & before.keys()
    started = failing.keys() - before.keys()
    changes.new_failures = {pair: (failing[pair], pair[0] in new_recipes) for pair in started}
    if ended:
        db.cursor().executemany(_DROP_FAILURE.format(mark=mark), [(ecosystem, *pair) for pair in ended])
    _add_failures(db, mark, ecosystem, started, number, run_id)
    db.execute(_MOVE_HEAD.format(mark=mark), (run_id, number, ecosystem))
    failures = {pair: before[pair] for pair in changes.still_failing}
    failures.update(dict.fromkeys(started, (number, run_id)))
    heads.known[ecosystem] = _Head(run_id, number, names, failures)
    return _store(db, mark, run_id, ecosystem, head.run_id, changes)


def _add_failures(db: Any, mark: str, ecosystem: str, pairs: Any, number: int, run_id: int) -> None:
    if pairs:
        db.cursor().executemany(
            _ADD_FAILURE.format(mark=mark),
            [(ecosystem, recipe, platform, number, run_id) for recipe, platform in pairs],
        )


class _Changes:
    """One ecosystem's comparison before it is written: pairs and names, with what the answer says of each."""

    def __init__(
        self, new_recipes: set[str] | None = None, gone_recipes: set[str] | None = None, number: int = 1,
        since: dict[Pair, tuple[int, int]] | None = None,
    ) -> None:  # fmt: skip
        self.new_failures: dict[Pair, tuple[dict[str, Any], bool]] = {}  # the row; whether its recipe is new
        self.fixed: dict[Pair, int] = {}  # how many runs it had been failing
        self.still_failing: set[Pair] = set()
        self.since = since or {}  # a failure's first run: its number, its id
        self.number = number  # this run's number among the ecosystem's
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


_RUNS_OF = f"SELECT DISTINCT ecosystem, batch_run_id FROM recipe_results WHERE {_VALIDATION}"
_FAILED_IN = (
    "SELECT recipe_name, coalesce(platform, '') FROM recipe_results"
    f" WHERE batch_run_id = {{mark}} AND result = 'failed' AND ecosystem = {{mark}} AND {_VALIDATION}"
)


def build_heads(db: Any, mark: str) -> None:
    """Migration 9: each ecosystem's head from the batches stored before it, so the next upload compares
    with its real previous run: one pass over the rows to find each ecosystem's runs, then each failure
    of its last run followed back run by run (failed rows only) to where it began."""
    runs: dict[str, list[int]] = {}
    for ecosystem, run_id in db.execute(_RUNS_OF).fetchall():
        runs.setdefault(ecosystem, []).append(int(run_id))
    for ecosystem, ids in runs.items():
        ids.sort()
        last = ids[-1]
        open_pairs = set(db.execute(_FAILED_IN.format(mark=mark), (last, ecosystem)).fetchall())
        since = dict.fromkeys(open_pairs, (len(ids), last))
        for position in range(len(ids) - 2, -1, -1):
            if not open_pairs:
                break
            earlier = set(db.execute(_FAILED_IN.format(mark=mark), (ids[position], ecosystem)).fetchall())
            open_pairs = {pair for pair in open_pairs if pair in earlier}
            since.update(dict.fromkeys(open_pairs, (position + 1, ids[position])))
        db.execute(_NEW_HEAD.format(mark=mark), (ecosystem, last, len(ids)))
        db.cursor().executemany(
            _ADD_FAILURE.format(mark=mark),
            [
                (ecosystem, recipe, platform, number, run)
                for (recipe, platform), (number, run) in since.items()
            ],
        )
