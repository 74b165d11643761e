"""Workload 5, what the composite action costs a job, and the image size.

The action runs as a runner runs it: action.yml is parsed and its `run:` steps go through bash in
order, each with the env its expressions give, its `if:` evaluated, and outputs passed on through
$GITHUB_OUTPUT. Its `uses:` steps (the cache restore and save) need GitHub's cache service and are
left out, which is a cache miss: the worst case of a new job.

- New job: a fresh RUNNER_TEMP (and uv cache), then the steps with a dry run over 1,000 results.
  pip's cache is the machine's (warm, as the issue measured it).
- Same job: the steps again on the same RUNNER_TEMP (the venv is there).
- Options measured beside them in the same run, filling the same venv: the runner's pip into a
  venv made without pip (`pip --python`), and a venv with its own pip (the set-up before uv).

Baseline for all: a bare `python3 -m venv` with the runner's interpreter, the least a job that
sets up a standard venv pays. The image size is read with podman from `batch-metrics:test`
(the tag the container tests build), beside the size of the base image it was built from.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from bench import data
from bench.measure import MIB, ROOT, BenchError, Row, Scale, ratio_row

ACTION = ROOT / "action.yml"
REQUIREMENTS = ROOT / "requirements" / "action.txt"
IMAGE = "batch-metrics:test"
BASE_IMAGE = "localhost/python-standin"
RESULTS = 1000
_TARGET = 0.8
_EXPRESSION = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")
_CONDITION = re.compile(r"(\S+) (==|!=) '([^']*)'")
_PIP_INSTALL = ["install", "--require-hashes", "--no-deps", "--only-binary", ":all:",
                "--disable-pip-version-check", "--no-input", "--quiet", "-r", str(REQUIREMENTS)]  # fmt: skip


def _runner_env(job: Path, workspace: Path) -> dict[str, str]:
    """This machine's environment as a runner hands it to a step of a new job in `job`."""
    keep = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GITHUB_", "INPUT_", "RUNNER_", "BATCH_METRICS_", "UV_", "VIRTUAL_ENV"))
        and key != "PYTHONDONTWRITEBYTECODE"  # a runner does not set it: the run step keeps its bytecode
    }
    return keep | {
        "RUNNER_TEMP": str(job / "temp"),
        "RUNNER_OS": "Linux",
        "RUNNER_ARCH": "X64",
        "UV_CACHE_DIR": str(job / "uv-cache"),  # a new job's uv has no cache
        "GITHUB_ACTIONS": "true",
        "GITHUB_ACTION_PATH": str(ROOT),
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_STEP_SUMMARY": str(job / "summary.md"),
        "GITHUB_REPOSITORY": "bench/batch",
        "GITHUB_RUN_ID": "1",
        "GITHUB_RUN_ATTEMPT": "1",
    }


def _evaluate(expression: str, context: Mapping[str, str]) -> str:
    if expression not in context and not expression.startswith("steps."):
        raise BenchError(f"action.yml uses an expression the bench cannot evaluate: {expression}")
    return context.get(expression, "")  # an output a step did not write is empty, as on a runner


def _substitute(text: str, context: Mapping[str, str]) -> str:
    return _EXPRESSION.sub(lambda match: _evaluate(match[1], context), text)


def _condition(text: str, context: Mapping[str, str]) -> bool:
    matched = _CONDITION.fullmatch(text.strip())
    if matched is None:
        raise BenchError(f"action.yml has an `if:` the bench cannot evaluate: {text}")
    name, operator, value = matched.groups()
    return (_evaluate(name, context) == value) == (operator == "==")


def run_action(inputs: Mapping[str, str], env: Mapping[str, str]) -> dict[str, str]:
    """Run action.yml's `run:` steps as a runner does; the action's outputs' step outputs (steps.ID.NAME)."""
    action: dict[str, Any] = yaml.safe_load(ACTION.read_text(encoding="utf-8"))
    context = {f"inputs.{name}": str(spec.get("default", "")) for name, spec in action["inputs"].items()}
    context |= {f"inputs.{name}": value for name, value in inputs.items()}
    context["runner.temp"] = env["RUNNER_TEMP"]
    temp = Path(env["RUNNER_TEMP"])
    temp.mkdir(parents=True, exist_ok=True)
    for step in action["runs"]["steps"]:
        if "uses" in step or ("if" in step and not _condition(step["if"], context)):
            continue
        output = temp / f"output-{step['id']}"
        output.write_text("")
        step_env = {name: _substitute(str(value), context) for name, value in step.get("env", {}).items()}
        completed = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            env={**env, **step_env, "GITHUB_OUTPUT": str(output)},
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if completed.returncode != 0 or "::warning" in completed.stdout:
            raise BenchError(
                f"action.yml step {step['id']} failed:\n{(completed.stdout + completed.stderr)[-1500:]}"
            )
        context |= {f"steps.{step['id']}.outputs.{name}": value for name, value in _outputs(output).items()}
    return context


