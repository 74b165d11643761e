"""The `batch-metrics` command: `run` (the action's job), `upload`, `serve`, `migrate`, `schema`.

Each subcommand imports only what it needs: `run --dry-run` never loads the
HTTP client, and no client command loads the server or a database driver.

Exit codes of `run` and `upload`: 0 on every problem (metrics must never
break the pipeline they measure), 1 for the same problems with
`--fail-on-error` / `fail-on-error: true`. A run that collected nothing
(`no-results`) writes its payload, does not upload an empty batch, and counts
as a problem.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import os
import re
import shlex
import stat
import sys
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO, cast

from batch_metrics import TOKEN_ENV, __version__

if TYPE_CHECKING:
    from batch_metrics.github import Inputs, Reporter

ENDPOINT_ENV = "BATCH_METRICS_ENDPOINT"
# Payloads that could not be sent wait here, beside the payload file, until `upload` sends them.
PENDING_DIR = "batch-metrics-pending"
# "invalid choice: 'x' (choose from ...)", "invalid float value: 'x'": the part that repeats the value.
_QUOTED_VALUE = re.compile(r"(invalid [\w ]*?(?:value|choice)): '.*'(?= \(choose from|$)")


def _debug(env: Mapping[str, str]) -> bool:
    return env.get("BATCH_METRICS_DEBUG") == "1" or env.get("RUNNER_DEBUG") == "1"


def _total_time(timeout: float, retries: int) -> float:
    """Every attempt may use its whole timeout, plus room for the backoff waits between them."""
    return timeout * (retries + 1) + 60.0


def _read_token(token_file: str | None, env: Mapping[str, str], given: str = "") -> tuple[str, str | None]:
    """The token from --token-file, else the action input, else $BATCH_METRICS_TOKEN; and a problem."""
    if token_file:
        try:
            return Path(token_file).read_text(encoding="utf-8").strip(), None
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            return "", f"cannot read the token file {token_file}: {reason}"
    return (given or env.get(TOKEN_ENV, "")).strip(), None


def cmd_run(args: argparse.Namespace) -> int:
    from batch_metrics.github import Reporter, raw_input, read_inputs

    env = os.environ
    reporter = Reporter(env)
    # Mask before anything else is printed, so no later line can show the token.
    reporter.mask(raw_input(env, "token"))
    reporter.mask(env.get(TOKEN_ENV, ""))
    fail_on_error = bool(args.fail_on_error)
    try:
        overrides = {
            "endpoint": args.endpoint,
            "results": args.results,
            "format": args.format,
            "ecosystem": args.ecosystem,
            "batch-id": args.batch_id,
            "started-at": args.started_at,
            "payload-path": args.payload_path,
            "timeout": args.timeout,
            "retries": args.retries,
            "dry-run": "true" if args.dry_run else None,
            "fail-on-error": "true" if args.fail_on_error else None,
            "summary": "false" if args.no_summary else None,
        }
        inputs, problems = read_inputs(
            env, {name: value for name, value in overrides.items() if value is not None}
        )
        fail_on_error = inputs.fail_on_error
        return _run_job(inputs, problems, args, env, reporter)
    except Exception as error:  # metrics must never break the pipeline they measure
        reporter.warning(f"batch-metrics stopped on an unexpected error: {type(error).__name__}: {error}")
        if _debug(env):
            print(reporter.redact(traceback.format_exc()), file=sys.stderr)
        return 1 if fail_on_error else 0


def _as_given(path: Path, workspace: Path) -> str:
    """Workspace-relative when inside it: a Docker action's /github/workspace means nothing to later steps."""
    try:
        return path.relative_to(workspace).as_posix()
    except ValueError:
        return str(path)


def _results_without_payload(results: str, payload_path: Path, workspace: Path) -> str:
    """The result globs plus exclusions of our own payload file and kept payloads, never to be read back."""
    from wcmatch import glob as wcglob

    results = f"{results}\n!{PENDING_DIR}/**"
    try:
        inside = payload_path.resolve().relative_to(workspace.resolve())
    except ValueError:
        return results
    return f"{results}\n!{wcglob.escape(inside.as_posix())}"


