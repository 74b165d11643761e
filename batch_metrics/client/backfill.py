"""`batch-metrics backfill`: a git history of committed batch data into an endpoint, a batch per batch commit.

A batch commit is one that adds a run summary (or appends one to a file, as tsuku's older
`batch-runs.jsonl`): its batch is the files that commit added or appended to under the
`results` globs, read exactly as `run` reads a workspace. Git is read once (client.gitlog);
payloads go one after another over one kept-alive HTTP session, each with the `Idempotency-Key`
`upload` would give it: the hash of bytes that are the same on every run (the batch id names the
commit, the times are the summary's or the commit's), so a second run stores nothing new.
docs/tsuku.md says what a batch holds and what it cannot.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TextIO

from wcmatch import glob as wcglob

from batch_metrics.client import gitlog
from batch_metrics.client.actions import Reporter
from batch_metrics.client.collect import Collection, collect_blobs
from batch_metrics.client.disk import write_bytes
from batch_metrics.client.payload import build_payload, payload_bytes, redact_messages

DEFAULT_RESULTS = "data/metrics/**\ndata/failures/**"
_GLOB_FLAGS = wcglob.GLOBSTAR | wcglob.BRACE
_GLOB_CHARS = frozenset("*?[{!")
PROGRESS_SECONDS = 1.0
_OUTCOMES = {"uploaded": "stored", "duplicate": "already stored"}


@dataclass(frozen=True)
class Settings:
    repo: Path
    revisions: str | None = None
    results: str = DEFAULT_RESULTS
    endpoint: str = ""
    token: str = ""
    ecosystem: str | None = None
    ecosystem_map: Mapping[str, str] = field(default_factory=dict)
    category_map: Mapping[str, str] = field(default_factory=dict)
    payload_dir: Path | None = None
    dry_run: bool = False
    timeout: float = 30.0
    retries: int = 3


@dataclass
class Tally:
    commits: int = 0
    batches: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)

    def __str__(self) -> str:
        said = ", ".join(f"{count} {status}" for status, count in sorted(self.outcomes.items()))
        return f"{self.batches} batch commits of {self.commits} commits read" + (f": {said}" if said else "")


@dataclass(frozen=True)
class Files:
    """One commit's files under the globs: what it added, and what it appended to files it changed."""

    commit: gitlog.Commit
    blobs: list[tuple[str, bytes]]
    skipped: list[str]  # changed files whose new text does not start with their old one


def _globs(results: str) -> tuple[list[str], list[str]]:
    include: list[str] = []
    exclude: list[str] = []
    for raw in results.splitlines():
        pattern = raw.strip()
        if pattern and not pattern.startswith("#"):
            (exclude if pattern.startswith("!") else include).append(pattern.removeprefix("!").strip())
    return include, exclude


def _pathspecs(include: list[str]) -> list[str]:
    """The fixed directories the globs start with, so git lists only what they can match ([] = all)."""
    roots = []
    for pattern in include:
        fixed = []
        for part in PurePosixPath(pattern).parts[:-1]:
            if _GLOB_CHARS & set(part):
                break
            fixed.append(part)
        if not fixed:
            return []
        roots.append("/".join(fixed))
    return roots


def commit_files(settings: Settings) -> Iterator[Files]:
    """Each commit that changed a file under the globs, oldest first, with those files' bytes."""
    include, exclude = _globs(settings.results)
    chosen = []
    for commit in gitlog.commits(settings.repo, settings.revisions, _pathspecs(include)):
        commit.changes = [
            change for change in commit.changes
            if wcglob.globmatch(change.path, include, flags=_GLOB_FLAGS, exclude=exclude or None)
        ]  # fmt: skip
        if commit.changes:
            chosen.append(commit)
    wanted = [
        blob for commit in chosen for change in commit.changes for blob in (change.old, change.new) if blob
    ]
    data = gitlog.blobs(settings.repo, wanted)
    for commit in chosen:
        blobs, skipped = [], []
        for change in commit.changes:
            old = next(data) if change.old else None
            new = next(data)
            if old is None:
                blobs.append((change.path, new))
            elif new.startswith(old):
                blobs.append((change.path, new[len(old) :]))
            else:
                skipped.append(change.path)
        yield Files(commit, blobs, skipped)


def backfill(settings: Settings, reporter: Reporter, *, progress: TextIO | None = None) -> Tally:
    """Send every batch commit's batch; the tally. Raises gitlog.GitError when git cannot be read."""
    from batch_metrics.client.http import session_for  # the network only here
    from batch_metrics.client.upload import total_time, upload

    progress = progress or sys.stderr
    tally = Tally()
    began = shown = time.monotonic()
    session = None if settings.dry_run else session_for(settings.endpoint)
    print(f"backfill: reading the history of {settings.repo}", file=progress, flush=True)
    try:
        for files in commit_files(settings):
            tally.commits += 1
            sha = files.commit.sha[:12]
            collection = collect_blobs(files.blobs, ecosystem=settings.ecosystem)
            if not collection.summaries:
                continue  # not a batch commit
            for path in files.skipped:
                reporter.warning(f"{sha} {path}: changed, not appended to: its new lines cannot be told from "
                                 "the old ones; skipped")  # fmt: skip
            tally.batches += 1
            body = _batch(collection, files.commit, settings, reporter)
            if settings.payload_dir is not None:
                write_bytes(body, settings.payload_dir / f"{files.commit.sha}.json")
            if session is None:
                tally.outcomes["not sent (dry run)"] += 1
            else:
                result = upload(
                    body, endpoint=settings.endpoint, token=settings.token, timeout=settings.timeout,
                    retries=settings.retries, total_timeout=total_time(settings.timeout, settings.retries),
                    log=reporter.info, session=session,
                )  # fmt: skip
                tally.outcomes[_OUTCOMES.get(result.status, "failed")] += 1
                if result.status == "failed":
                    reporter.warning(f"{sha}: not stored: {result.message}")
            if time.monotonic() - shown >= PROGRESS_SECONDS:
                shown = time.monotonic()
                print(f"backfill: {tally} ({shown - began:.1f} s)", file=progress, flush=True)
    finally:
        if session is not None:
            session.close()
    return tally


def _batch(collection: Collection, commit: gitlog.Commit, settings: Settings, reporter: Reporter) -> bytes:
    """The payload's bytes for one batch commit, its warnings said with the commit's name."""
    summary = collection.summaries[0].values
    own_id = summary.get("batch_id")
    payload = build_payload(
        collection, batch_id=f"{own_id}@{commit.sha[:12]}" if own_id else commit.sha[:12],
        ecosystem=settings.ecosystem, now=datetime.fromtimestamp(commit.time, UTC),
        ecosystem_map=settings.ecosystem_map, category_map=settings.category_map,
    )  # fmt: skip
    for warning in collection.warnings:
        reporter.warning(f"{commit.sha[:12]} {warning}")
    redact_messages(payload["results"], reporter.redact)
    return payload_bytes(payload)
