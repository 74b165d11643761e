"""Which files a run reads: the result globs, resolved inside the workspace and nowhere else.

One glob per line, relative to the workspace: `**` crosses directories (not hidden ones, nor
symlinked ones), `{a,b}` expands, a leading `!` excludes, blank and `#` lines are ignored. An
absolute pattern inside the workspace is made relative; one outside it, or holding `..`, is
ignored with a warning, and so is a matched link that resolves outside. Files come sorted.

A run's own files (its payload, kept payloads) are told by what they are, not by their names:
`skip` sees each matched file, whatever path led to it (a linked folder, `./`, an absolute
pattern), and a file it names is left out with a note saying why. `changed_since` keeps only the
files new or changed since a git revision (collect.changes).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path, PurePath, PurePosixPath

from wcmatch import glob as wcglob

from batch_metrics.client.collect import changes
from batch_metrics.client.collect.rows import CollectWarning

_GLOB_FLAGS = wcglob.GLOBSTAR | wcglob.BRACE | wcglob.NODIR


def _inside(pattern: str, workspace: Path, root: Path) -> str | None:
    """The pattern relative to the workspace, or None when it could reach outside it."""
    path = PurePath(pattern)
    if path.is_absolute():
        for base in (workspace, root):
            if path.is_relative_to(base):
                pattern = path.relative_to(base).as_posix()
                break
        else:
            return None
    return None if ".." in PurePosixPath(pattern).parts else pattern


def find_files(
    patterns: str,
    workspace: Path,
    *,
    skip: Callable[[Path], str | None] | None = None,
    changed_since: str | None = None,
) -> tuple[list[str], list[CollectWarning], list[str]]:
    """Workspace-relative paths of the files the globs match (exclusions applied), sorted; warnings; and
    a note for each match left out because `skip` says what it is.

    With `changed_since` (a git revision), only those new or changed since it (collect.changes).
    """
    root = workspace.resolve()
    warnings: list[CollectWarning] = []
    include: list[str] = []
    exclude: list[str] = []
    for raw in patterns.splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        relative = _inside(pattern.removeprefix("!").strip(), workspace, root)
        if relative is None:
            warnings.append(
                CollectWarning("", None, f"pattern {pattern!r} reaches outside the workspace; ignored")
            )
        elif relative:
            (exclude if negated else include).append(relative)
    if not include:
        warnings.append(CollectWarning("", None, "no result patterns given; nothing to collect"))
        return [], warnings, []
    try:
        found = wcglob.glob(include, flags=_GLOB_FLAGS, root_dir=root, exclude=exclude)
    except Exception as error:  # wcmatch's PatternLimitException (braces expanding past 1000) is private
        warnings.append(CollectWarning("", None, f"patterns cannot be expanded: {error}; nothing collected"))
        return [], warnings, []
    files: list[str] = []
    skipped: list[str] = []
    for match in sorted({PurePath(path).as_posix() for path in found}):
        path = root / match
        if not path.resolve().is_relative_to(root):
            warnings.append(CollectWarning(match, None, "a link to outside the workspace; skipped"))
        elif path.is_file():
            what = skip(path) if skip else None
            if what:
                skipped.append(f"{match}: not read, it is {what}")
            else:
                files.append(match)
    if files and changed_since is not None:
        is_new, why = changes.changed_since(root, changed_since)
        if is_new is None:
            warnings.append(CollectWarning(
                "", None, f"changed-since {changed_since}: {why}; no file is read, so that the files of "
                "earlier runs are not taken for this one",
            ))  # fmt: skip
            return [], warnings, skipped
        matched = len(files)
        files = [path for path in files if is_new(path)]
        if not files:
            warnings.append(CollectWarning(
                "", None, f"none of the {matched} files that match is new or changed since {changed_since}"
            ))  # fmt: skip
            return files, warnings, skipped
    if not files:
        only = f": the {len(skipped)} that match are batch-metrics' own payloads" if skipped else ""
        warnings.append(CollectWarning("", None, f"no files match {', '.join(include)} in {workspace}{only}"))
    return files, warnings, skipped
