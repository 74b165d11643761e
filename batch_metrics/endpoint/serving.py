"""Running the endpoint: Hypercorn on a socket bound first, deadlines for idle peers, a graceful stop.

Why Hypercorn (measured against uvicorn and granian, docs/benchmarks.md): it closes a connection
that has no request in progress after `idle_seconds` of wall-clock time, whether it sent nothing,
trickles a header a byte at a time, or idles between keep-alive requests; and it lets the app
answer first and read the rest of the body afterwards (edge.py), so every client reads a 401/413.

`serve()` checks what an operator can get wrong before anything is created, in this order: the
minute budgets and success targets (answers/targets.py), the port (bound here, then handed to
Hypercorn as `fd://`), the PostgreSQL driver, the SQLite path, the database itself. Each failure
is a `StartError` whose message is one line saying what to do; `batch-metrics serve` prints it and
exits 2.
"""

from __future__ import annotations

import asyncio
import errno
import importlib.util
import logging
import os
import resource
import signal
import socket
import threading
from datetime import timedelta
from pathlib import Path

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config

from batch_metrics import TOKEN_ENV
from batch_metrics.endpoint.access import (
    CREDENTIALS_ENV,
    TOKEN_FILE_ENV,
    CredentialsError,
    CredentialsFile,
    load_tokens,
)
from batch_metrics.endpoint.answers.targets import (
    MINUTES_BUDGET_ENV,
    SUCCESS_TARGET_ENV,
    TargetError,
    targets_from,
)
from batch_metrics.endpoint.app import create_app, database_target
from batch_metrics.endpoint.body import Limits
from batch_metrics.endpoint.edge import ASGIApp
from batch_metrics.endpoint.storage import SQLStorage, is_postgres_url, open_storage

log = logging.getLogger("batch_metrics.server")

IDLE_SECONDS = 15.0
DRAIN_SECONDS = 30.0
_NO_DRIVER = "--db postgresql://... needs the PostgreSQL driver: pip install 'batch-metrics[server,postgres]'"


class StartError(Exception):
    """The server cannot start for a reason the operator can fix; the message says how, in one line."""


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, before anything else is created (so a busy port leaves nothing behind)."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return socket.create_server((host, port), family=family, backlog=1024)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise StartError(
                f"port {port} on {host} is already in use: stop what listens there or choose another --port"
            ) from None
        raise StartError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None


def _check_sqlite_path(target: str) -> None:
    path = Path(target.removeprefix("sqlite:///"))
    if path.exists():
        if not os.access(path, os.R_OK | os.W_OK):
            raise StartError(
                f"cannot write the database {path}: give this user write access or pass another --db"
            )
        return
    directory = path.parent
    if not directory.is_dir() or not os.access(directory, os.W_OK | os.X_OK):
        raise StartError(
            f"cannot create the database {path}: {directory} is not a writable directory; "
            "create it or pass another --db"
        )


def open_database(target: str, pool_size: int) -> SQLStorage:
    """The migrated storage for `--db`/`$DATABASE_URL`, or a StartError saying what is wrong."""
    if is_postgres_url(target):
        if importlib.util.find_spec("psycopg") is None or importlib.util.find_spec("psycopg_pool") is None:
            raise StartError(_NO_DRIVER)
    else:
        _check_sqlite_path(target)
    try:
        storage = open_storage(target, pool_size=pool_size)
    except ImportError:  # the driver is there but cannot be loaded
        raise StartError(_NO_DRIVER) from None
    try:
        applied = storage.migrate()
    except storage.errors as error:
        storage.close()
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise StartError(f"cannot use the database: {reason}") from None
    log.info(
        "database %s, migrations applied: %s",
        "PostgreSQL" if is_postgres_url(target) else target,  # a URL may carry a password
        ", ".join(map(str, applied)) or "none needed",
    )
    return storage


