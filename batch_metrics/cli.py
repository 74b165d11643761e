"""The `batch-metrics` command: `run` (the action's job), `upload`, `backfill`, `serve`, `token`, `migrate`,
`schema`.

Thin commands over one orchestrator each (`client.job`, `client.resend`, `endpoint.serving`),
each imported only by its own command: `run --dry-run` never loads the HTTP client, and no client
command loads the server or a database driver. `run` and `upload` exit 0 on every problem
(metrics must never break the pipeline they measure), 1 under `--fail-on-error`.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from batch_metrics import ENDPOINT_ENV, TOKEN_ENV, __version__
from batch_metrics.console import forgiving, tolerate_narrow_consoles

# "invalid choice: 'x' (choose from ...)", "invalid float value: 'x'": the part that repeats the value.
_QUOTED_VALUE = re.compile(r"(invalid [\w ]*?(?:value|choice)): '.*'(?= \(choose from|$)")


def _debug(env: Mapping[str, str]) -> bool:
    return env.get("BATCH_METRICS_DEBUG") == "1" or env.get("RUNNER_DEBUG") == "1"


def cmd_run(args: argparse.Namespace) -> int:
    from batch_metrics.client.actions import REQUEST_TOKEN_ENV, Reporter, raw_input, read_inputs, read_token
    from batch_metrics.client.job import Job

    env = os.environ
    reporter = Reporter(env)
    # Mask before anything else is printed, so no later line can show the token.
    reporter.mask(raw_input(env, "token"))
    reporter.mask(env.get(TOKEN_ENV, ""))
    reporter.mask(env.get(REQUEST_TOKEN_ENV, ""))
    fail_on_error = bool(args.fail_on_error)
    try:
        overrides = {
            "endpoint": args.endpoint,
            "auth": args.auth,
            "audience": args.audience,
            "results": args.results,
            "format": args.format,
            "ecosystem": args.ecosystem,
            "changed-since": args.changed_since,
            "ecosystem-map": args.ecosystem_map,
            "category-map": args.category_map,
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
        token, token_problem = read_token(args.token_file, env, inputs.token)
        reporter.mask(token)
        if token_problem:
            problems.append(token_problem)
        workspace = Path(args.workspace or env.get("GITHUB_WORKSPACE") or os.getcwd())
        job = Job(inputs, problems, token=token, workspace=workspace, env=env, reporter=reporter)
        return job.run()
    except Exception as error:  # metrics must never break the pipeline they measure
        reporter.warning(f"batch-metrics stopped on an unexpected error: {type(error).__name__}: {error}")
        if _debug(env):
            print(reporter.redact(traceback.format_exc()), file=sys.stderr)
        return 1 if fail_on_error else 0


def cmd_upload(args: argparse.Namespace) -> int:
    from batch_metrics.client.resend import resend

    return resend(
        Path(args.payload),
        endpoint=args.endpoint,
        token_file=args.token_file,
        auth=args.auth,
        audience=args.audience or "",
        timeout=args.timeout,
        retries=args.retries,
        fail_on_error=args.fail_on_error,
        env=os.environ,
    )


def cmd_backfill(args: argparse.Namespace) -> int:
    from batch_metrics.client.actions import Reporter, read_token
    from batch_metrics.client.backfill import DEFAULT_RESULTS, Settings, backfill
    from batch_metrics.client.gitlog import GitError
    from batch_metrics.client.mappings import ecosystem_map, parse_lines

    env = os.environ
    reporter = Reporter(env)
    token, token_problem = read_token(args.token_file, env)
    reporter.mask(token)
    endpoint = args.endpoint or env.get(ENDPOINT_ENV, "")
    if not args.dry_run and (token_problem or not endpoint or not token):
        wanted = (
            f"give --endpoint (or ${ENDPOINT_ENV}) and a token (${TOKEN_ENV} or --token-file), or --dry-run"
        )
        print(f"batch-metrics backfill: {token_problem or wanted}", file=sys.stderr)
        return 2
    ecosystems, problems = ecosystem_map(args.ecosystem_map or "", Path.cwd())
    categories, more = parse_lines(args.category_map or "", "category-map")
    for problem in problems + more:
        reporter.warning(problem)
    settings = Settings(
        repo=Path(args.repo), revisions=args.revisions, results=args.results or DEFAULT_RESULTS,
        endpoint=endpoint, token=token, ecosystem=args.ecosystem, ecosystem_map=ecosystems,
        category_map=categories, payload_dir=Path(args.payload_dir) if args.payload_dir else None,
        dry_run=args.dry_run, timeout=args.timeout, retries=args.retries,
    )  # fmt: skip
    began = time.monotonic()
    try:
        tally = backfill(settings, reporter)
    except GitError as error:
        print(f"batch-metrics backfill: {error}", file=sys.stderr)
        return 2
    print(f"backfill: {tally} in {time.monotonic() - began:.1f} s")
    troubled = tally.outcomes["failed"] or problems or more
    return 1 if troubled and args.fail_on_error else 0


def cmd_serve(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from batch_metrics.endpoint.body import MIB, Limits
    from batch_metrics.endpoint.serving import StartError, serve

    limits = Limits(
        max_body_bytes=int(args.max_body_mb * MIB),
        max_inflated_bytes=int(args.max_inflated_mb * MIB),
        max_in_flight_bytes=int(args.max_in_flight_mb * MIB),
    )
    try:
        serve(
            host=args.host, port=args.port, db=args.db, token_file=args.token_file,
            credentials_file=args.credentials, limits=limits, public_read=args.public_read,
            stale_after=None if args.stale_after is None else timedelta(hours=args.stale_after),
            minutes_budget=args.minutes_budget, success_target=args.success_target,
        )  # fmt: skip
    except StartError as error:  # one line saying what to do, not a traceback
        print(f"batch-metrics serve: {error}", file=sys.stderr)
        return 2
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from batch_metrics.endpoint.access.credentials import CredentialsError, token_entry
    from batch_metrics.endpoint.access.tokens import new_token

    if args.action == "new":
        token = new_token()
    else:  # hash: a token the clients already hold, read from stdin so it shows in no ps or history
        token = sys.stdin.readline().strip()
        if not token:
            print("batch-metrics token hash: give the token on stdin", file=sys.stderr)
            return 2
    can = [part.strip() for part in args.can.split(",") if part.strip()]
    ecosystems = [part.strip() for part in (args.ecosystems or "").split(",") if part.strip()]
    try:
        entry = token_entry(args.name, token, can, ecosystems)
    except CredentialsError as error:
        print(f"batch-metrics token {args.action}: {error}", file=sys.stderr)
        return 2
    if args.action == "new":
        print("The token, shown this once: give it to its clients as a secret (BATCH_METRICS_TOKEN).")
        print(token)
        print()
    print("Add this to the credentials file (the server reloads it by itself, or on SIGHUP):")
    print(entry, end="")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from batch_metrics.endpoint.app import migrate

    applied = migrate(args.db)
    print(f"applied migrations: {', '.join(map(str, applied))}" if applied else "the database is up to date")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from batch_metrics.documents import write_openapi, write_schema

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
    run.add_argument("--auth", help="auto (the token, else the job's OIDC ID token), token or oidc")
    run.add_argument("--audience", help="the OIDC token's audience (default: the endpoint's URL)")
    run.add_argument("--results", help="newline-separated globs relative to the workspace (`!` excludes)")
    run.add_argument(
        "--format", help="auto, payload, validation-results, ndjson, failure-records, junit, run-summary or "
        "sandbox-result",
    )  # fmt: skip
    run.add_argument("--ecosystem", help="ecosystem for rows that do not name one")
    run.add_argument("--changed-since", help="git revision: read only matched files new or changed since it")
    run.add_argument("--ecosystem-map", help="recipe=ecosystem lines, or a JSON file of them")
    run.add_argument("--category-map", help="from=to lines renaming error categories")
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
    up.add_argument("--auth", choices=("auto", "token", "oidc"), default="auto",
                    help="auto (the token, else the job's OIDC ID token), token or oidc")  # fmt: skip
    up.add_argument("--audience", help="the OIDC token's audience (default: the endpoint's URL)")
    up.add_argument("--timeout", type=_positive, default=30.0, help="seconds per HTTP attempt")
    up.add_argument("--retries", type=_count, default=3, help="retries after the first attempt")
    up.add_argument("--fail-on-error", action="store_true", help="exit 1 when the upload fails")
    up.set_defaults(handler=cmd_upload)

    back = commands.add_parser(
        "backfill", help="load a git history of committed batch data, one batch per batch commit",
        description="One batch per commit that adds a run summary, made of the files it added (or appended "
        "to) under --results; stored once however often it is run (docs/tsuku.md).",
    )  # fmt: skip
    back.add_argument("--repo", default=".", help="a git checkout or bare clone (default: .)")
    back.add_argument("--range", dest="revisions", metavar="REVISIONS",
                      help="the commits to read, e.g. v1..main (default: all of HEAD's history)")  # fmt: skip
    back.add_argument("--results", help="newline-separated globs of the batch files, relative to the "
                      "repository (default: data/metrics/** and data/failures/**)")  # fmt: skip
    back.add_argument("--endpoint", help=f"base URL (default: ${ENDPOINT_ENV})")
    back.add_argument("--token-file", help=f"file holding the token (default: ${TOKEN_ENV})")
    back.add_argument("--ecosystem", help="label of every batch, and ecosystem of rows that name none")
    back.add_argument("--ecosystem-map", help="recipe=ecosystem lines, or a JSON file of them")
    back.add_argument("--category-map", help="from=to lines renaming error categories")
    back.add_argument("--payload-dir", help="also write each batch's payload here, named by its commit")
    back.add_argument("--dry-run", action="store_true", help="build and count the batches, send nothing")
    back.add_argument("--timeout", type=_positive, default=30.0, help="seconds per HTTP attempt")
    back.add_argument("--retries", type=_count, default=3, help="retries after the first attempt")
    back.add_argument("--fail-on-error", action="store_true", help="exit 1 when a batch is not stored")
    back.set_defaults(handler=cmd_backfill)

    serve = commands.add_parser("serve", help="run the endpoint (SQLite or PostgreSQL)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8787)
    serve.add_argument("--db", help=db_help)
    serve.add_argument("--token-file", help=f"file of accepted tokens, one per line (and/or ${TOKEN_ENV}); "
                       "each may read and write everything")  # fmt: skip
    serve.add_argument("--credentials", metavar="FILE",
                       help="credentials file: read and write tokens by their hashes, OIDC issuer and "
                       "rules (default: $BATCH_METRICS_CREDENTIALS); reloaded when it changes and on "
                       "SIGHUP")  # fmt: skip
    serve.add_argument("--public-read", action="store_true",
                       help="let anyone read (the dashboard, its JSON, /metrics, /batch-runs); uploads still "
                       "need the token")  # fmt: skip
    serve.add_argument("--stale-after", type=_positive, metavar="HOURS",
                       help="flag an ecosystem stale after this long without a batch (default: twice the "
                       "median gap between its latest batches)")  # fmt: skip
    serve.add_argument("--minutes-budget", metavar="OS=MINUTES,...",
                       help="weekly runner-minute budgets against the last 7 days' minutes, in /metrics: "
                       "macos=1000,linux=5000 (default: $BATCH_METRICS_MINUTES_BUDGET)")  # fmt: skip
    serve.add_argument("--success-target", metavar="RATE[,ECOSYSTEM=RATE...]",
                       help="the success rate each ecosystem should keep, in /metrics for the alerts: "
                       "0.9,homebrew=0.95 (default: $BATCH_METRICS_SUCCESS_TARGET, else 0.9)")  # fmt: skip
    serve.add_argument("--max-body-mb", type=_positive, default=64.0, help="largest body on the wire, in MiB")
    serve.add_argument("--max-inflated-mb", type=_positive, default=256.0,
                       help="largest gzip body once inflated, in MiB (1M results are ~131 MiB)")  # fmt: skip
    serve.add_argument("--max-in-flight-mb", type=_positive, default=512.0,
                       help="body MiB all uploads may hold at once; more uploads wait")  # fmt: skip
    serve.set_defaults(handler=cmd_serve)

    token = commands.add_parser("token", help="make a token for the credentials file, or hash one")
    token_commands = token.add_subparsers(dest="action", required=True, parser_class=_Parser)
    for action, summary in (
        ("new", "make a token: print it once, and the [[token]] entry to add to the credentials file"),
        ("hash", "the [[token]] entry for a token read from stdin (one the clients already hold)"),
    ):
        made = token_commands.add_parser(action, help=summary, description=summary)
        made.add_argument("--name", required=True, help="its name: what each batch it uploads records")
        made.add_argument("--can", required=True, help="read, write, or read,write")
        made.add_argument("--ecosystems", help="for a writer: the patterns it may write (npm,homebrew*)")
        made.set_defaults(handler=cmd_token)

    mig = commands.add_parser("migrate", help="create or upgrade the database schema")
    mig.add_argument("--db", help=db_help)
    mig.set_defaults(handler=cmd_migrate)

    schema = commands.add_parser("schema", help="write the payload JSON Schema and the OpenAPI document")
    schema.add_argument("path", nargs="?", help="write only the payload schema, to this file")
    schema.set_defaults(handler=cmd_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    tolerate_narrow_consoles()
    sys.stdout = forgiving(sys.stdout)
    sys.stderr = forgiving(sys.stderr)
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
