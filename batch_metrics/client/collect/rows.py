"""The rows of one result file on their way into a `Collection`, and the rules every format shares.

`FileRows` holds a file's rows with the line each came from, warns (at most
`MAX_WARNINGS_PER_FILE` times per file, then once saying how many more), and at the
end validates them in one pass and adds them to the collection, or adds nothing: a
whole document that does not read to its end is `reject`ed, and `fail` says what an
unforeseen failure costs. Outcomes are normalised here, timestamps read, and every
row made to fit the contract's limits (bounds.py) before it is validated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic_core import ValidationError

from batch_metrics.client.collect.bounds import fit
from batch_metrics.models import MAX_ERROR_MESSAGE, RESULTS_VALIDATOR, in_utc, time_window_problem

if TYPE_CHECKING:
    from batch_metrics.models import BatchPayload, RecipeResult, RunSummary

MAX_WARNINGS_PER_FILE = 20
RESULT_SPELLINGS = {
    **dict.fromkeys(("pass", "passed", "success", "succeeded", "ok"), "passed"),
    **dict.fromkeys(("fail", "failed", "failure", "error", "errored"), "failed"),
    **dict.fromkeys(("skip", "skipped", "disabled", "notrun"), "skipped"),
}
_ALL_OR_NOTHING = "a whole document counts all or nothing: nothing collected from this file"


@dataclass(frozen=True)
class CollectWarning:
    path: str  # workspace-relative; empty for a warning about the patterns themselves
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.message}" if where else self.message


@dataclass(frozen=True)
class Span:
    """Where a file's rows start in `Collection.results`, which file it is and its format."""

    start: int
    path: str
    fmt: str


@dataclass(frozen=True)
class Summary:
    """A run summary (tsuku's `batch-runs-<ts>.jsonl`) as read: its file, line and values."""

    path: str
    line: int | None
    values: RunSummary


@dataclass
class Collection:
    results: list[RecipeResult] = field(default_factory=list)
    warnings: list[CollectWarning] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    earliest: datetime | None = None
    payloads: list[BatchPayload] = field(default_factory=list)
    identities: set[tuple[int, int]] = field(default_factory=set)  # (device, inode) of each file read
    skipped: list[str] = field(default_factory=list)  # matched files left out as the run's own, and why
    # Which file each run of rows came from, in order (client.merge names files with it).
    spans: list[Span] = field(default_factory=list)
    # Positions in `results` of rows whose file named their ecosystem; the others hold the default
    # (the `ecosystem` input, else `unknown`) until client.merge finds theirs.
    named: list[int] = field(default_factory=list)
    summaries: list[Summary] = field(default_factory=list)


def _kept_positions(positions: list[int], dropped: dict[int, str]) -> list[int]:
    """`positions` among a file's rows once the `dropped` ones are gone: where each now is, if kept."""
    gone = sorted(dropped)
    kept, cut = [], 0
    for position in positions:
        while cut < len(gone) and gone[cut] < position:
            cut += 1
        if cut >= len(gone) or gone[cut] != position:
            kept.append(position - cut)
    return kept


def normalise_result(value: object) -> str | None:
    """`passed`, `failed` or `skipped` for a known spelling of an outcome, else None."""
    if not isinstance(value, str):
        return None
    return RESULT_SPELLINGS.get(value) or RESULT_SPELLINGS.get(value.strip().lower())


def _local_time(value: object) -> datetime | None:
    """The datetime a timestamp text spells, in its own zone (None: no zone), else None."""
    if not isinstance(value, str):
        return None
    text = value.strip().upper()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        date, sep, clock = text.partition("T")
        if sep and clock[2:3] == "-" and clock[5:6] == "-":
            clock = f"{clock[:2]}:{clock[3:5]}:{clock[6:]}"
        try:
            parsed = datetime.fromisoformat(date + sep + clock)
        except ValueError:
            return None
    return parsed


def parse_timestamp(value: object) -> datetime | None:
    """A UTC datetime from RFC 3339 or the near misses pipelines write, else None.

    Accepted besides ISO 8601: dashes in the time (`2026-03-08T01-58-35Z`, tsuku's
    `updated_at`), more than 6 fractional digits, lower-case `t` and `z`, no zone (UTC).
    None also for a time whose UTC falls outside years 1-9999 (`0001-01-01T00:00:00+01:00`).
    """
    moment = _local_time(value)
    if moment is None:
        return None
    try:
        return in_utc(moment)
    except OverflowError:
        return None


def brief(value: object, limit: int = 80) -> str:
    """A value for a warning: the start of a string, else only its JSON type (never a huge repr)."""
    return repr(value[:limit]) if isinstance(value, str) else f"a JSON {type(value).__name__}"


