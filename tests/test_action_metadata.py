"""The action's metadata, workflows, Dockerfile and pinned requirements: linted by the real tools,
kept in sync with the code, and the composite action's shell steps run as the runner runs them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from pytest_httpserver import HTTPServer

from batch_metrics.client.actions import INPUT_DEFAULTS, OUTPUT_NAMES
from tests.conftest import ROOT, parse_outputs

TOOLS = Path(sys.executable).parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
COMPOSITE = ROOT / "action.yml"
DOCKER_ACTION = ROOT / "docker" / "action.yml"
ACTION_REQUIREMENTS = ROOT / "requirements" / "action.txt"
UV_REQUIREMENTS = ROOT / "requirements" / "uv.txt"
INSTALL_SCRIPT = ROOT / "action" / "install.sh"
IMAGE_REQUIREMENTS = ROOT / "requirements" / "image.txt"
BASH = shutil.which("bash") or "/bin/bash"
EXPRESSION = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def tool(name: str) -> str:
    path = TOOLS / name
    assert path.exists(), f"{path} is missing: install the dev extras (python3 scripts/dev.py test does)"
    return str(path)


def lint(*command: str) -> None:
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, (
        f"{' '.join(command)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    )


# --- the real linters -------------------------------------------------------------------------


def test_workflows_exist() -> None:
    assert {path.name for path in WORKFLOWS} >= {"ci.yml", "example-batch.yml"}


def test_actionlint_is_clean() -> None:
    # with the venv's shellcheck, so the workflows' scripts are checked the same way everywhere
    lint(tool("actionlint"), "-no-color", "-shellcheck", tool("shellcheck"), *map(str, WORKFLOWS))


def test_shellcheck_is_clean_on_the_composite_steps(tmp_path: Path) -> None:
    for step_id, step in composite_steps().items():
        if "run" not in step:
            continue
        script = tmp_path / f"{step_id}.sh"
        script.write_text(step["run"], encoding="utf-8")
        lint(tool("shellcheck"), "--shell=bash", "--severity=style", str(script))
    lint(tool("shellcheck"), "--shell=bash", "--severity=style", str(INSTALL_SCRIPT))


def test_zizmor_is_clean_on_workflows_and_both_actions() -> None:
    # --offline: no GitHub API; every workflow, action.yml and docker/action.yml under the root is audited.
    lint(tool("zizmor"), "--offline", "--no-progress", "--persona", "pedantic", ".")


def test_action_metadata_matches_githubs_schema() -> None:
    lint(
        tool("check-jsonschema"),
        "--builtin-schema",
        "vendor.github-actions",
        str(COMPOSITE),
        str(DOCKER_ACTION),
    )


def test_workflows_match_githubs_schema() -> None:
    lint(tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS))


def test_hadolint_is_clean() -> None:
    lint(tool("hadolint"), "Dockerfile")


# --- metadata kept in sync ----------------------------------------------------------------------


def test_both_actions_declare_the_same_inputs_and_outputs() -> None:
    composite, docker = load(COMPOSITE), load(DOCKER_ACTION)
    assert composite["inputs"] == docker["inputs"]
    described = {name: spec["description"] for name, spec in composite["outputs"].items()}
    assert described == {name: spec["description"] for name, spec in docker["outputs"].items()}
    assert all(set(spec) == {"description"} for spec in docker["outputs"].values())


def test_inputs_and_outputs_are_the_ones_the_code_reads_and_writes() -> None:
    inputs = load(COMPOSITE)["inputs"]
    assert list(inputs) == list(INPUT_DEFAULTS)
    assert {name: spec["default"] for name, spec in inputs.items()} == INPUT_DEFAULTS
    assert all(spec["required"] is False and spec["description"] for spec in inputs.values())
    assert list(load(COMPOSITE)["outputs"]) == list(OUTPUT_NAMES)


def test_docker_action_builds_the_top_level_dockerfile() -> None:
    runs = load(DOCKER_ACTION)["runs"]
    assert runs["using"] == "docker"
    # The runner builds any image value ending in "Dockerfile", resolved against the action's directory.
    assert runs["image"].endswith("Dockerfile")
    assert (DOCKER_ACTION.parent / runs["image"]).resolve() == ROOT / "Dockerfile"
    assert "args" not in runs and "env" not in runs  # inputs arrive only as INPUT_* variables


def composite_steps() -> dict[str, dict[str, Any]]:
    runs = load(COMPOSITE)["runs"]
    assert runs["using"] == "composite"
    return {step["id"]: step for step in runs["steps"]}


def test_composite_maps_every_input_through_env_only() -> None:
    steps = composite_steps()
    env = steps["run"]["env"]
    for name in INPUT_DEFAULTS:
        assert env[f"INPUT_{name.upper().replace('-', '_')}"] == f"${{{{ inputs.{name} }}}}", name
    for step in steps.values():
        if "uses" in step:
            continue
        assert step["shell"] == "bash"
        assert "${{" not in step["run"], f"step {step['id']} interpolates an expression into its script"


def test_the_cache_steps_can_never_fail_the_action() -> None:
    """A miss, an outage or a refused save of the venv cache leaves the install (or the run) to go on."""
    steps = composite_steps()
    assert list(steps) == ["locate", "cache", "install", "save", "run"]
    restore, save = steps["cache"], steps["save"]
    assert restore["uses"].startswith("actions/cache/restore@")
    assert save["uses"] == restore["uses"].replace("/restore@", "/save@")
    assert re.fullmatch(r"actions/cache/restore@[0-9a-f]{40}", restore["uses"])  # pinned by commit
    for step in (restore, save):
        assert step["continue-on-error"] is True
        assert step["with"] == {
            "path": "${{ steps.locate.outputs.venv }}",
            "key": "${{ steps.locate.outputs.key }}",
        }
    assert restore["if"] == steps["install"]["if"] == "steps.locate.outputs.key != ''"
    assert save["if"] == "steps.install.outputs.installed == 'true'"  # only what this job installed


def test_composite_outputs_come_from_the_run_step() -> None:
    outputs = load(COMPOSITE)["outputs"]
    for name, spec in outputs.items():
        assert f"steps.run.outputs.{name}" in spec["value"], name
    # when the set-up gives up, its `status=failed` still reaches the caller
    assert outputs["status"]["value"] == (
        "${{ steps.run.outputs.status || steps.install.outputs.status || steps.locate.outputs.status }}"
    )


def test_workflows_never_interpolate_expressions_into_scripts() -> None:
    for path in WORKFLOWS:
        for job_name, job in load(path)["jobs"].items():
            for step in job.get("steps", []):  # a job that calls a reusable workflow has none
                assert "${{" not in step.get("run", ""), f"{path.name}: job {job_name} step {step}"


def test_example_reports_the_batch_even_when_validation_fails() -> None:
    steps = load(ROOT / ".github" / "workflows" / "example-batch.yml")["jobs"]["validate"]["steps"]
    report = next(step for step in steps if step.get("uses") == "./")
    assert report["if"] == "${{ !cancelled() }}"  # not always(): a cancelled job should not upload
    assert report["with"]["endpoint"].startswith("http://127.0.0.1:")
    names = [step.get("name") for step in steps]
    assert names.index("Validate recipes") < names.index("Report the batch")


# --- pinned, hashed requirements ---------------------------------------------------------------


def pinned(path: Path) -> dict[str, tuple[str, set[str]]]:
    """name -> (version, hashes) of a pip-compile --generate-hashes file; every line must be pinned."""
    logical = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    pins: dict[str, tuple[str, set[str]]] = {}
    for line in logical.splitlines():
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        requirement, *options = text.split(" --hash=")
        assert re.fullmatch(r"[A-Za-z0-9._-]+==[A-Za-z0-9.+!-]+", requirement.strip()), f"{path.name}: {text}"
        hashes = {option.strip() for option in options}
        assert hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes), f"{path.name}: {text}"
        name, version = requirement.strip().split("==")
        pins[canonicalize_name(name)] = (version, hashes)
    return pins


def closure(requirements: list[str]) -> set[str]:
    """Every distribution the requirements need on this platform, from the installed metadata."""
    needed: set[str] = set()
    queue: list[tuple[Requirement, tuple[str, ...]]] = [(Requirement(text), ()) for text in requirements]
    while queue:
        requirement, wanted_extras = queue.pop()
        # a marker is evaluated against this interpreter and platform, with each requested extra
        active = requirement.marker is None or any(
            requirement.marker.evaluate({"extra": extra}) for extra in ("", *wanted_extras)
        )
        name = canonicalize_name(requirement.name)
        if not active or (name in needed and not requirement.extras):
            continue
        needed.add(name)
        queue.extend((Requirement(text), tuple(requirement.extras)) for text in metadata.requires(name) or [])
    return needed


def pyproject() -> dict[str, Any]:
    project: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return project


def test_action_requirements_pin_exactly_the_runtime_dependencies() -> None:
    pins = pinned(ACTION_REQUIREMENTS)
    runtime = pyproject()["dependencies"]
    assert set(pins) == closure(runtime), (
        "regenerate requirements/action.txt (command in requirements/action.in)"
    )
    for text in runtime:
        requirement = Requirement(text)
        version = pins[canonicalize_name(requirement.name)][0]
        assert requirement.specifier.contains(Version(version)), f"{requirement} does not allow {version}"


def test_image_requirements_add_the_server_extras_at_the_same_pins() -> None:
    action, image = pinned(ACTION_REQUIREMENTS), pinned(IMAGE_REQUIREMENTS)
    assert {name: image[name] for name in action} == action
    optional = pyproject()["optional-dependencies"]
    server = [*optional["server"], *optional["postgres"]]
    assert set(image) == closure([*pyproject()["dependencies"], *server])
    for text in server:
        requirement = Requirement(text)
        assert requirement.specifier.contains(Version(image[canonicalize_name(requirement.name)][0]))


# --- the composite action's shell steps, run the way the runner runs `shell: bash` --------------


@dataclass
class StepRun:
    code: int
    stdout: str
    outputs: dict[str, str]


def evaluate(value: str, context: Mapping[str, str]) -> str:
    """The few expressions the composite's env uses; anything else fails the test."""
    return EXPRESSION.sub(lambda match: context[match.group(1)], value)


