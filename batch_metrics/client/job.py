"""The action's job (`batch-metrics run`): collect, build, write, upload, report; never break the pipeline.

`Job.run` works from parsed `Inputs` and returns the exit code: 0 on every problem, 1 for the same
problems under `fail-on-error`. The payload is written before any network and kept in
`batch-metrics-pending/` when its upload fails; a run that collected nothing (`no-results`)
writes its payload, sends no empty batch, and counts as a problem.

The run never reads its own payloads back, however the result globs reach them (a linked folder,
another spelling of the path): they are told by file identity, not by name. And it never writes
its payload over a result file it read: when `payload-path` is one, the payload goes beside it,
to `<name>.batch-metrics-payload.json`, and a warning says so.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batch_metrics import TOKEN_ENV
from batch_metrics.client.actions import Inputs, Reporter, write_outputs
from batch_metrics.client.collect import Collection, collect
from batch_metrics.client.disk import (
    CHANGES_START,
    PENDING_DIR,
    as_given,
    give_to_workspace_owner,
    identity,
    missing_directories,
    payload_identity,
    pending_path,
    reason,
    write_bytes,
)
from batch_metrics.client.mappings import ecosystem_map, parse_lines
from batch_metrics.client.payload import build_payload, payload_bytes, redact_messages
from batch_metrics.client.summary import render_summary, write_summary

if TYPE_CHECKING:
    from batch_metrics.models import BatchPayload

# Beside the payload: what changed since each ecosystem's previous run, as the endpoint answered.
CHANGES_NAME = "batch-metrics-changes.json"


@dataclass(frozen=True)
class Outcome:
    """What became of the batch: the `status` output, the words for it, the endpoint's id, and what changed
    since each of its ecosystems' previous run when the endpoint said (models.RunChanges as JSON values)."""

    status: str
    detail: str
    batch_run_id: str = ""
    changes: list[dict[str, Any]] | None = None