def _outputs(path: Path) -> dict[str, str]:
    """$GITHUB_OUTPUT's `name=value` lines and `name<<DELIMITER` blocks."""
    outputs: dict[str, str] = {}
    lines = iter(path.read_text().splitlines())
    for line in lines:
        name, separator, value = line.partition("=")
        if "<<" in name or not separator:
            name, _, delimiter = line.partition("<<")
            block = []
            for body in lines:
                if body == delimiter:
                    break
                block.append(body)
            value = "\n".join(block)
        outputs[name] = value
    return outputs


def _timed(action: Callable[[], object]) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def _call(*argv: str | Path, env: Mapping[str, str] | None = None) -> None:
    completed = subprocess.run(
        [str(arg) for arg in argv], capture_output=True, text=True, env=env, check=False
    )
    if completed.returncode != 0:
        raise BenchError(
            f"{' '.join(map(str, argv[:4]))} ... exited {completed.returncode}:\n{completed.stderr[-1500:]}"
        )


def _call_all(*commands: list[str | Path]) -> None:
    for argv in commands:
        _call(*argv)


def _measure_once(work: Path, python: str, workspace: Path, seconds: dict[str, list[float]]) -> None:
    job = work / "install-job"
    shutil.rmtree(job, ignore_errors=True)
    env = _runner_env(job, workspace)
    inputs = {"results": "**/*.json", "ecosystem": "bench", "batch-id": "bench-install", "dry-run": "true"}
    payload = workspace / "batch-metrics-payload.json"

    def action() -> None:
        payload.unlink(missing_ok=True)
        outputs = run_action(inputs, env)
        if outputs.get("steps.run.outputs.total") != str(RESULTS) or not payload.exists():
            raise BenchError(f"the action's dry run did not count {RESULTS} results: {outputs}")

    seconds["new job"].append(_timed(action))
    seconds["same job"].append(_timed(action))
    venv = job / "venv"
    seconds["bare venv"].append(_timed(lambda: _call(python, "-m", "venv", venv)))
    shutil.rmtree(venv)
    seconds["pip --python"].append(_timed(lambda: _call_all(
        [python, "-m", "venv", "--without-pip", venv],
        [python, "-m", "pip", "--python", venv / "bin" / "python", *_PIP_INSTALL],
    )))  # fmt: skip
    shutil.rmtree(venv)
    seconds["venv + its pip"].append(_timed(lambda: _call_all(
        [python, "-m", "venv", venv], [venv / "bin" / "python", "-m", "pip", *_PIP_INSTALL],
    )))  # fmt: skip
    shutil.rmtree(job)


def _install_rows(scale: Scale, work: Path) -> list[Row]:
    python = subprocess.run(["python3", "-c", "import sys; print(sys.executable)"],
                            capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    workspace = data.write_dataset(
        "validation-results", work / "install-workspace", files=10, results=RESULTS
    ).directory
    seconds: dict[str, list[float]] = {
        name: [] for name in ("new job", "same job", "bare venv", "pip --python", "venv + its pip")
    }
    _measure_once(work, python, workspace, {name: [] for name in seconds})  # warms pip's cache; not counted
    for _ in range(scale.runs):
        _measure_once(work, python, workspace, seconds)
    baseline = statistics.median(seconds["bare venv"])
    name = "bare `python3 -m venv`"

    def row(label: str, key: str, limit: float | None) -> Row:
        return ratio_row(label, statistics.median(seconds[key]), baseline, unit="s", baseline_name=name,
                         limit=limit, runs=scale.runs, ours_seconds=seconds[key],
                         baseline_seconds=seconds["bare venv"])  # fmt: skip

    steps = f"action.yml's steps + dry run, {RESULTS:,} results"
    return [
        row(f"action install: new job ({steps}; cache miss)", "new job", _TARGET),
        row(f"action install: same job, second use ({steps})", "same job", None),
        row("action install, option: venv without pip + runner's `pip --python`", "pip --python", None),
        row("action install, option: venv + its own pip (the set-up before uv)", "venv + its pip", None),
    ]


def _image_bytes(podman: str, image: str) -> int | None:
    inspected = subprocess.run(
        [podman, "image", "inspect", image, "--format", "{{.Size}}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return int(inspected.stdout.strip()) if inspected.returncode == 0 and inspected.stdout.strip() else None


def _image_row() -> Row:
    label = f"Docker image size ({IMAGE})"
    podman = shutil.which("podman")
    if podman is None:
        return Row.unavailable(label, "podman not installed (the container tests build the image with it)")
    size, base = _image_bytes(podman, IMAGE), _image_bytes(podman, BASE_IMAGE)
    if size is None or base is None:
        missing = IMAGE if size is None else BASE_IMAGE
        return Row.unavailable(label, f"not built ({missing} is not in podman's image store)")
    return ratio_row(label, size / MIB, base / MIB, unit="MiB", baseline_name=f"base image {BASE_IMAGE}",
                     limit=None, image_bytes=size, base_bytes=base)  # fmt: skip


def run(scale: Scale, work: Path) -> list[Row]:
    if scale.offline:
        label = "action install: action.yml's steps"
        rows = [Row.unavailable(label, "--offline: pip would contact the package index")]
    else:
        rows = _install_rows(scale, work)
    return [*rows, _image_row()]
