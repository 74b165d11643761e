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
