"""Payload files on disk: written atomically, kept when unsent, handed to the workspace's owner, read safely.

The payload is written before any network and, when the upload fails, kept in
`batch-metrics-pending/` (one file per batch id) until `batch-metrics upload` sends it. Nothing
here replaces what is not a regular file, and nothing reads a FIFO or a device.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tempfile
from pathlib import Path

# Payloads that could not be sent wait here, beside the payload file, until `upload` sends them.
PENDING_DIR = "batch-metrics-pending"
# How every payload file batch-metrics writes begins (compact JSON, `batch_id` first).
_PAYLOAD_START = b'{"batch_id":'
# The file of what changed since the previous run (job.py) is the endpoint's answer: it begins so.
CHANGES_START = b'{"batch_run_id":'


class NotARegularFileError(OSError):
    """The payload path names something that is not a regular file, which a payload must not replace."""


def reason(error: OSError) -> str:
    """What the OS said, for a warning: `No space left on device`, else the error's own text."""
    return error.strerror or str(error)


def write_bytes(body: bytes, path: Path) -> None:
    """Write a payload's bytes atomically, creating or replacing a regular file only.

    The bytes go to a temporary file beside the target, are flushed to disk, and the
    file is renamed over the target: a reader (or a later `batch-metrics upload`)
    sees the old file or the whole new one, never half of it. A target that exists and
    is not a regular file (a device such as /dev/null, a FIFO, a directory, a socket)
    is left alone: the rename would replace it, so NotARegularFileError says so. Parent
    directories are created. The file is made world-readable, as the payload holds no
    secret and a container action writes it as root for later steps running as another user.
    """
    if path.exists() and not path.is_file():
        raise NotARegularFileError(f"{path} exists and is not a regular file; it is left as it is")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(body)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def read_regular_file(path: Path) -> bytes:
    """The file's bytes. A FIFO (whose read would wait for a writer) or a device such as /dev/zero
    (whose read never ends) is refused: opening does not block, and the type is checked before reading."""
    with open(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb") as stream:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            raise NotARegularFileError("not a regular file")
        return stream.read()


def identity(path: Path) -> tuple[int, int] | None:
    """The (device, inode) of the file `path` leads to (through links), None when there is none."""
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_dev, found.st_ino


def payload_identity(path: Path, start: bytes = _PAYLOAD_START) -> tuple[int, int] | None:
    """The (device, inode) of `path` when it is a regular file that begins as batch-metrics' payloads do
    (or its changes files: `CHANGES_START`); else None (no file, another kind of file, or a file of
    someone else's). FIFO-safe, like reads."""
    try:
        with open(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb") as stream:
            found = os.fstat(stream.fileno())
            if not stat.S_ISREG(found.st_mode) or stream.read(len(start)) != start:
                return None
    except OSError:
        return None
    return found.st_dev, found.st_ino


def pending_path(workspace: Path, batch_id: str) -> Path:
    """Where a payload that could not be sent is kept: one file per batch id, in the workspace.

    The name is the id with anything but letters, digits, `.`, `_` and `-` replaced, plus a
    short hash of the id itself, so two ids that read alike never share a file.
    """
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", batch_id)[:80].strip("._") or "batch"
    digest = hashlib.sha256(batch_id.encode("utf-8", errors="surrogatepass")).hexdigest()[:8]
    return workspace / PENDING_DIR / f"{safe}-{digest}.json"


def is_pending(path: Path) -> bool:
    """Whether `path` is a kept payload, which `upload` removes once the endpoint holds its batch."""
    return path.resolve().parent.name == PENDING_DIR


def as_given(path: Path, workspace: Path) -> str:
    """Workspace-relative when inside it: a Docker action's /github/workspace means nothing to later steps."""
    try:
        return path.relative_to(workspace).as_posix()
    except ValueError:
        return str(path)


def missing_directories(directory: Path, workspace: Path) -> list[Path]:
    """The directories between the workspace and `directory` that do not exist yet."""
    missing = []
    while directory != workspace and directory.is_relative_to(workspace) and not directory.exists():
        missing.append(directory)
        directory = directory.parent
    return missing


def give_to_workspace_owner(made: list[Path], workspace: Path) -> None:
    """A Docker action runs as root, the runner's later steps as the workspace's owner: what this
    process made in the workspace is handed to that owner, so those steps can re-send, replace or
    remove it (a kept payload is removed once sent)."""
    if getattr(os, "geteuid", None) is None or os.geteuid() != 0:
        return
    owner = workspace.stat()
    if owner.st_uid == 0:
        return
    for path in made:
        os.chown(path, owner.st_uid, owner.st_gid)
