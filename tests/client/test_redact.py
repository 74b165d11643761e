"""Redaction: registered secrets and credential shapes, replaced before any escaping."""

from __future__ import annotations

import pytest

from batch_metrics.client.redact import Redactor


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("Authorization: Bearer abc.DEF-123_456~ghi+/== sent", "Authorization: Bearer *** sent"),
        ("authorization: bearer xyz", "authorization: bearer ***"),
        ("Proxy-Authorization: Basic dXNlcjpwYXNz", "Proxy-Authorization: Basic ***"),
        (
            "git clone https://x-access-token:s3cr3t@github.com/o/r.git",
            "git clone https://***@github.com/o/r.git",
        ),
        ("postgresql://user:pw@db:5432/metrics", "postgresql://***@db:5432/metrics"),
        ("https://tokenonly@example.com/x", "https://***@example.com/x"),
        ("GH_TOKEN=ghp_0123456789abcdefghijABCDEFGHIJ012345 set", "GH_TOKEN=*** set"),
        ("gho_0123456789abcdefghij ghu_0123456789abcdefghij", "*** ***"),
        ("ghs_0123456789abcdefghij, ghr_0123456789abcdefghij.", "***, ***."),
        ("github_pat_11ABCDEFG0_abcdefghijklmnopqrstuvwxyz", "***"),
        ("pat: github_pat_11AAAAAAAA0_BBBBBBBBBBBBBBBBBBBBBBBBBB.", "pat: ***."),
        # Not credentials: left as they are.
        (
            "see https://github.com/o/r/issues/1 and a@b.example",
            "see https://github.com/o/r/issues/1 and a@b.example",
        ),
        ("ghp_short is a word; the Bearer of bad news.", "ghp_short is a word; the Bearer *** bad news."),
    ],
)
def test_credential_shapes(text: str, redacted: str) -> None:
    assert Redactor()(text) == redacted


def test_registered_secrets_go_first_longest_first_and_line_by_line() -> None:
    redact = Redactor()
    assert redact.add("short") == ["short"]
    assert redact.add("  short-and-longer\nsecond-line  ") == [
        "short-and-longer\nsecond-line",
        "short-and-longer",
        "second-line",
    ]
    assert redact.add("short") == []  # known already
    assert redact("a short-and-longer b second-line c short") == "a *** b *** c ***"


def test_redaction_comes_before_markdown_would_hide_an_underscore_token() -> None:
    redact = Redactor()
    redact.add("tok_with_underscores")
    assert redact("failed: tok_with_underscores") == "failed: ***"