def run_step(
    step_id: str,
    tmp_path: Path,
    context: Mapping[str, str],
    extra_env: Mapping[str, str],
    wrapper: Sequence[str] = (),
) -> StepRun:
    """The step's `run:` as the runner runs it; `wrapper` goes before bash (e.g. to enter namespaces)."""
    step = composite_steps()[step_id]
    script = tmp_path / f"{step_id}.sh"
    script.write_text(step["run"], encoding="utf-8")
    output = tmp_path / f"{step_id}-output.txt"
    output.write_text("")
    env = {name: evaluate(str(value), context) for name, value in step.get("env", {}).items()}
    env |= {"GITHUB_OUTPUT": str(output), "HOME": str(tmp_path), **extra_env}
    proc = subprocess.run(
        [*wrapper, BASH, "--noprofile", "--norc", "-eo", "pipefail", str(script)],  # the runner's bash
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return StepRun(proc.returncode, proc.stdout + proc.stderr, parse_outputs(output.read_text()))


def fake_bin(tmp_path: Path, **programs: str) -> Path:
    """A PATH directory holding the given shell scripts."""
    directory = tmp_path / "bin"
    directory.mkdir(exist_ok=True)
    for name, body in programs.items():
        program = directory / name
        program.write_text(f"#!/bin/sh\n{body}\n")
        program.chmod(0o755)
    return directory


def run_context(tmp_path: Path, python: str, inputs: Mapping[str, str]) -> dict[str, str]:
    context = {f"inputs.{name}": inputs.get(name, default) for name, default in INPUT_DEFAULTS.items()}
    return context | {"steps.install.outputs.python": python, "runner.temp": str(tmp_path / "runner-temp")}


def runner_env(tmp_path: Path, workspace: Path) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "GITHUB_ACTION_PATH": str(ROOT),
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_ACTIONS": "true",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GITHUB_RUN_ID": "7",
        "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_REPOSITORY": "octo/batch",
    }