def raise_file_limit() -> int:
    """Lift the soft limit on open files to the hard one: each idle client holds a descriptor, and the
    usual soft default (1024) would refuse connections long before memory or CPU run short."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        return wanted
    return soft


class Host:
    """Hypercorn serving `app` on a bound socket; `stop()`, from any thread, drains and ends `run()`."""

    def __init__(
        self,
        app: ASGIApp,
        sock: socket.socket,
        *,
        idle_seconds: float = IDLE_SECONDS,
        drain_seconds: float = DRAIN_SECONDS,
    ) -> None:
        self.app = app
        self.port: int = sock.getsockname()[1]
        self.config = Config()
        self.config.bind = [f"fd://{sock.detach()}"]  # Hypercorn owns the socket from here on
        # Wall-clock: a connection with no request in progress (idle, or still sending its header)
        # is closed this long after it connected or got its last answer, however it trickles.
        self.config.keep_alive_timeout = idle_seconds
        self.config.graceful_timeout = drain_seconds
        self.config.backlog = 1024
        self.config.accesslog = None  # edge.py writes the (escaped) access log
        self.config.errorlog = logging.getLogger("hypercorn.error")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._stop_requested = False

    def run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._ready.set()
        if self._stop_requested:  # stop() came first; checked after _ready so no stop() is missed
            self._stopping.set()
        await hypercorn_serve(self.app, self.config, shutdown_trigger=self._stopping.wait, mode="asgi")  # type: ignore[arg-type]

    def stop(self) -> None:
        """Stop accepting; requests in flight finish (up to `drain_seconds`), then `run()` returns."""
        self._stop_requested = True
        if self._ready.is_set() and self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)


def serve(
    host: str = "127.0.0.1",
    port: int = 8787,
    db: str | None = None,
    *,
    token_file: str | None = None,
    credentials_file: str | None = None,
    limits: Limits | None = None,
    public_read: bool = False,
    stale_after: timedelta | None = None,
    minutes_budget: str | None = None,
    success_target: str | None = None,
    compare_runs: bool = True,
    pool_size: int = 8,
    idle_seconds: float = IDLE_SECONDS,
    drain_seconds: float = DRAIN_SECONDS,
) -> None:
    """Serve until SIGTERM/SIGINT, then finish the requests in flight and return. StartError if it cannot.
    SIGHUP reloads the credentials file (which is also reloaded when it changes)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    limits = limits or Limits()
    try:  # the budgets and targets given, else their variables (answers/targets.py)
        targets = targets_from(
            minutes_budget or os.environ.get(MINUTES_BUDGET_ENV),
            success_target or os.environ.get(SUCCESS_TARGET_ENV),
        )
    except TargetError as error:
        raise StartError(str(error)) from None
    raise_file_limit()
    sock = bind(host, port)
    try:
        storage = open_database(database_target(db), pool_size)
    except StartError:
        sock.close()
        raise
    credentials_file = credentials_file or os.environ.get(CREDENTIALS_ENV)
    which = "token file"
    try:
        tokens = load_tokens(token_file or os.environ.get(TOKEN_FILE_ENV))
        which = f"credentials file {credentials_file}"
        credentials = CredentialsFile(credentials_file, tokens) if credentials_file else None
    except (OSError, CredentialsError) as error:
        storage.close()
        sock.close()
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise StartError(f"cannot use the {which}: {reason}") from None
    if not tokens and credentials is None:
        log.warning(
            "no token configured (set %s, a token file or a credentials file): every upload will get 401",
            TOKEN_ENV,
        )
    elif credentials is None:
        log.warning(
            "legacy mode: every token can read and write everything, and the dashboard takes one; give "
            "--credentials a file of read and write tokens (docs/endpoint.md#credentials)"
        )
    app = create_app(
        storage, tokens, credentials=credentials, limits=limits, public_read=public_read,
        stale_after=stale_after, targets=targets, compare_runs=compare_runs,
    )  # fmt: skip
    host_server = Host(app, sock, idle_seconds=idle_seconds, drain_seconds=drain_seconds)

    def stop(signum: int, _frame: object) -> None:
        log.info("signal %d: no longer accepting; finishing the requests in flight", signum)
        host_server.stop()

    def reload(signum: int, _frame: object) -> None:
        # Off the signal handler: it may interrupt a thread that holds the reload's lock.
        if credentials is None:
            log.info("signal %d: no credentials file to reload (--credentials)", signum)
            return
        threading.Thread(target=credentials.reload, args=("SIGHUP",), daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reload)
    log.info("serving on http://%s:%d", host if ":" not in host else f"[{host}]", host_server.port)
    try:
        host_server.run()
    finally:
        storage.close()
        log.info("stopped")