def pending_path(workspace: Path, batch_id: str) -> Path:
    """Where a payload that could not be sent is kept: one file per batch id, in the workspace.

    The name is the id with anything but letters, digits, `.`, `_` and `-` replaced, plus a
    short hash of the id itself, so two ids that read alike never share a file.
    """
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", batch_id)[:80].strip("._") or "batch"
    digest = hashlib.sha256(batch_id.encode("utf-8", errors="surrogatepass")).hexdigest()[:8]
    return workspace / PENDING_DIR / f"{safe}-{digest}.json"


def _resend_hint(kept: Path, workspace: Path, endpoint: str) -> str:
    """A command that works as printed in the workspace, wherever this process ran (a container too)."""
    command = (
        f"batch-metrics upload {shlex.quote(_as_given(kept, workspace))} --endpoint {shlex.quote(endpoint)}"
    )
    return f"re-send it from the workspace, with the token in ${TOKEN_ENV}: {command}"


def _run_job(
    inputs: Inputs, problems: list[str], args: argparse.Namespace, env: Mapping[str, str], reporter: Reporter
) -> int:
    from batch_metrics.collectors import Collection, collect
    from batch_metrics.github import render_summary, write_outputs, write_summary
    from batch_metrics.payload import build_payload, payload_bytes, redact_messages

    token, token_problem = _read_token(args.token_file, env, inputs.token)
    reporter.mask(token)
    if token_problem:
        problems.append(token_problem)
    workspace = Path(args.workspace or env.get("GITHUB_WORKSPACE") or os.getcwd())
    payload_path = workspace / inputs.payload_path  # an absolute payload-path replaces the workspace
    workspace_missing = not workspace.is_dir()
    if workspace_missing:
        problems.append(
            f"the workspace {workspace} is not a directory: nothing is collected there, and it is not "
            "created to hold the payload"
        )
    for problem in problems:
        reporter.warning(problem)

    collection = (
        Collection()
        if workspace_missing
        else collect(
            _results_without_payload(inputs.results, payload_path, workspace),
            workspace,
            fmt=inputs.format,
            ecosystem=inputs.ecosystem,
        )
    )
    reporter.file_warnings(collection.warnings)
    payload = build_payload(
        collection,
        ecosystem=inputs.ecosystem,
        batch_id=inputs.batch_id,
        started_at=inputs.started_at,
        env=env,
    )
    redact_messages(payload["results"], reporter.redact)
    if not inputs.ecosystem and payload["ecosystem"] in ("mixed", "unknown") and payload["results"]:
        unset = (
            f"input ecosystem is not set, so the batch is stored as {payload['ecosystem']!r} "
            + (
                "(its rows name several ecosystems)"
                if payload["ecosystem"] == "mixed"
                else "(no row names one)"
            )
            + "; set ecosystem to the one this batch validates"
        )
        problems.append(unset)
        reporter.warning(unset)

    body = payload_bytes(payload)
    written = _save(body, payload_path, workspace, reporter, problems)
    reporter.info(
        f"batch {payload['batch_id']}: {payload['total_recipes']} results ({payload['passed']} passed, "
        f"{payload['failed']} failed, {payload['skipped']} skipped) from {len(collection.files)} files"
        + (f"; payload written to {payload_path}" if written else "")
    )

    batch_run_id = ""
    if not payload["results"]:
        status, detail = (
            "no-results",
            "nothing was collected; the payload was written, an empty batch not sent",
        )
        reporter.warning(detail)
    elif inputs.dry_run:
        status, detail = "dry-run", "dry run: the payload was written, not sent"
    elif not inputs.endpoint:
        status, detail = "failed", "no endpoint given: the payload was written, not sent"
        reporter.warning(detail)
    elif not token:
        status, detail = (
            "failed",
            f"no token given (input token or ${TOKEN_ENV}): the payload was written, not sent",
        )
        reporter.warning(detail)
    else:
        from batch_metrics.upload import upload

        result = upload(
            body,
            endpoint=inputs.endpoint,
            token=token,
            timeout=inputs.timeout,
            retries=inputs.retries,
            total_timeout=_total_time(inputs.timeout, inputs.retries),
            log=reporter.info,
        )
        status, detail = result.status, result.message
        batch_run_id = "" if result.batch_run_id is None else str(result.batch_run_id)
        if result.status == "failed":
            kept = pending_path(workspace, payload["batch_id"])
            if _save(body, kept, workspace, reporter, problems):
                reporter.warning(
                    f"upload failed: {detail}. The payload is kept in {_as_given(kept, workspace)} until it "
                    f"is sent (a later run does not overwrite it); "
                    + _resend_hint(kept, workspace, inputs.endpoint)
                )
            else:
                reporter.warning(f"upload failed: {detail}")
        else:
            reporter.info(f"{status}: {detail}")

    write_outputs(
        {
            "status": status,
            "batch-run-id": batch_run_id,
            "total": str(payload["total_recipes"]),
            "passed": str(payload["passed"]),
            "failed": str(payload["failed"]),
            "skipped": str(payload["skipped"]),
            "success-rate": f"{payload['success_rate']:g}",
            "payload-path": _as_given(payload_path, workspace) if written else "",
        },
        env,
    )
    if inputs.summary:
        notes = problems + [str(warning) for warning in collection.warnings]
        summary = render_summary(
            payload, status=status, detail=detail, warnings=notes, redact=reporter.redact
        )
        write_summary(summary, env)
    had_problem = status in ("failed", "no-results") or bool(problems) or bool(collection.warnings)
    return 1 if had_problem and inputs.fail_on_error else 0


