"""tsuku's merge job, end to end: its workspace in the real shapes, the README's step, the real endpoint.

For each committed batch whose failure lines name every recipe it validated, the workspace is
what `batch-generate.yml`'s merge job holds after "Collect SLI metrics": the platform jobs'
`validation-results-<job>.json` artifacts (rebuilt from the batch's failure lines, on the
families the workflow itself lists), the generate job's own results file, the Linux jobs'
sandbox results, the batch's committed files, and, committed in the checkout beside them, an
earlier batch's files and the queue. The step runs with the inputs the README gives it, and the
stored batch is checked against the batch's run summary.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT
from tests.live import Live
from tests.tsuku import BATCHES, failure_lines, job, run_summary, said, stored

pytest_plugins = ["tests.live"]

WORKFLOW = ROOT / "tests/fixtures/tsuku/source/batch-generate.yml"
# A user's mapping in the shape of tsuku's data/queues/priority-queue.json (written for this test).
QUEUE = {"gh": "homebrew", "libgit2": "homebrew", "fastlane": "rubygems", "solargraph": "rubygems",
         "fastmcp": "pypi", **dict.fromkeys(("agent-browser", "aws-cdk", "azurite", "bash-language-server",
         "lerna", "mbt", "pyright", "typescript-language-server", "vsce"), "npm")}  # fmt: skip
TOKEN_IN_A_LOG = "ghp_" + "A1b2" * 9
HISTORY = BATCHES / "2026-02-18T04-30-09Z"  # committed before: its files must not be read again


def families() -> dict[str, list[str]]:
    """The fine platforms of each Linux job, as batch-generate.yml loops over them."""
    text = WORKFLOW.read_text(encoding="utf-8")
    names = [re.findall(r'"(\w+)"', line) for line in re.findall(r"^\s*NAMES=\((.*)\)$", text, re.M)]
    libcs = [re.findall(r'"(\w+)"', line) for line in re.findall(r"^\s*LIBCS=\((.*)\)$", text, re.M)]
    return {
        f"linux-{arch}": [f"linux-{name}-{libc}-{arch}" for name, libc in zip(*pair, strict=True)]
        for arch, pair in zip(("x86_64", "arm64"), zip(names, libcs, strict=True), strict=True)
    }


def the_step() -> dict[str, str]:
    """The `with:` of the README's step for the merge job."""
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## tsuku's pipeline", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert block
    [step] = yaml.safe_load(block.group(1))
    assert step["if"] == "${{ !cancelled() }}"
    inputs: dict[str, str] = step["with"]
    return inputs


def determined(batch: Path) -> bool:
    """Whether the batch's failure lines name every recipe it validated (else its passes have no name)."""
    return len({recipe for recipe, _ in failure_lines(batch)}) == run_summary(batch)["generated"]


def workspace_for(batch: Path, root: Path) -> tuple[Path, int, float]:
    """The merge job's workspace; the number of validations and the sandbox seconds it holds."""
    lines: dict[tuple[str, str], dict[str, Any]] = {}
    for path in (batch / "data" / "failures").glob("*.jsonl"):
        for text in path.read_text(encoding="utf-8").splitlines():
            value = json.loads(text) if text.strip() else {}
            if "recipe" in value:
                lines[value["recipe"], value["platform"]] = value
    recipes = sorted({recipe for recipe, _ in lines})
    summary = run_summary(batch)
    root.mkdir()
    _commit_the_checkout(root)
    platforms = {**families(), "darwin-arm64": ["darwin-arm64"], "darwin-x86_64": ["darwin-x86_64"]}
    validations, seconds = 0, 0.0
    for name, fine in platforms.items():
        rows = []
        if summary["platforms"][name]["tested"]:
            for platform in fine:
                for recipe in recipes:
                    line = lines.get((recipe, platform))
                    rows.append({"recipe": recipe, "platform": platform, "status": "fail" if line else "pass",
                                 "exit_code": line["exit_code"] if line else 0, "attempts": 1,
                                 "blocked_by": (line or {}).get("blocked_by", [])})  # fmt: skip
                    if name.startswith("linux"):
                        seconds += _sandbox(root / "sandbox-results" / name, recipe, platform, line)
        assert said(summary).get(job(name), (0, 0, 0))[:2] == (
            sum(row["status"] == "pass" for row in rows),
            sum(row["status"] == "fail" for row in rows),
        )  # the artifacts say what the summary counted
        validations += len(rows)
        (root / f"validation-results-{name}.json").write_text(json.dumps(rows, indent=2))
    generated = [{"recipe": recipe, "platform": "linux-debian-glibc-x86_64", "status": "pass", "exit_code": 0,
                  "attempts": 1} for recipe in recipes]  # fmt: skip
    (root / "validation-results-linux-debian-glibc-x86_64.json").write_text(json.dumps(generated))
    shutil.copytree(batch / "data", root / "data", dirs_exist_ok=True)  # what the merge job writes
    return root, validations, seconds


