"""The run never reads its own payload back and never writes it over a result file (docs/promises.md).

Driven as the runner drives the action (`entrypoint.py`, INPUT_*): three runs on one workspace, whatever
path reaches the payload file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.test_cli import ROWS, github_layout, run_entrypoint


def test_the_payload_reached_through_a_linked_folder_is_still_not_read(tmp_path: Path) -> None:
    """`results/up -> ..` makes `results/up/batch-metrics-payload.json` the payload file by another name."""
    github = github_layout(tmp_path)
    workspace = github / "workspace"
    os.symlink("..", workspace / "results/up")
    inputs = {"results": "results/*.json\nresults/*/*.json", "dry-run": "true", "ecosystem": "npm"}
    runs = [run_entrypoint(github, inputs) for _ in range(3)]
    assert [run.outputs["total"] for run in runs] == [str(len(ROWS))] * 3
    assert all(run.code == 0 and not run.warnings for run in runs), runs[-1].stdout
    said = "results/up/batch-metrics-payload.json: not read, it is this run's payload file"
    assert said in runs[-1].stdout and said not in runs[0].stdout  # no payload file before the first run


def test_a_payload_path_that_is_a_result_file_is_read_and_never_overwritten(tmp_path: Path) -> None:
    github = github_layout(tmp_path)
    workspace = github / "workspace"
    results = workspace / "results/validation-results-all.json"
    given = results.read_bytes()
    inputs = {"results": "results/*.json", "payload-path": "results/validation-results-all.json",
              "dry-run": "true", "ecosystem": "npm"}  # fmt: skip
    first, second = run_entrypoint(github, inputs), run_entrypoint(github, inputs)
    assert results.read_bytes() == given
    beside = workspace / "results/validation-results-all.batch-metrics-payload.json"
    assert [first.outputs["total"], second.outputs["total"]] == [str(len(ROWS))] * 2
    assert first.outputs["payload-path"] == "results/validation-results-all.batch-metrics-payload.json"
    assert len(json.loads(beside.read_bytes())["results"]) == len(ROWS)
    assert first.warnings == [
        "payload-path results/validation-results-all.json is one of the result files read, so it is left as "
        "it is: the payload is written to results/validation-results-all.batch-metrics-payload.json instead"
    ]
    # The second run matches the stand-in too (`results/*.json`): it is this run's payload, not a result.
    assert "results/validation-results-all.batch-metrics-payload.json: not read" in second.stdout


def test_a_payload_of_an_earlier_run_is_overwritten_and_said_so(tmp_path: Path) -> None:
    github = github_layout(tmp_path)
    inputs = {"results": "**/*.json", "dry-run": "true", "ecosystem": "npm"}
    first, second = run_entrypoint(github, inputs), run_entrypoint(github, inputs)
    assert first.outputs["total"] == second.outputs["total"] == str(len(ROWS))
    assert "batch-metrics-payload.json: not read, it is this run's payload file" in second.stdout
    assert not second.warnings
