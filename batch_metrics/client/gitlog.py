"""A git history of committed result files, read once: its commits, the files each changed, their bytes.

`git log --raw -z` lists every commit's changes under the paths asked for, with the blob ids
before and after, in one process; `git cat-file --batch` then hands over every blob asked for
in another, fed by a thread so neither side waits for the other. Nothing here depends on the
working tree: a bare clone or a checkout at any commit reads the same.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

_NO_BLOB = "0" * 40


class GitError(Exception):
    """git refused: not a repository, an unknown revision, no git at all. The message says which."""


@dataclass(frozen=True)
class Change:
    status: str  # A (added), M (modified), ... as git names them
    path: str
    old: str | None  # the blob before, if there was one
    new: str


@dataclass
class Commit:
    sha: str
    time: int  # committer time, Unix seconds
    changes: list[Change] = field(default_factory=list)


def _git(repo: Path, *arguments: str) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(
            ["git", "-C", str(repo), *arguments],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
    except FileNotFoundError:
        raise GitError("git is not installed") from None


def commits(repo: Path, revisions: str | None, paths: Iterable[str] = ()) -> list[Commit]:
    """Commits oldest first, each with its added and modified files (deletions are left out)."""
    if revisions is not None and revisions.startswith("-"):
        raise GitError(f"{revisions!r} is not a revision range")
    process = _git(
        repo, "log", "--reverse", "--no-renames", "--raw", "--no-abbrev", "-z", "--format=%x00C %H %ct",
        *([revisions] if revisions else []), "--", *paths,
    )  # fmt: skip
    output, errors = process.communicate()
    if process.returncode:
        said = errors.decode(errors="replace").strip().splitlines()
        raise GitError(said[-1] if said else f"git log failed in {repo}")
    found: list[Commit] = []
    tokens = iter(output.split(b"\0"))
    for token in tokens:
        text = token.lstrip(b"\n")
        if text.startswith(b"C "):
            _, sha, time = text.decode().split(" ")
            found.append(Commit(sha, int(time)))
        elif text.startswith(b":") and found:
            *_modes, old, new, status = text.decode().split(" ")
            path = next(tokens).decode("utf-8", errors="surrogateescape")
            if status[0] in "AM" and new != _NO_BLOB:
                found[-1].changes.append(Change(status[0], path, None if old == _NO_BLOB else old, new))
    return found


def blobs(repo: Path, ids: list[str]) -> Iterator[bytes]:
    """The bytes of each blob, in the order asked for (one `git cat-file --batch` for all of them)."""
    if not ids:
        return
    process = _git(repo, "cat-file", "--batch")
    asked, out = process.stdin, process.stdout
    if asked is None or out is None:  # never: both are pipes
        raise GitError("git cat-file has no pipes")

    def ask() -> None:
        try:
            with asked:
                for blob in ids:
                    asked.write(f"{blob}\n".encode())
        except BrokenPipeError:  # git stopped early: the reading side says why
            pass

    asking = threading.Thread(target=ask, name="batch-metrics-cat-file", daemon=True)
    asking.start()
    try:
        for blob in ids:
            header = out.readline().split()
            if len(header) != 3:
                raise GitError(f"git cat-file has no blob {blob}")
            data = out.read(int(header[2]))
            out.read(1)  # the newline after each object
            yield data
    finally:  # done, or stopped early: git is not needed any more either way
        process.kill()
        asking.join()
        out.close()
        if process.stderr is not None:
            process.stderr.close()
        process.wait()
