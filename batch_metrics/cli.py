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
import io
import os
import sys
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from batch_metrics import TOKEN_ENV, __version__

if TYPE_CHECKING:
    from batch_metrics.github import Inputs, Reporter

ENDPOINT_ENV = "BATCH_METRICS_ENDPOINT"


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
    """The result globs plus an exclusion of our own payload file, which must never be read back in."""
    from wcmatch import glob as wcglob

    try:
        inside = payload_path.resolve().relative_to(workspace.resolve())
    except ValueError:
        return results
    return f"{results}\n!{wcglob.escape(inside.as_posix())}"


def _run_job(
    inputs: Inputs, problems: list[str], args: argparse.Namespace, env: Mapping[str, str], reporter: Reporter
) -> int:
    from batch_metrics.collectors import collect
    from batch_metrics.github import render_summary, write_outputs, write_summary
    from batch_metrics.payload import build_payload, write_payload

    token, token_problem = _read_token(args.token_file, env, inputs.token)
    reporter.mask(token)
    if token_problem:
        problems.append(token_problem)
    workspace = Path(args.workspace or env.get("GITHUB_WORKSPACE") or os.getcwd())
    payload_path = workspace / inputs.payload_path  # an absolute payload-path replaces the workspace
    for problem in problems:
        reporter.warning(problem)

    collection = collect(
        _results_without_payload(inputs.results, payload_path, workspace),
        workspace,
        fmt=inputs.format,
        ecosystem=inputs.ecosystem,
    )
    reporter.file_warnings(collection.warnings)
    try:
        payload = build_payload(
            collection,
            ecosystem=inputs.ecosystem,
            batch_id=inputs.batch_id,
            started_at=inputs.started_at,
            env=env,
        )
    except ValueError as error:
        problems.append(f"input started-at: {error}")
        reporter.warning(f"input started-at: {error}; using the earliest timestamp in the results")
        payload = build_payload(collection, ecosystem=inputs.ecosystem, batch_id=inputs.batch_id, env=env)
    body = write_payload(payload, payload_path)
    reporter.info(
        f"batch {payload['batch_id']}: {payload['total_recipes']} results ({payload['passed']} passed, "
        f"{payload['failed']} failed, {payload['skipped']} skipped) from {len(collection.files)} files; "
        f"payload written to {payload_path}"
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
            reporter.warning(
                f"upload failed: {detail}. Re-send it later with: batch-metrics upload {payload_path}"
            )
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
            "payload-path": _as_given(payload_path, workspace),
        },
        env,
    )
    if inputs.summary:
        notes = problems + [str(warning) for warning in collection.warnings]
        write_summary(render_summary(payload, status=status, detail=detail, warnings=notes), env)
    had_problem = status in ("failed", "no-results") or bool(problems) or bool(collection.warnings)
    return 1 if had_problem and inputs.fail_on_error else 0


def cmd_upload(args: argparse.Namespace) -> int:
    from pydantic_core import ValidationError

    from batch_metrics.github import Reporter
    from batch_metrics.upload import upload
    from batch_metrics.wire import PAYLOAD_VALIDATOR

    env = os.environ
    reporter = Reporter(env)
    failure = 1 if args.fail_on_error else 0
    token, token_problem = _read_token(args.token_file, env)
    reporter.mask(token)
    path = Path(args.payload)
    try:
        body = path.read_bytes()
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
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from batch_metrics.server import serve

    serve(
        host=args.host,
        port=args.port,
        db=args.db,
        token_file=args.token_file,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
    )
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from batch_metrics.server import migrate

    applied = migrate(args.db)
    print(f"applied migrations: {', '.join(map(str, applied))}" if applied else "the database is up to date")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from batch_metrics.openapi import write_openapi
    from batch_metrics.schema import write_schema, write_wire_schema

    if args.path:
        print(write_schema(Path(args.path)))
    else:
        print(write_schema())
        print(write_openapi())
        print(write_wire_schema())
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="batch-metrics", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"batch-metrics {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
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
    serve.add_argument("--max-body-mb", type=_positive, default=64.0, help="largest accepted body, in MiB")
    serve.set_defaults(handler=cmd_serve)

    mig = commands.add_parser("migrate", help="create or upgrade the database schema")
    mig.add_argument("--db", help=db_help)
    mig.set_defaults(handler=cmd_migrate)

    schema = commands.add_parser(
        "schema", help="write the payload JSON Schema, the OpenAPI document and batch_metrics/wire.json"
    )
    schema.add_argument("path", nargs="?", help="write only the payload schema, to this file")
    schema.set_defaults(handler=cmd_schema)
    return parser


def _tolerate_narrow_consoles() -> None:
    """A recipe name the console cannot encode (Windows runners default to cp1252) must not stop a run."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")


def main(argv: Sequence[str] | None = None) -> int:
    _tolerate_narrow_consoles()
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
