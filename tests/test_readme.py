"""The README's claims about workflows and tests hold: its workflow example lints and reports unless
cancelled, CI runs its test command with nothing left out, and its shell examples set what they use."""

from __future__ import annotations

import re
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