def validation_results(path: Path, statuses: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [
        {"recipe": f"r{index}", "platform": "linux-x86_64", "status": status}
        for index, status in enumerate(statuses)
    ]
    path.write_text(json.dumps(rows), encoding="utf-8")


def test_run_step_hands_the_job_inputs_to_the_entrypoint(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    validation_results(workspace / "out" / "a.json", ["pass", "fail"])
    validation_results(workspace / "out" / "skip-b.json", ["pass", "pass", "pass"])
    inputs = {
        "results": "out/**\n!out/skip-*",
        "format": "validation-results",
        "ecosystem": "cargo",
        "batch-id": "batch with spaces; $(echo not run)",
        "started-at": "2026-01-02T03:04:05Z",
        "dry-run": "true",
        "payload-path": "metrics/payload.json",
        "summary": "false",
    }
    run = run_step(
        "run", tmp_path, run_context(tmp_path, sys.executable, inputs), runner_env(tmp_path, workspace)
    )
    assert run.code == 0, run.stdout
    payload = json.loads((workspace / "metrics" / "payload.json").read_text())
    assert payload["batch_id"] == "batch with spaces; $(echo not run)"
    assert (payload["ecosystem"], payload["started_at"]) == ("cargo", "2026-01-02T03:04:05Z")
    assert (payload["total_recipes"], payload["passed"], payload["failed"]) == (2, 1, 1)
    assert {row["ecosystem"] for row in payload["results"]} == {"cargo"}
    assert run.outputs["status"] == "dry-run"
    assert run.outputs["payload-path"].endswith("payload.json")
    assert not (tmp_path / "summary.md").exists()  # summary: false
    # bytecode goes to the runner's temp directory, never beside the action's code
    assert list((tmp_path / "runner-temp" / "batch-metrics-pycache").rglob("*.pyc"))


def test_run_step_hands_the_upload_inputs_to_the_entrypoint(tmp_path: Path, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/batch-metrics", method="POST").respond_with_data(
        "busy", status=503, headers={"Retry-After": "0"}
    )
    workspace = tmp_path / "workspace"
    validation_results(workspace / "validation-results-linux.json", ["pass"])
    inputs = {
        "endpoint": httpserver.url_for("/").rstrip("/"),
        "token": "tok-never-printed",
        "retries": "1",
        "timeout": "5",
        "fail-on-error": "true",
    }
    run = run_step(
        "run", tmp_path, run_context(tmp_path, sys.executable, inputs), runner_env(tmp_path, workspace)
    )
    assert len(httpserver.log) == 2  # the first attempt and one retry
    assert all(
        request.headers["Authorization"] == "Bearer tok-never-printed" for request, _ in httpserver.log
    )
    assert run.stdout.splitlines()[0] == "::add-mask::tok-never-printed"
    assert "tok-never-printed" not in run.stdout.split("\n", 1)[1]
    assert run.outputs["status"] == "failed"
    assert run.code == 1  # fail-on-error: true


@pytest.mark.parametrize(("fail_on_error", "expected_code"), [("false", 0), ("true", 3)])
def test_run_step_survives_a_broken_interpreter(
    tmp_path: Path, fail_on_error: str, expected_code: int
) -> None:
    broken = fake_bin(tmp_path, python="echo 'ModuleNotFoundError: pydantic' >&2; exit 3") / "python"
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    context = run_context(tmp_path, str(broken), {"fail-on-error": fail_on_error})
    run = run_step("run", tmp_path, context, runner_env(tmp_path, workspace))
    assert run.code == expected_code, run.stdout
    if fail_on_error == "false":
        assert "::warning title=batch-metrics::the action exited with status 3" in run.stdout
        assert run.outputs == {"status": "failed"}
