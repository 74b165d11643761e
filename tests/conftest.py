"""What the test modules share: where the real-world sample files live, and small helpers."""

from __future__ import annotations

import os
import socket
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def fixtures() -> Path:
    """`tests/fixtures`: tsuku pipeline output and JUnit XML from many runners, with their licences."""
    return FIXTURES


def parse_outputs(text: str) -> dict[str, str]:
    """$GITHUB_OUTPUT as the runner reads it: `name=value` lines and `name<<DELIMITER` blocks.

    Strict: a block whose delimiter never comes back fails the test.
    """
    outputs: dict[str, str] = {}
    lines = iter(text.split("\n"))
    for line in lines:
        if not line:
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            value: list[str] = []
            for body in lines:
                if body == delimiter:
                    break
                value.append(body)
            else:
                raise AssertionError(f"output {name}: delimiter {delimiter} never closed")
            outputs[name] = "\n".join(value)
        else:
            name, plain = line.split("=", 1)
            outputs[name] = plain
    return outputs


def unused_port() -> int:
    """A loopback port nothing listens on (free now; connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def wait_healthy(
    url: str, *, seconds: float, alive: Callable[[], bool] = lambda: True, why: Callable[[], str] = str
) -> None:
    """Poll `url`/health until it answers 200; fail the test once `alive()` is false or time is up.

    `why()` is called only then, for the failure message (a server's log, say).
    """
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                assert answer.status == 200
                return
        except OSError:
            assert alive() and time.monotonic() < deadline, f"{url} did not answer /health: {why()}"
            time.sleep(0.1)


def need(binary: Path, package: str) -> None:
    """Outside CI a missing Debian package leaves the test out, saying which; in CI it fails."""
    if not binary.exists():
        leave_out(f"{binary} is missing: install Debian's {package} package (.ci/run does)")


def leave_out(why: str) -> None:
    """What this machine cannot do leaves the test out, saying why; under CI=true nothing is left out."""
    if os.environ.get("CI") == "true":
        pytest.fail(why)
    pytest.skip(why)
