"""A PostgreSQL to benchmark against, found as the test suite finds one (tests/pg.py).

`$BATCH_METRICS_TEST_DATABASE_URL` when set; otherwise a throwaway cluster from Debian's binaries
on a free loopback port (fsync off: ours and the baselines share it, so the ratios stand), removed
afterwards. Each contender gets a fresh database of its own.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from tests.pg import URL_ENV, fresh_database, throwaway_cluster

__all__ = ["URL_ENV", "fresh_database", "server"]


@contextmanager
def server() -> Iterator[tuple[str | None, str]]:
    """Yield (admin URL, "") for a usable server, or (None, why there is none)."""
    url = os.environ.get(URL_ENV)
    if url:
        yield url, ""
        return
    with ExitStack() as stack:
        try:
            admin_url = stack.enter_context(throwaway_cluster())
        except (OSError, RuntimeError, subprocess.SubprocessError) as error:
            yield None, str(error)
            return
        yield admin_url, ""