def _save(body: bytes, path: Path, workspace: Path, reporter: Reporter, problems: list[str]) -> bool:
    """Write the payload to `path`; a warning and False when it cannot be written.

    Nothing is written inside a workspace that does not exist (already warned about): creating
    it would hide a wrong GITHUB_WORKSPACE or --workspace.
    """
    from batch_metrics.payload import write_bytes

    if path.is_relative_to(workspace) and not workspace.is_dir():
        return False
    made = [path, *_missing_directories(path.parent, workspace)] if path.is_relative_to(workspace) else []
    try:
        write_bytes(body, path)
    except OSError as error:
        problem = f"the payload was not written to {_as_given(path, workspace)}: {error.strerror or error}"
        problems.append(problem)
        reporter.warning(problem)
        return False
    try:
        _give_to_workspace_owner(made, workspace)
    except OSError as error:
        reason = error.strerror or error
        problem = f"{_as_given(path, workspace)} is written, but stays owned by root: {reason}"
        problems.append(problem)
        reporter.warning(problem)
    return True


def _missing_directories(directory: Path, workspace: Path) -> list[Path]:
    """The directories between the workspace and `directory` that do not exist yet."""
    missing = []
    while directory != workspace and directory.is_relative_to(workspace) and not directory.exists():
        missing.append(directory)
        directory = directory.parent
    return missing


def _give_to_workspace_owner(made: list[Path], workspace: Path) -> None:
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