def _sandbox(folder: Path, recipe: str, platform: str, line: dict[str, Any] | None) -> float:
    family = platform.split("-")[1]
    folder.mkdir(parents=True, exist_ok=True)
    milliseconds = 20_000 + 1_000 * len(recipe)
    value: dict[str, Any] = {"tool": recipe, "passed": line is None, "verified": line is None,
                             "install_exit_code": line["exit_code"] if line else 0, "verify_exit_code": 0,
                             "duration_ms": milliseconds, "error": None}  # fmt: skip
    if line:
        value["error"] = f"installation failed with exit code {line['exit_code']}"
        value["install_output"] = f"Step 2/4: build {recipe}\ncurl -H 'token {TOKEN_IN_A_LOG}'\nerror: no"
    (folder / f".result-{recipe}-{family}.json").write_text(json.dumps(value))
    return milliseconds / 1000


def _commit_the_checkout(root: Path) -> None:
    """The checkout the merge job starts from: tsuku's earlier batches and its queue, committed."""
    shutil.copytree(HISTORY / "data", root / "data")
    queue = {
        "schema_version": 1,
        "entries": [{"name": name, "source": f"{eco}:{name}"} for name, eco in QUEUE.items()],
    }
    (root / "data" / "queues").mkdir()
    (root / "data" / "queues" / "priority-queue.json").write_text(json.dumps(queue, indent=2))
    for command in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@example.invalid",
                                                   "commit", "-q", "-m", "earlier batches"]):  # fmt: skip
        subprocess.run(["git", "-C", str(root), *command], check=True)


def run_the_step(workspace: Path, live: Live, batch_id: str) -> subprocess.CompletedProcess[str]:
    values = {"${{ env.BATCH_ID }}": batch_id, "${{ needs.generate.outputs.started-at }}": "",
              "${{ secrets.BATCH_METRICS_TOKEN }}": live.token}  # fmt: skip
    env = {"PATH": os.environ["PATH"], "GITHUB_WORKSPACE": str(workspace)}
    for name, value in the_step().items():
        env[f"INPUT_{name.upper().replace('-', '_')}"] = values.get(str(value), str(value))
    env["INPUT_ENDPOINT"] = live.url
    return subprocess.run(
        [sys.executable, "-m", "batch_metrics.cli", "run", "--no-summary"], cwd=workspace, env=env,
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    "batch", [path for path in sorted(BATCHES.iterdir()) if determined(path)], ids=lambda path: path.name
)
def test_the_merge_job_stores_the_batch_its_run_summary_describes(
    tmp_path: Path, live: Live, batch: Path
) -> None:
    workspace, validations, seconds = workspace_for(batch, tmp_path / "workspace")
    summary = run_summary(batch)
    done = run_the_step(workspace, live, summary["batch_id"])
    assert done.returncode == 0, done.stderr
    assert "status=uploaded" in done.stdout, done.stdout + done.stderr
    assert "warning" not in done.stderr, done.stderr  # nothing disagrees, nothing earlier is read
    [run] = live.get("/batch-runs").json()["runs"]
    assert run["batch_id"] == summary["batch_id"]
    assert stored(live.storage, run["id"]) == said(summary)
    full = live.storage.get_run(run["id"])
    assert full is not None
    rows = [row for row in full["results"] if not row["stage"]]
    # One row per recipe and platform: the artifacts, the failure lines, the sandbox results and the
    # generate job's file all describe the same validations.
    assert len(rows) == validations == len({(row["recipe_name"], row["platform"]) for row in rows})
    assert full["unlisted"] == []  # the artifacts name every pass
    assert run["linux_minutes"] == pytest.approx(seconds / 60, abs=1e-3)  # only the sandbox knows durations
    failed = [row for row in rows if row["result"] == "failed"]
    assert {(row["recipe_name"], row["platform"]) for row in failed} == failure_lines(batch)
    for row in failed:  # the build log where a sandbox result has one (Linux), else the exit code
        log = row["platform"].startswith("linux")
        assert row["error_message"].startswith("installation failed with exit code" if log else "exit code")
        assert TOKEN_IN_A_LOG not in row["error_message"]  # redacted like every message
        assert row["error_category"] in {"generation_failed", "missing_dep", "network_error"}
    ecosystems = {row["ecosystem"] for row in rows}
    assert ecosystems == {QUEUE[recipe] for recipe, _ in failure_lines(batch)}  # the user's map
    generation = {row["recipe_name"] for row in full["results"] if row["stage"] == "generation"}
    history = {recipe for recipe in _generation_failures(HISTORY)}
    assert generation == _generation_failures(batch) and not generation & (history - generation)


def _generation_failures(batch: Path) -> set[str]:
    found = set()
    for path in (batch / "data" / "failures").glob("*.jsonl"):
        for text in path.read_text(encoding="utf-8").splitlines():
            value = json.loads(text) if text.strip() else {}
            found.update(failure["package_id"].split(":", 1)[1] for failure in value.get("failures", []))
    return found


def test_without_changed_since_the_history_beside_would_be_read_and_the_summaries_disagree(
    tmp_path: Path, live: Live
) -> None:
    """Why the step has `changed-since`: the checkout's earlier summaries are each another batch's."""
    batch = BATCHES / "2026-02-22T22-42-09Z"
    workspace, _, _ = workspace_for(batch, tmp_path / "workspace")
    step = the_step()
    env = {"PATH": os.environ["PATH"], "GITHUB_WORKSPACE": str(workspace), "INPUT_RESULTS": step["results"],
           "INPUT_DRY_RUN": "true"}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "batch_metrics.cli", "run", "--no-summary"], cwd=workspace,
                          env=env, capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0
    assert "2 run summaries (data/metrics/batch-runs-2026-02-18T04-30-09Z.jsonl:1" in done.stderr
