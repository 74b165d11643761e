"""Workload: what OIDC verification costs an upload once the issuer's keys are cached.

`batch-metrics serve` with a credentials file whose `[oidc]` section trusts an issuer on loopback
(HTTPS with a throwaway CA, an RS256 key: tests/oidc_issuer.py, as the tests use it). The same
small upload (100 results, a new batch each time) is sent again and again, by turns with the
server's static token (the baseline) and with a GitHub-style ID token, after one unmeasured upload
of each (the ID token's first use fetches the keys). Each figure is the median latency of one
upload on a kept-alive connection; the target is the difference: under 5 ms.
"""

from __future__ import annotations

import itertools
import json
import statistics
import time
from pathlib import Path

from bench.endpoint import Endpoint, serving
from bench.measure import BenchError, Row, Scale
from tests.oidc_issuer import Issuer, issuing, make_ca, new_key

AUDIENCE = "https://metrics.bench.invalid"
RESULTS = 100
TARGET_MS = 5.0


def _body(number: int) -> bytes:
    rows = [
        {"recipe_name": f"recipe-{index}", "ecosystem": "homebrew", "result": "passed",
         "duration_seconds": 1.5, "platform": "linux-debian-glibc-x86_64"}
        for index in range(RESULTS)
    ]  # fmt: skip
    return json.dumps({
        "batch_id": f"auth-{number}", "ecosystem": "homebrew", "started_at": "2026-02-19T14:31:25Z",
        "results": rows,
    }).encode()  # fmt: skip


def _credentials(issuer: Issuer) -> str:
    return (
        f'[oidc]\nissuer = "{issuer.url}"\naudience = "{AUDIENCE}"\nca_file = "{issuer.ca_file}"\n\n'
        '[[oidc.rule]]\nname = "bench"\nrepository_owner = "octo-org"\necosystems = ["*"]\n'
    )


def _latencies(endpoint: Endpoint, bearers: dict[str, str], uploads: int) -> dict[str, list[float]]:
    """Milliseconds per upload for each bearer, taking turns so that drift hits both alike."""
    seconds: dict[str, list[float]] = {name: [] for name in bearers}
    batches = itertools.count()
    connection = endpoint.connection()
    try:
        for number in range(-1, uploads):
            for name, bearer in bearers.items():
                body = _body(next(batches))
                began = time.perf_counter()
                status, answer = endpoint.post(connection, body, bearer)
                took = time.perf_counter() - began
                if status != 201:
                    raise BenchError(f"upload with the {name} answered {status}: {answer[:300]!r}")
                if number >= 0:  # the first round warms up (and fetches the issuer's keys)
                    seconds[name].append(took * 1000)
    finally:
        connection.close()
    return seconds


def run(scale: Scale, work: Path) -> list[Row]:
    uploads = max(20, scale.clients * scale.uploads_per_client)
    ca, ca_file = make_ca(work)
    with issuing(ca, ca_file, new_key()) as issuer:
        credentials = work / "auth-credentials.toml"
        credentials.write_text(_credentials(issuer))
        database = work / "auth.db"
        database.unlink(missing_ok=True)
        with serving(str(database), work / "auth-serve.log", "--credentials", str(credentials)) as endpoint:
            id_token = issuer.mint(AUDIENCE)
            ms = _latencies(endpoint, {"static token": endpoint.token, "OIDC token": id_token}, uploads)
        fetches = issuer.jwks_fetches()
    if fetches != 1:
        raise BenchError(f"the endpoint fetched the issuer's keys {fetches} times; once was expected")
    ours, baseline = statistics.median(ms["OIDC token"]), statistics.median(ms["static token"])
    cost = ours - baseline
    return [
        Row(
            f"auth, OIDC upload ({RESULTS} results, keys cached): latency vs a static token, "
            f"{uploads} uploads each",
            f"{ours:.2f} ms (+{cost:.2f} ms)",
            f"{baseline:.2f} ms (static token)",
            ours / baseline,
            f"< +{TARGET_MS:g} ms",
            cost < TARGET_MS,
            {"ours": ours, "baseline": baseline, "unit": "ms", "cost_ms": cost, "uploads": uploads},
        )
    ]
