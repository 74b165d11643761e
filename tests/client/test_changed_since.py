"""`changed-since`: only the files this run wrote, not the history committed beside them, told by git."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from batch_metrics.client.collect import collect, find_files

LINE = '{"schema_version": 1, "recipe": "gh", "platform": "darwin-arm64", "exit_code": 6}\n'


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
                   check=True, capture_output=True)  # fmt: skip


def checkout(root: Path) -> Path:
    """A checkout holding an earlier run's files, committed; then this run's, written beside them."""
    failures = root / "data" / "failures"
    failures.mkdir(parents=True)
    (failures / "batch-2026-03-01T00-00-00Z.jsonl").write_text(LINE)
    (failures / "kept.jsonl").write_text(LINE)
    (root / ".gitignore").write_text("ignored-*.jsonl\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "earlier")
    (failures / "batch-2026-03-02T00-00-00Z.jsonl").write_text(LINE.replace("gh", "new"))  # untracked
    (failures / "ignored-2026.jsonl").write_text(LINE.replace("gh", "ignored"))  # ignored, still this run's
    (failures / "kept.jsonl").write_text(LINE + LINE.replace("gh", "appended"))  # changed
    later = time.time() + 60  # every file touched, as `cp -r` does: time cannot tell them apart
    for path in failures.iterdir():
        os.utime(path, (later, later))
    return root


def test_only_new_or_changed_files_are_read(tmp_path: Path) -> None:
    root = checkout(tmp_path)
    files, warnings, _ = find_files("data/failures/*.jsonl", root, changed_since="HEAD")
    assert warnings == []
    assert files == [
        "data/failures/batch-2026-03-02T00-00-00Z.jsonl",
        "data/failures/ignored-2026.jsonl",
        "data/failures/kept.jsonl",
    ]
    assert len(find_files("data/failures/*.jsonl", root)[0]) == 4  # without it, the history too


def test_a_workspace_inside_the_repository_selects_the_same(tmp_path: Path) -> None:
    root = checkout(tmp_path)
    files, _, _ = find_files("failures/*.jsonl", root / "data", changed_since="HEAD")
    assert files == ["failures/batch-2026-03-02T00-00-00Z.jsonl", "failures/ignored-2026.jsonl",
                     "failures/kept.jsonl"]  # fmt: skip


def test_nothing_new_is_a_warning_saying_so(tmp_path: Path) -> None:
    root = checkout(tmp_path)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "this run")
    files, warnings, _ = find_files("data/failures/batch-*.jsonl", root, changed_since="HEAD")
    assert files == []
    assert [w.message for w in warnings] == ["none of the 2 files that match is new or changed since HEAD"]


def test_without_git_nothing_is_read_rather_than_the_history(tmp_path: Path) -> None:
    (tmp_path / "r.jsonl").write_text(LINE)
    got = collect("*.jsonl", tmp_path, changed_since="HEAD")
    assert got.results == [] and got.files == []
    [warning] = got.warnings
    assert warning.message.startswith("changed-since HEAD: ")
    assert warning.message.endswith(
        "no file is read, so that the files of earlier runs are not taken for this one"
    )


def test_a_revision_that_is_no_commit_or_an_option_is_refused(tmp_path: Path) -> None:
    root = checkout(tmp_path)
    files, warnings, _ = find_files("data/failures/*.jsonl", root, changed_since="no-such-branch")
    assert files == [] and warnings[0].message.startswith("changed-since no-such-branch: ")
    files, warnings, _ = find_files(
        "data/failures/*.jsonl", root, changed_since="--output=x"
    )  # never handed to git
    assert files == [] and "'--output=x' is not a git revision" in warnings[0].message
    assert not (root / "x").exists()
