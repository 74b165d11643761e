"""The `batch-metrics` command: `run` (the action's job), `upload`, `serve`, `migrate`, `schema`.

Each subcommand imports only what it needs, so `run --dry-run` starts fast and
never loads the HTTP client, the server or a database driver.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from batch_metrics import TOKEN_ENV, __version__

if TYPE_CHECKING:
    from batch_metrics.github import Inputs, Reporter


def _debug(env: Mapping[str, str]) -> bool:
    return env.get("BATCH_METRICS_DEBUG") == "1" or env.get("RUNNER_DEBUG") == "1"


def _read_token(token_file: str | None, env: Mapping[str, str], action_token: str = "") -> str:
    if token_file:
        return Path(token_file).read_text(encoding="utf-8").strip()
    return action_token or env.get(TOKEN_ENV, "").strip()


def cmd_run(args: argparse.Namespace) -> int:
    from batch_metrics.github import Reporter, raw_input, read_inputs

    env = os.environ
    reporter = Reporter(env)
    # Mask before anything else is printed, so no later line can echo the token.
    reporter.mask(raw_input(env, "token") or env.get(TOKEN_ENV, ""))
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
    inputs, problems = read_inputs(env, {key: value for key, value in overrides.items() if value is not None})
    try:
        return _run_job(inputs, problems, args, env, reporter)
    except Exception as error:  # metrics must never break the pipeline they measure
        reporter.warning(f"batch-metrics stopped on an unexpected error: {type(error).__name__}: {error}")
        if _debug(env):
            traceback.print_exc()
        return 1 if inputs.fail_on_error else 0


def _run_job(
    inputs: Inputs, problems: list[str], args: argparse.Namespace, env: Mapping[str, str], reporter: Reporter
) -> int:
    from batch_metrics.collectors import collect
    from batch_metrics.github import render_summary, write_outputs, write_summary
    from batch_metrics.payload import build_payload, write_payload

    for problem in problems:
        reporter.warning(problem)
    token = _read_token(args.token_file, env, inputs.token)
    reporter.mask(token)
    workspace = Path(args.workspace or env.get("GITHUB_WORKSPACE") or os.getcwd())
    collection = collect(inputs.results, workspace, fmt=inputs.format, ecosystem=inputs.ecosystem)
    for warning in collection.warnings:
        reporter.warning(warning.message, file=warning.path or None, line=warning.line)
    try:
        payload = build_payload(
            collection,
            ecosystem=inputs.ecosystem,
            batch_id=inputs.batch_id,
            started_at=inputs.started_at,
            env=env,
        )
    except ValueError as error:
        problems.append(str(error))
        reporter.warning(f"{error}; using the earliest timestamp in the results instead")
        payload = build_payload(collection, ecosystem=inputs.ecosystem, batch_id=inputs.batch_id, env=env)
    payload_path = Path(inputs.payload_path)
    if not payload_path.is_absolute():
        payload_path = workspace / payload_path
    body = write_payload(payload, payload_path)
    reporter.info(
        f"batch {payload.batch_id}: {payload.total_recipes} results ({payload.passed} passed, "
        f"{payload.failed} failed, {payload.skipped} skipped) from {len(collection.files)} files; "
        f"payload written to {payload_path}"
    )

    batch_run_id = ""
    if not payload.results:
        status, detail = "no-results", "nothing collected; the payload was written but not uploaded"
        reporter.warning(detail)
    elif inputs.dry_run:
        status, detail = "dry-run", "dry run: payload written, not uploaded"
    elif not inputs.endpoint:
        status, detail = "failed", "no endpoint given: payload written, not uploaded"
        reporter.warning(detail)
    elif not token:
        status, detail = (
            "failed",
            f"no token given (input `token` or ${TOKEN_ENV}): payload written, not uploaded",
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
            total_timeout=max(inputs.timeout * (inputs.retries + 1), 60.0),
            log=reporter.info,
        )
        status, detail = result.status, result.message
        batch_run_id = "" if result.batch_run_id is None else str(result.batch_run_id)
        if result.status == "failed":
            reporter.warning(
                f"upload failed: {detail}. Re-send later with: batch-metrics upload {payload_path}"
            )
        else:
            reporter.info(detail)
    reporter.flush_hidden()

    write_outputs(
        {
            "status": status,
            "batch-run-id": batch_run_id,
            "total": str(payload.total_recipes),
            "passed": str(payload.passed),
            "failed": str(payload.failed),
            "skipped": str(payload.skipped),
            "success-rate": f"{payload.success_rate:g}",
            "payload-path": str(payload_path),
        },
        env,
    )
    if inputs.summary:
        warnings_text = problems + [str(warning) for warning in collection.warnings]
        write_summary(render_summary(payload, status=status, detail=detail, warnings=warnings_text), env)
    had_problem = status in ("failed", "no-results") or bool(problems) or bool(collection.warnings)
    return 1 if had_problem and inputs.fail_on_error else 0


def cmd_upload(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from batch_metrics.models import BatchPayload
    from batch_metrics.upload import upload

    env = os.environ
    path = Path(args.payload)
    failure = 1 if args.fail_on_error else 0
    try:
        body = path.read_bytes()
        BatchPayload.model_validate_json(body)
    except OSError as error:
        print(f"error: cannot read {path}: {error.strerror or error}", file=sys.stderr)
        return failure
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "payload"
        print(f"error: {path} is not a batch payload: {where}: {first['msg']}", file=sys.stderr)
        return failure
    endpoint = args.endpoint or env.get("BATCH_METRICS_ENDPOINT", "")
    token = _read_token(args.token_file, env)
    if not endpoint or not token:
        print(
            f"error: give --endpoint (or $BATCH_METRICS_ENDPOINT) and a token (${TOKEN_ENV} or --token-file)",
            file=sys.stderr,
        )
        return failure
    result = upload(
        body,
        endpoint=endpoint,
        token=token,
        timeout=args.timeout,
        retries=args.retries,
        total_timeout=max(args.timeout * (args.retries + 1), 60.0),
        log=lambda line: print(line, file=sys.stderr),
    )
    print(f"{result.status}: {result.message}")
    return failure if result.status == "failed" else 0


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
    print(f"applied migrations: {', '.join(map(str, applied))}" if applied else "database is up to date")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from batch_metrics.schema import write_schema

    print(write_schema(Path(args.path)) if args.path else write_schema())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="batch-metrics", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"batch-metrics {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="collect results, build the payload, upload it (the action's job)")
    run.add_argument("--endpoint", help="base URL of the metrics endpoint")
    run.add_argument("--results", help="newline-separated globs relative to the workspace (`!` excludes)")
    run.add_argument("--format", help="auto, payload, validation-results, ndjson, failure-records or junit")
    run.add_argument("--ecosystem", help="ecosystem for rows that do not name one")
    run.add_argument("--batch-id", help="batch id (default: unique per workflow run and attempt)")
    run.add_argument("--started-at", help="RFC 3339 start time (default: earliest timestamp seen)")
    run.add_argument("--payload-path", help="where to write the payload (relative to the workspace)")
    run.add_argument("--timeout", help="seconds per HTTP attempt")
    run.add_argument("--retries", help="retries after the first attempt")
    run.add_argument(
        "--workspace", help="directory the globs are relative to (default: $GITHUB_WORKSPACE or cwd)"
    )
    run.add_argument("--token-file", help=f"file holding the token (default: ${TOKEN_ENV})")
    run.add_argument("--dry-run", action="store_true", help="write the payload, do not upload")
    run.add_argument("--fail-on-error", action="store_true", help="exit 1 on any problem instead of 0")
    run.add_argument("--no-summary", action="store_true", help="do not write the job summary")
    run.set_defaults(handler=cmd_run)

    up = commands.add_parser("upload", help="re-send a saved payload file")
    up.add_argument("payload", help="payload JSON written by `run`")
    up.add_argument("--endpoint", help="base URL (default: $BATCH_METRICS_ENDPOINT)")
    up.add_argument("--token-file", help=f"file holding the token (default: ${TOKEN_ENV})")
    up.add_argument("--timeout", type=float, default=30.0)
    up.add_argument("--retries", type=int, default=3)
    up.add_argument("--fail-on-error", action="store_true", help="exit 1 when the upload fails")
    up.set_defaults(handler=cmd_upload)

    serve = commands.add_parser("serve", help="run the endpoint (SQLite or PostgreSQL)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8787)
    serve.add_argument(
        "--db", help="SQLite path or postgresql:// URL (default: $DATABASE_URL or ./batch-metrics.db)"
    )
    serve.add_argument("--token-file", help=f"file of accepted tokens, one per line (and/or ${TOKEN_ENV})")
    serve.add_argument("--max-body-mb", type=float, default=64.0, help="largest accepted body, in MiB")
    serve.set_defaults(handler=cmd_serve)

    mig = commands.add_parser("migrate", help="create or upgrade the database schema")
    mig.add_argument(
        "--db", help="SQLite path or postgresql:// URL (default: $DATABASE_URL or ./batch-metrics.db)"
    )
    mig.set_defaults(handler=cmd_migrate)

    schema = commands.add_parser("schema", help="write the payload JSON Schema")
    schema.add_argument("path", nargs="?", help="output file (default: schema/batch-payload.schema.json)")
    schema.set_defaults(handler=cmd_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
