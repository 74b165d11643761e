"""Only this run's files: the matched files that differ from a git revision, or that it does not hold.

A checkout keeps every result file ever committed beside the ones this run wrote (tsuku's
`data/failures/` holds thousands), and a job that copies files around (`cp -r`) gives old files
new modification times, so time cannot tell them apart; git can. `changed-since: HEAD` in a
job that checked out the commit it starts from keeps exactly the files the job wrote or changed:
untracked and ignored files, and tracked files whose content differs from that revision.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

_TIMEOUT = 120


def _git(workspace: Path, *arguments: str) -> bytes:
    return subprocess.run(
        ["git", "-C", str(workspace), *arguments], capture_output=True, check=True, timeout=_TIMEOUT
    ).stdout


def changed_since(workspace: Path, revision: str) -> tuple[Callable[[str], bool] | None, str | None]:
    """Whether a workspace-relative path is new or changed since `revision`; else None and why not."""
    if not revision or revision.startswith("-"):
        return None, f"{revision!r} is not a git revision"
    try:
        commit_id = _git(workspace, "rev-parse", "--verify", "--end-of-options", f"{revision}^{{commit}}")
        commit_id = commit_id.strip()
        commit = commit_id.decode()
        held = set(_git(workspace, "ls-tree", "-r", "-z", "--name-only", commit, "--", ".").split(b"\0"))
        changed = set(
            _git(workspace, "diff", "--name-only", "--relative", "--no-renames", "-z", commit, "--", ".")
            .split(b"\0")
        )  # fmt: skip
    except FileNotFoundError:
        return None, "git is not installed"
    except subprocess.CalledProcessError as error:
        said = error.stderr.decode(errors="replace").strip().splitlines()
        return None, said[-1][:200] if said else f"{revision!r} is not a commit in {workspace}"
    except subprocess.TimeoutExpired:
        return None, f"git did not answer within {_TIMEOUT} s"

    def is_new(path: str) -> bool:
        name = os.fsencode(path)
        return name in changed or name not in held

    return is_new, None
