"""Redaction takes out credentials, never the program's own words (docs/promises.md#no-secret-shown)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from batch_metrics.client.redact import Redactor, redact_shapes
from tests.conftest import ROOT
from tests.test_cli import github_layout, run_entrypoint


def _texts(path: Path) -> list[str]:
    """Every string constant of a module but its docstrings, f-strings' literal parts included: what its
    messages are made of."""
    tree = ast.parse(path.read_text())
    documented = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    docstrings = {
        id(node.body[0].value) for node in ast.walk(tree)
        if isinstance(node, documented) and node.body and isinstance(node.body[0], ast.Expr)
    }  # fmt: skip
    return [
        node.value for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]  # fmt: skip


def test_every_text_the_client_writes_passes_redaction_unchanged() -> None:
    modules = sorted((ROOT / "batch_metrics/client").rglob("*.py"))
    texts = [(path.name, text) for path in modules for text in _texts(path)]
    assert len(texts) > 500, len(texts)  # the whole client was read
    changed = [(name, text) for name, text in texts if redact_shapes(text) != text]
    assert changed == []


def test_a_token_of_the_wrong_shape_is_named_in_the_programs_own_words(tmp_path: Path) -> None:
    github = github_layout(tmp_path)
    run = run_entrypoint(
        github, {"results": "results/*", "endpoint": "http://127.0.0.1:9", "token": "two words"}
    )
    assert run.outputs["status"] == "failed"
    assert run.warnings[-1].startswith("upload failed: the token has characters a bearer token cannot have")
    assert "two words" not in run.stdout.replace("::add-mask::two words", "") + run.summary


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("curl -H 'Authorization: Bearer token' failed", "curl -H 'Authorization: Bearer ***' failed"),
        ("authorization:   basic credentials", "authorization:   basic ***"),
        ("Bearer sesame", "Bearer ***"),
        ("Bearer tokens3", "Bearer ***"),
        (
            "send a Bearer token, not Basic auth or Basic Credentials",
            "send a Bearer token, not Basic auth or Basic Credentials",
        ),
    ],
)
def test_after_bearer_and_basic_credentials_go_and_words_stay(text: str, redacted: str) -> None:
    assert Redactor()(text) == redacted
