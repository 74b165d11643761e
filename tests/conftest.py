"""Fixtures shared by every test module: where the real-world sample files live."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_FIXTURES = ROOT.parent / "shared" / "fixtures"


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    """`../shared/fixtures`: tsuku pipeline output and JUnit XML from many runners (read-only)."""
    assert SHARED_FIXTURES.is_dir(), (
        f"missing {SHARED_FIXTURES}: the shared fixtures sit beside the project root"
    )
    return SHARED_FIXTURES


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