def why(error: BaseException) -> str:
    """An exception in a few words: the OS's for an OSError, else its type and text."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return f"{type(error).__name__}: {error}"[:200]


class FileRows:
    """The rows of one file and the line each came from, validated in one pass at the end."""

    def __init__(self, display: str, collection: Collection, ecosystem: str, limit: int) -> None:
        self.display = display
        self.collection = collection
        self.ecosystem = ecosystem  # for rows whose file names none
        self.named: list[int] = []  # rows whose file named their ecosystem (`name_ecosystem`)
        self.fmt = ""  # the format it was read as, once known
        self.limit = min(limit, MAX_ERROR_MESSAGE)
        self.rows: list[dict[str, Any]] = []
        self.lines: list[int | None] = []
        self.stamps: dict[str, int | None] = {}  # each timestamp text and the first line it is on
        self.warned = 0
        self.line: int | None = None  # where reading is, for a failure nobody foresaw
        self.whole = False  # a whole document: all its rows or none

    def warn(self, line: int | None, message: str) -> None:
        if self.warned < MAX_WARNINGS_PER_FILE:
            self.collection.warnings.append(CollectWarning(self.display, line, message))
        self.warned += 1

    def name_ecosystem(self, named: object) -> object:
        """The ecosystem of the row about to be added: the one its file names (noted), else the default."""
        if named:
            self.named.append(len(self.rows))
            return named
        return self.ecosystem

    def add(self, line: int | None, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self.lines.append(line)

    def stamp(self, line: int | None, value: object) -> None:
        if isinstance(value, str):
            self.stamps.setdefault(value, line)

    def reject(self, line: int | None, reason: str) -> None:
        """A whole document that cannot be read to its end: one warning, and none of its rows."""
        self.warn(line, f"{reason}; {_ALL_OR_NOTHING}")
        self.rows, self.lines, self.stamps = [], [], {}

    def fail(self, error: BaseException) -> None:
        """What an unforeseen failure costs: a document all of it, a line format what follows."""
        if self.whole:
            self.reject(self.line, f"cannot be read ({why(error)})")
        elif self.line is None:
            self.warn(None, f"cannot be read ({why(error)}); nothing collected from this file")
        else:
            self.warn(self.line, f"cannot be read past here ({why(error)}); the lines before it are kept")

    def finish(self) -> None:
        """Validate every row at once and add the file's share to the collection, or add nothing.

        A row past a limit is fitted to it (bounds.py), with a warning when something is left out;
        a row that still fails validation is dropped with a warning naming its line and its
        position among the file's rows.
        """
        rows = self.rows
        named = self.named
        try:
            results = RESULTS_VALIDATOR.validate_python(rows)
        except ValidationError as error:
            for (place, *_), left_out in fit(rows, error.errors(include_url=False)).items():
                index = int(place)
                name = brief(rows[index].get("recipe_name"))
                self.warn(self.lines[index], f"row {index + 1} ({name}): {left_out}; the row is kept")
            results, bad = self._valid_rows()
            named = _kept_positions(named, bad)
        earliest = self._earliest()
        start = len(self.collection.results)
        if results:
            self.collection.spans.append(Span(start, self.display, self.fmt))
            self.collection.named.extend(start + index for index in named)
        self.collection.results.extend(results)
        if earliest is not None and (self.collection.earliest is None or earliest < self.collection.earliest):
            self.collection.earliest = earliest
        self.note_hidden_warnings()

    def _valid_rows(self) -> tuple[list[RecipeResult], dict[int, str]]:
        """The rows that validate, and the ones that do not (dropped, each with a warning saying why)."""
        rows = self.rows
        bad: dict[int, str] = {}
        try:
            results: list[RecipeResult] = RESULTS_VALIDATOR.validate_python(rows)
        except ValidationError as error:
            for problem in error.errors(include_url=False):
                index = int(problem["loc"][0])
                where = ".".join(map(str, problem["loc"][1:]))
                bad.setdefault(index, f"{where}: {problem['msg']}")
            for index, reason in bad.items():
                name = brief(rows[index].get("recipe_name"))
                self.warn(self.lines[index], f"row {index + 1} ({name}): {reason}; row skipped")
            results = RESULTS_VALIDATOR.validate_python(
                [row for index, row in enumerate(rows) if index not in bad]
            )
        return results, bad

    def note_hidden_warnings(self) -> None:
        if self.warned > MAX_WARNINGS_PER_FILE:
            hidden = self.warned - MAX_WARNINGS_PER_FILE
            self.collection.warnings.append(
                CollectWarning(self.display, None, f"{hidden} more warnings in this file not shown")
            )
            self.warned = MAX_WARNINGS_PER_FILE

    def _earliest(self) -> datetime | None:
        moments = []
        now = datetime.now(UTC)
        for text, line in self.stamps.items():
            local = _local_time(text)
            if local is None:
                continue  # not a timestamp: read leniently, as before
            try:
                moment = in_utc(local)
            except OverflowError:
                self.warn(line, f"timestamp {brief(text)} is out of range in UTC; ignored, the row is kept")
                continue
            problem = time_window_problem(moment, now)
            if problem:  # the endpoint would refuse it as the batch's start
                self.warn(line, f"timestamp {brief(text)}: {problem}; ignored, the row is kept")
            else:
                moments.append(moment)
        return min(moments, default=None)
