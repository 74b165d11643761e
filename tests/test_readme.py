"""The README's claims about workflows and tests hold: its workflow example lints and reports unless
cancelled, CI runs its test command with nothing left out, and its shell examples set what they use."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
TOOLS = Path(sys.executable).parent
TEST_COMMAND = "python3 scripts/dev.py test"


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README, re.MULTILINE | re.DOTALL)


def workflow_example() -> str:
    section = README.split("## Use it in a workflow", 1)[1]
    match = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert match, "the section 'Use it in a workflow' has no yaml block"
    return match.group(1)


def test_the_workflow_example_passes_actionlint(tmp_path: Path) -> None:
    workflow = tmp_path / "example.yml"
    workflow.write_text("on: push\npermissions: {}\n" + workflow_example(), encoding="utf-8")
    lint = subprocess.run(
        [str(TOOLS / "actionlint"), "-no-color", "-shellcheck", str(TOOLS / "shellcheck"), str(workflow)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_the_workflow_example_reports_unless_cancelled_and_reacts_to_the_status() -> None:
    steps: list[dict[str, Any]] = yaml.safe_load(workflow_example())["jobs"]["validate"]["steps"]
    upload = next(step for step in steps if "batch-metrics@" in step.get("uses", ""))
    assert upload["if"] == "${{ !cancelled() }}"
    later = steps[steps.index(upload) + 1 :]
    assert any(f"steps.{upload['id']}.outputs.status" in step.get("if", "") for step in later)
    assert "always()" not in workflow_example()


def test_ci_runs_the_readmes_test_command_with_nothing_left_out() -> None:
    assert TEST_COMMAND in code_blocks("sh")[0]
    assert "with `CI=true` it never leaves anything out" in " ".join(README.split())
    ci = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8"))
    runs = [step.get("run", "").strip() for step in ci["jobs"]["test"]["steps"]]
    assert TEST_COMMAND in runs  # as it is: no -m, no -k, no deselection
    ci_run = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert ci_run[-1] == TEST_COMMAND


def test_shell_examples_set_the_token_variable_they_use() -> None:
    for block in code_blocks("sh"):
        uses = block.find("$TOKEN")
        if uses >= 0:
            assert re.search(r"^TOKEN=", block[:uses], re.MULTILINE), block


DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "deploy" / "README.md"]
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.MULTILINE | re.DOTALL)
    return {slug(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}


def test_every_link_in_the_readme_and_docs_reaches_a_file_and_heading() -> None:
    broken = []
    for document in DOCUMENTS:
        for target in _LINK.findall(document.read_text(encoding="utf-8")):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            file, _, anchor = target.partition("#")
            path = (document.parent / file).resolve() if file else document
            if not path.exists() or (anchor and anchor not in anchors(path)):
                broken.append(f"{document.relative_to(ROOT)}: {target}")
    assert broken == []
    assert len(DOCUMENTS) >= 9  # the README and the reference it links to


def shell_lines() -> list[tuple[str, list[str]]]:
    """Each command line of the README's and docs' sh blocks, as words (leading assignments left out)."""
    found = []
    for document in DOCUMENTS:
        for block in re.findall(r"^```sh\n(.*?)^```", document.read_text(encoding="utf-8"), re.M | re.S):
            for line in block.replace("\\\n", " ").splitlines():
                words = shlex.split(line, comments=True)
                while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
                    words = words[1:]
                if words:
                    found.append((document.name, words))
    return found


def test_every_batch_metrics_command_in_the_docs_is_one_the_cli_takes() -> None:
    from batch_metrics.cli import build_parser

    commands = [words for _, words in shell_lines() if words[0] == "batch-metrics"]
    assert len(commands) >= 8
    for words in commands:
        build_parser().parse_args(words[1:])  # exits (fails the test) on an unknown command or flag
    dev = [words for _, words in shell_lines() if words[:2] == ["python3", "scripts/dev.py"]]
    assert {words[2] for words in dev} <= {"demo", "test", "bench"} and len(dev) >= 2


def test_the_asgi_entry_point_the_docs_name_exists() -> None:
    import importlib

    named = {
        word
        for _, words in shell_lines()
        if words[0] == "hypercorn"
        for word in words
        if "app_from_env" in word
    }
    assert named == {"batch_metrics.server:app_from_env()"}
    module, _, call = next(iter(named)).partition(":")
    assert callable(getattr(importlib.import_module(module), call.removesuffix("()")))


def test_the_readme_shows_the_dashboard_as_a_small_png() -> None:
    assert "](docs/dashboard.png)" in README
    image = (ROOT / "docs" / "dashboard.png").read_bytes()
    assert image.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(image) < 250_000
