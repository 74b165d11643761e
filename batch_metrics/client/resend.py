"""`batch-metrics upload`: send a saved payload file again, byte for byte, with the same Idempotency-Key.

A payload kept in `batch-metrics-pending/` is removed once the endpoint holds its batch. Like
the job, it exits 0 on every problem unless `fail_on_error`. It authenticates as the job does
(client/oidc.py): the token, else the job's OIDC ID token when the runner offers one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic_core import ValidationError

from batch_metrics import ENDPOINT_ENV, TOKEN_ENV
from batch_metrics.client.actions import REQUEST_TOKEN_ENV, Reporter, read_token
from batch_metrics.client.disk import is_pending, read_regular_file, reason
from batch_metrics.client.oidc import credential
from batch_metrics.client.summary import changed_line
from batch_metrics.client.upload import total_time, upload
from batch_metrics.models import PAYLOAD_VALIDATOR, first_problem


def resend(
    path: Path,
    *,
    endpoint: str | None,
    token_file: str | None,
    auth: str = "auto",
    audience: str = "",
    timeout: float,
    retries: int,
    fail_on_error: bool,
    env: Mapping[str, str],
) -> int:
    """Upload the payload at `path`; the exit code."""
    reporter = Reporter(env)
    failure = 1 if fail_on_error else 0
    token, token_problem = read_token(token_file, env)
    reporter.mask(token)
    reporter.mask(env.get(REQUEST_TOKEN_ENV, ""))
    try:
        body = read_regular_file(path)
        PAYLOAD_VALIDATOR.validate_json(body)
    except OSError as error:
        reporter.warning(f"cannot read {path}: {reason(error)}")
        return failure
    except ValidationError as error:
        reporter.warning(f"{path} is not a batch payload: {first_problem(error, 'the document')}")
        return failure
    endpoint = endpoint or env.get(ENDPOINT_ENV, "")
    if token_problem or not endpoint:
        reporter.warning(
            token_problem
            or f"give --endpoint (or ${ENDPOINT_ENV}) and a token (${TOKEN_ENV} or --token-file, or the "
            "job's OIDC ID token)"
        )
        return failure
    given = credential(
        auth, token, endpoint=endpoint, audience=audience, env=env, timeout=timeout, mask=reporter.mask
    )
    if given.problem:
        reporter.warning(f"{given.problem} (${TOKEN_ENV} or --token-file)")
        return failure
    result = upload(
        body,
        endpoint=endpoint,
        token=given.bearer,
        timeout=timeout,
        retries=retries,
        total_timeout=total_time(timeout, retries),
        log=reporter.info,
    )
    if result.status == "failed":
        reporter.warning(f"upload of {path} failed: {result.message}")
        return failure
    print(f"{result.status}: {result.message}")
    for change in result.changes or ():
        print(reporter.redact(changed_line(change)))
    if is_pending(path):
        try:
            path.unlink(missing_ok=True)
        except OSError as error:  # e.g. kept by a container action running as root
            reporter.warning(f"the batch is stored, but {path} could not be removed: {reason(error)}")
        else:
            print(f"removed {path}: the endpoint has this batch")
    return 0