def _read_regular_file(path: Path) -> bytes:
    """The file's bytes. A FIFO (whose read would wait for a writer) or a device such as /dev/zero
    (whose read never ends) is refused: opening does not block, and the type is checked before reading."""
    from batch_metrics.payload import NotARegularFileError

    with open(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb") as stream:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            raise NotARegularFileError("not a regular file")
        return stream.read()


def cmd_upload(args: argparse.Namespace) -> int:
    from pydantic_core import ValidationError

    from batch_metrics.github import Reporter
    from batch_metrics.models import PAYLOAD_VALIDATOR
    from batch_metrics.upload import upload

    env = os.environ
    reporter = Reporter(env)
    failure = 1 if args.fail_on_error else 0
    token, token_problem = _read_token(args.token_file, env)
    reporter.mask(token)
    path = Path(args.payload)
    try:
        body = _read_regular_file(path)
        PAYLOAD_VALIDATOR.validate_json(body)
    except OSError as error:
        reporter.warning(f"cannot read {path}: {error.strerror or error}")
        return failure
    except ValidationError as error:
        first, more = error.errors()[0], error.error_count() - 1
        where = ".".join(str(part) for part in first["loc"]) or "the document"
        also = f" (and {more} more problems)" if more else ""
        reporter.warning(f"{path} is not a batch payload: {where}: {first['msg']}{also}")
        return failure
    endpoint = args.endpoint or env.get(ENDPOINT_ENV, "")
    if token_problem or not endpoint or not token:
        reporter.warning(
            token_problem
            or f"give --endpoint (or ${ENDPOINT_ENV}) and a token (${TOKEN_ENV} or --token-file)"
        )
        return failure
    result = upload(
        body,
        endpoint=endpoint,
        token=token,
        timeout=args.timeout,
        retries=args.retries,
        total_timeout=_total_time(args.timeout, args.retries),
        log=reporter.info,
    )
    if result.status == "failed":
        reporter.warning(f"upload of {path} failed: {result.message}")
        return failure
    print(f"{result.status}: {result.message}")
    if path.resolve().parent.name == PENDING_DIR:
        # A kept payload has done its job once the endpoint holds the batch.
        try:
            path.unlink(missing_ok=True)
        except OSError as error:  # e.g. kept by a container action running as root
            reporter.warning(
                f"the batch is stored, but {path} could not be removed: {error.strerror or error}"
            )
        else:
            print(f"removed {path}: the endpoint has this batch")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from batch_metrics.body import MIB, Limits
    from batch_metrics.serving import StartError, serve

    limits = Limits(
        max_body_bytes=int(args.max_body_mb * MIB),
        max_inflated_bytes=int(args.max_inflated_mb * MIB),
        max_in_flight_bytes=int(args.max_in_flight_mb * MIB),
    )
    try:
        serve(
            host=args.host, port=args.port, db=args.db, token_file=args.token_file, limits=limits,
            public_read=args.public_read,
            stale_after=None if args.stale_after is None else timedelta(hours=args.stale_after),
        )  # fmt: skip
    except StartError as error:  # one line saying what to do, not a traceback
        print(f"batch-metrics serve: {error}", file=sys.stderr)
        return 2
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from batch_metrics.server import migrate

    applied = migrate(args.db)
    print(f"applied migrations: {', '.join(map(str, applied))}" if applied else "the database is up to date")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from batch_metrics.openapi import write_openapi
    from batch_metrics.schema import write_schema

    if args.path:
        print(write_schema(Path(args.path)))
    else:
        print(write_schema())
        print(write_openapi())
    return 0


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


class _RefuseToken(argparse.Action):
    """`--token` in any form is an error that never repeats the value it was given."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        parser.error(
            f"--token is not accepted (a flag shows in ps and shell history): pass the token in "
            f"${TOKEN_ENV} or --token-file"
        )


class _Parser(argparse.ArgumentParser):
    """Every parser, sub-parsers included: no prefix matching (argparse would take `--token` for
    `--token-file`, then print the token in its complaint), and `--token` refused."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**{"allow_abbrev": False, **kwargs})
        self.add_argument("--token", nargs="?", action=_RefuseToken, help=argparse.SUPPRESS)

    def parse_args(  # type: ignore[override]  # the one form this program calls
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        """As argparse's, but an unrecognised argument is named without its value, which may be a secret."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            names = [extra.split("=", 1)[0] for extra in extras if extra.startswith("-")]
            self.error(f"unrecognized arguments: {' '.join(names) or '(values not shown)'}")
        return parsed

    def error(self, message: str) -> NoReturn:
        """argparse's complaint without the rejected value it quotes: a secret typed in the wrong place."""
        super().error(_QUOTED_VALUE.sub(r"\1", message))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="batch-metrics", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"batch-metrics {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    db_help = "SQLite path or postgresql:// URL (default: $DATABASE_URL, else ./batch-metrics.db)"

    run = commands.add_parser(
        "run",
        help="collect results, build and write the payload, upload it (the action's job)",
        description="Inputs come from INPUT_* variables as under GitHub Actions; flags override them. "
        f"The token comes from INPUT_TOKEN, --token-file or ${TOKEN_ENV}, never from a flag.",
    )
    # Flags stay strings: read_inputs checks them like the action's inputs, with the same messages.
    run.add_argument("--endpoint", help="base URL of the metrics endpoint")
    run.add_argument("--results", help="newline-separated globs relative to the workspace (`!` excludes)")
    run.add_argument("--format", help="auto, payload, validation-results, ndjson, failure-records or junit")
    run.add_argument("--ecosystem", help="ecosystem for rows that do not name one")
    run.add_argument("--batch-id", help="batch id (default: unique per workflow run and attempt)")
    run.add_argument("--started-at", help="RFC 3339 start time (default: earliest timestamp seen)")
    run.add_argument("--payload-path", help="where to write the payload (relative to the workspace)")
    run.add_argument("--timeout", help="seconds per HTTP attempt (default 30)")
    run.add_argument("--retries", help="retries after the first attempt (default 3)")
    run.add_argument(
        "--workspace", help="directory the globs are relative to (default: $GITHUB_WORKSPACE or cwd)"
    )
    run.add_argument("--token-file", help=f"file holding the token (default: INPUT_TOKEN, then ${TOKEN_ENV})")
    run.add_argument("--dry-run", action="store_true", help="write the payload, do not upload")
    run.add_argument("--fail-on-error", action="store_true", help="exit 1 on any problem instead of 0")
    run.add_argument("--no-summary", action="store_true", help="do not write the job summary")
    run.set_defaults(handler=cmd_run)

    up = commands.add_parser("upload", help="re-send a saved payload file byte for byte")
    up.add_argument("payload", help="payload JSON written by `run`")
    up.add_argument("--endpoint", help=f"base URL (default: ${ENDPOINT_ENV})")
    up.add_argument("--token-file", help=f"file holding the token (default: ${TOKEN_ENV})")
    up.add_argument("--timeout", type=_positive, default=30.0, help="seconds per HTTP attempt")
    up.add_argument("--retries", type=_count, default=3, help="retries after the first attempt")
    up.add_argument("--fail-on-error", action="store_true", help="exit 1 when the upload fails")
    up.set_defaults(handler=cmd_upload)

    serve = commands.add_parser("serve", help="run the endpoint (SQLite or PostgreSQL)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8787)
    serve.add_argument("--db", help=db_help)
    serve.add_argument("--token-file", help=f"file of accepted tokens, one per line (and/or ${TOKEN_ENV})")
    serve.add_argument("--public-read", action="store_true",
                       help="let anyone read (the dashboard, its JSON, /metrics, /batch-runs); uploads still "
                       "need the token")  # fmt: skip
    serve.add_argument("--stale-after", type=_positive, metavar="HOURS",
                       help="flag an ecosystem stale after this long without a batch (default: twice the "
                       "median gap between its latest batches)")  # fmt: skip
    serve.add_argument("--max-body-mb", type=_positive, default=64.0, help="largest body on the wire, in MiB")
    serve.add_argument("--max-inflated-mb", type=_positive, default=256.0,
                       help="largest gzip body once inflated, in MiB (1M results are ~131 MiB)")  # fmt: skip
    serve.add_argument("--max-in-flight-mb", type=_positive, default=512.0,
                       help="body MiB all uploads may hold at once; more uploads wait")  # fmt: skip
    serve.set_defaults(handler=cmd_serve)

    mig = commands.add_parser("migrate", help="create or upgrade the database schema")
    mig.add_argument("--db", help=db_help)
    mig.set_defaults(handler=cmd_migrate)

    schema = commands.add_parser("schema", help="write the payload JSON Schema and the OpenAPI document")
    schema.add_argument("path", nargs="?", help="write only the payload schema, to this file")
    schema.set_defaults(handler=cmd_schema)
    return parser


def _tolerate_narrow_consoles() -> None:
    """A recipe name the console cannot encode (Windows runners default to cp1252) must not stop a run."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")


class _ForgivingStream(io.TextIOBase):
    """stdout or stderr that a closed pipe (`| head -0`) or a full disk (/dev/full) cannot break.

    Each write is flushed at once, so a failure shows up here rather than at exit; after one, the
    file descriptor is pointed at /dev/null, so neither later writes nor the interpreter's final
    flush raise (the recipe in the `signal` module's notes on SIGPIPE). The log is lost; the job,
    whose results are in the payload and $GITHUB_OUTPUT, goes on.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def writable(self) -> bool:
        return True

    # What code that inspects the console asks of it (the logging handlers, a server's banner).
    @property
    def encoding(self) -> str:  # type: ignore[override]  # TextIOBase declares it as an attribute
        return self.stream.encoding

    def fileno(self) -> int:
        return self.stream.fileno()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def write(self, text: str) -> int:
        with contextlib.suppress(ValueError):  # ValueError: the stream was closed outright
            try:
                self.stream.write(text)
                self.stream.flush()
            except OSError:
                self._to_devnull()
        return len(text)

    def flush(self) -> None:
        with contextlib.suppress(ValueError):
            try:
                self.stream.flush()
            except OSError:
                self._to_devnull()

    def _to_devnull(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self.stream.fileno())
        os.close(devnull)


def _forgiving(stream: TextIO | None) -> TextIO:
    """`stream` made forgiving; Python gives None for a descriptor closed from the start (`>&-`)."""
    return cast(TextIO, _ForgivingStream(stream or open(os.devnull, "w", encoding="utf-8")))


def main(argv: Sequence[str] | None = None) -> int:
    _tolerate_narrow_consoles()
    sys.stdout = _forgiving(sys.stdout)
    sys.stderr = _forgiving(sys.stderr)
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