class Job:
    """One run of the action's job: what it was given, and the problems it has met so far."""

    def __init__(
        self, inputs: Inputs, problems: list[str], *, token: str, workspace: Path, env: Mapping[str, str],
        reporter: Reporter,
    ) -> None:  # fmt: skip
        self.inputs = inputs
        self.problems = problems
        self.token = token
        self.workspace = workspace
        self.env = env
        self.reporter = reporter
        self.payload_path = workspace / inputs.payload_path  # an absolute payload-path replaces the workspace
        self.read: set[tuple[int, int]] = set()  # the result files read, by (device, inode): never written

    def run(self) -> int:
        workspace_missing = not self.workspace.is_dir()
        if workspace_missing:
            self.problems.append(
                f"the workspace {self.workspace} is not a directory: nothing is collected there, and it is "
                "not created to hold the payload"
            )
        for problem in self.problems:
            self.reporter.warning(problem)
        collection = Collection() if workspace_missing else self.collect()
        for note in collection.skipped:
            self.reporter.info(note)
        self.keep_results(collection)
        payload = self.build(collection)  # merging and the run summary add their warnings
        self.reporter.file_warnings(collection.warnings)
        body = payload_bytes(payload)
        written = self.save(body, self.payload_path)
        self.reporter.info(
            f"batch {payload['batch_id']}: {payload['total_recipes']} results ({payload['passed']} passed, "
            f"{payload['failed']} failed, {payload['skipped']} skipped) from {len(collection.files)} files"
            + (f"; payload written to {self.payload_path}" if written else "")
        )
        outcome = self.send(payload, body)
        self.report(payload, outcome, collection, written)
        had_problem = outcome.status in ("failed", "no-results") or self.problems or collection.warnings
        return 1 if had_problem and self.inputs.fail_on_error else 0

    def warn(self, problem: str) -> None:
        self.problems.append(problem)
        self.reporter.warning(problem)

    def collect(self) -> Collection:
        """The result files, never a payload of ours: the payload file (or its stand-in) nor a kept one."""
        pending = (self.workspace / PENDING_DIR).resolve()
        own = {
            found: f"this run's payload file ({as_given(path, self.workspace)})"
            for path in (_beside(self.payload_path), self.payload_path)
            if (found := payload_identity(path))
        }
        changes_file = self.payload_path.with_name(CHANGES_NAME)
        if found := payload_identity(changes_file, CHANGES_START):
            own[found] = f"this run's changes file ({as_given(changes_file, self.workspace)})"

        def skip(path: Path) -> str | None:
            if path.resolve().is_relative_to(pending):
                return f"a payload kept for sending ({PENDING_DIR}/)"
            return own.get(identity(path) or (-1, -1))

        return collect(
            self.inputs.results, self.workspace, fmt=self.inputs.format, ecosystem=self.inputs.ecosystem,
            skip=skip, changed_since=self.inputs.changed_since,
        )  # fmt: skip

    def keep_results(self, collection: Collection) -> None:
        """A result file read is never overwritten: when payload-path is one, the payload goes beside it."""
        self.read = collection.identities
        given = self.payload_path
        if identity(given) not in self.read:
            return
        self.payload_path = _beside(given)
        self.warn(
            f"payload-path {as_given(given, self.workspace)} is one of the result files read, so it is left "
            f"as it is: the payload is written to {as_given(self.payload_path, self.workspace)} instead"
        )

    def build(self, collection: Collection) -> BatchPayload:
        inputs = self.inputs
        ecosystems, problems = ecosystem_map(inputs.ecosystem_map, self.workspace)
        categories, more = parse_lines(inputs.category_map, "category-map")
        for problem in problems + more:
            self.warn(problem)
        payload = build_payload(
            collection,
            ecosystem=inputs.ecosystem,
            batch_id=inputs.batch_id,
            started_at=inputs.started_at,
            env=self.env,
            ecosystem_map=ecosystems,
            category_map=categories,
        )
        redact_messages(payload["results"], self.reporter.redact)
        # Rows that name several ecosystems need no warning: the dashboard groups by the rows' own.
        if not inputs.ecosystem and payload["ecosystem"] == "unknown" and payload["results"]:
            self.warn(
                "input ecosystem is not set, so the batch is stored as 'unknown' (no row names one); "
                "set ecosystem to the one this batch validates"
            )
        return payload

    def send(self, payload: BatchPayload, body: bytes) -> Outcome:
        """Upload the batch when there is one, somewhere to send it and a token (or the job's OIDC ID
        token) to send it with."""
        inputs = self.inputs
        if not payload["results"]:
            return self._unsent(
                "no-results", "nothing was collected; the payload was written, an empty batch not sent"
            )
        if inputs.dry_run:
            return Outcome("dry-run", "dry run: the payload was written, not sent")
        if not inputs.endpoint:
            return self._unsent("failed", "no endpoint given: the payload was written, not sent")
        # Only a real upload loads requests.
        from batch_metrics.client.oidc import credential
        from batch_metrics.client.upload import total_time, upload

        given = credential(
            inputs.auth, self.token, endpoint=inputs.endpoint, audience=inputs.audience, env=self.env,
            timeout=inputs.timeout, mask=self.reporter.mask,
        )  # fmt: skip
        if given.problem:
            return self._unsent("failed", f"{given.problem}: the payload was written, not sent")
        if given.how == "oidc":
            self.reporter.info("uploading with the job's OIDC ID token: no secret involved")
        result = upload(
            body,
            endpoint=inputs.endpoint,
            token=given.bearer,
            timeout=inputs.timeout,
            retries=inputs.retries,
            total_timeout=total_time(inputs.timeout, inputs.retries),
            log=self.reporter.info,
        )
        outcome = Outcome(
            result.status,
            result.message,
            "" if result.batch_run_id is None else str(result.batch_run_id),
            result.changes,
        )
        if result.status != "failed":
            self.reporter.info(f"{outcome.status}: {outcome.detail}")
            return outcome
        kept = pending_path(self.workspace, payload["batch_id"])
        if self.save(body, kept):
            self.reporter.warning(
                f"upload failed: {outcome.detail}. The payload is kept in {as_given(kept, self.workspace)} "
                "until it is sent (a later run does not overwrite it); " + self._resend_hint(kept, given.how)
            )
        else:
            self.reporter.warning(f"upload failed: {outcome.detail}")
        return outcome

    def _unsent(self, status: str, detail: str) -> Outcome:
        self.reporter.warning(detail)
        return Outcome(status, detail)

    def _resend_hint(self, kept: Path, how: str) -> str:
        """A command that works as printed in the workspace, wherever this process ran (a container too)."""
        command = (
            f"batch-metrics upload {shlex.quote(as_given(kept, self.workspace))} "
            f"--endpoint {shlex.quote(self.inputs.endpoint)}"
        )
        if how == "oidc":
            if self.inputs.audience:
                command += f" --audience {shlex.quote(self.inputs.audience)}"
            return f"re-send it from the workspace in a job with `id-token: write`: {command}"
        return f"re-send it from the workspace, with the token in ${TOKEN_ENV}: {command}"

    def report(self, payload: BatchPayload, outcome: Outcome, collection: Collection, written: bool) -> None:
        """The step's outputs and, unless turned off, its job summary."""
        changes = outcome.changes
        changes_path = self.write_changes(payload, outcome) if changes is not None else None
        write_outputs(
            {
                "status": outcome.status,
                "batch-run-id": outcome.batch_run_id,
                "total": str(payload["total_recipes"]),
                "passed": str(payload["passed"]),
                "failed": str(payload["failed"]),
                "skipped": str(payload["skipped"]),
                "success-rate": f"{payload['success_rate']:g}",
                "payload-path": as_given(self.payload_path, self.workspace) if written else "",
                "new-failures": _total(changes, "new_failures"),
                "fixed": _total(changes, "fixed"),
                "changes-path": "" if changes_path is None else as_given(changes_path, self.workspace),
            },
            self.env,
        )
        if self.inputs.summary:
            notes = self.problems + [str(warning) for warning in collection.warnings]
            summary = render_summary(
                payload, status=outcome.status, detail=outcome.detail, warnings=notes,
                redact=self.reporter.redact, changes=changes,
            )  # fmt: skip
            write_summary(summary, self.env)

    def write_changes(self, payload: BatchPayload, outcome: Outcome) -> Path | None:
        """The endpoint's answer (what changed since each ecosystem's previous run) as a file beside the
        payload, for the workflow's later steps; its path, or None when it could not be written."""
        path = self.payload_path.with_name(CHANGES_NAME)
        answer = {"batch_run_id": int(outcome.batch_run_id or 0), "batch_id": payload["batch_id"],
                  "changes": outcome.changes}  # fmt: skip
        return path if self.save(json.dumps(answer).encode(), path) else None

    def save(self, body: bytes, path: Path) -> bool:
        """Write the payload to `path`; a warning and False when it cannot be written.

        Nothing is written inside a workspace that does not exist (already warned about): creating
        it would hide a wrong GITHUB_WORKSPACE or --workspace.
        """
        workspace = self.workspace
        if path.is_relative_to(workspace) and not workspace.is_dir():
            return False
        if identity(path) in self.read:
            self.warn(f"the payload was not written to {as_given(path, workspace)}: it is a result file read")
            return False
        made = [path, *missing_directories(path.parent, workspace)] if path.is_relative_to(workspace) else []
        try:
            write_bytes(body, path)
        except OSError as error:
            self.warn(f"the payload was not written to {as_given(path, workspace)}: {reason(error)}")
            return False
        try:
            give_to_workspace_owner(made, workspace)
        except OSError as error:
            self.warn(f"{as_given(path, workspace)} is written, but stays owned by root: {reason(error)}")
        return True


def _total(changes: list[dict[str, Any]] | None, count: str) -> str:
    """A count summed over the ecosystems' comparisons; empty when the endpoint said none (the Worker)."""
    return "" if changes is None else str(sum(change["counts"][count] for change in changes))


def _beside(path: Path) -> Path:
    """Where the payload goes when `path` is a result file: `<name>.batch-metrics-payload.json` beside it."""
    return path.with_name(f"{path.stem}.batch-metrics-payload.json")
