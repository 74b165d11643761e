"""Workload 5, what the composite action costs a job, and the image size.

The action runs as a runner runs it: action.yml is parsed and its `run:` steps go through bash in
order, each with the env its expressions give, its `if:` evaluated, and outputs passed on through
$GITHUB_OUTPUT. Its `uses:` steps (the cache restore and save) need GitHub's cache service and are
left out, which is a cache miss: the worst case of a new job.

- New job: a fresh RUNNER_TEMP (and uv cache), then the steps with a dry run over 1,000 results.
  pip's cache is the machine's (warm, as the issue measured it). The step has this machine's
  environment less what a runner's step would not have: the CA bundle variables (a runner's pip and
  uv meet a TLS-intercepting proxy's CA through the system's store and pip.conf only).
- New job from a private index: the same, with the pinned wheels served over HTTPS on loopback by
  Caddy with its own CA, in the system's trust store and named by the runner's pip.conf
  (bench/private_index.py; no other network).
- Same job: the steps again on the same RUNNER_TEMP (the venv is there).
- Options measured beside them in the same run, filling the same venv: the runner's pip into a
  venv made without pip (`pip --python`), and a venv with its own pip (the set-up before uv).

Each new-job row says which installer the set-up took (its install step's `installer` output).

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
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from bench import data, private_index
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
# This machine's, not a runner step's: a runner's pip and uv see the proxy's CA through the system's
# store and pip.conf only (the wheel directory is this machine's too).
_NOT_ON_A_RUNNER = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "PIP_CERT",
                    "PIP_FIND_LINKS")  # fmt: skip


def _runner_env(job: Path, workspace: Path) -> dict[str, str]:
    """This machine's environment as a runner hands it to a step of a new job in `job`."""
    keep = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GITHUB_", "INPUT_", "RUNNER_", "BATCH_METRICS_", "UV_", "VIRTUAL_ENV"))
        and key != "PYTHONDONTWRITEBYTECODE"  # a runner does not set it: the run step keeps its bytecode
        and key not in _NOT_ON_A_RUNNER
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


def run_action(
    inputs: Mapping[str, str], env: Mapping[str, str], wrapper: Sequence[str] = ()
) -> dict[str, str]:
    """Run action.yml's `run:` steps as a runner does (each after `wrapper`, if any); the step outputs
    (steps.ID.NAME)."""
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
            [*wrapper, "bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
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


def _measure_once(
    work: Path, python: str, workspace: Path, seconds: dict[str, list[float]],
    installers: dict[str, list[str]], index: private_index.PrivateIndex | None,
) -> None:  # fmt: skip
    job = work / "install-job"
    shutil.rmtree(job, ignore_errors=True)
    env = _runner_env(job, workspace)
    inputs = {"results": "**/*.json", "ecosystem": "bench", "batch-id": "bench-install", "dry-run": "true"}
    payload = workspace / "batch-metrics-payload.json"

    def action(key: str, env: Mapping[str, str], wrapper: Sequence[str] = ()) -> None:
        payload.unlink(missing_ok=True)
        began = time.perf_counter()
        outputs = run_action(inputs, env, wrapper)
        seconds[key].append(time.perf_counter() - began)
        if outputs.get("steps.run.outputs.total") != str(RESULTS) or not payload.exists():
            raise BenchError(f"the action's dry run did not count {RESULTS} results: {outputs}")
        installers[key].append(outputs.get("steps.install.outputs.installer") or "none (reused)")

    action("new job", env)
    action("same job", env)
    if index is not None:
        private = work / "install-job-private"
        shutil.rmtree(private, ignore_errors=True)
        pip_conf = private_index.runner_pip_conf(work / "private-pip.conf")
        runner = _runner_env(private, workspace) | {"PIP_CONFIG_FILE": str(pip_conf)}
        action("private index", runner, index.enter())
        shutil.rmtree(private)
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


@contextmanager
def _private_index(work: Path) -> Iterator[private_index.PrivateIndex | str]:
    """The private index, running, or why it cannot run here."""
    why = private_index.unavailable()
    if why is not None:
        yield why
        return
    wheels = private_index.pinned_wheels(sys.executable, ROOT / ".venv" / "cache")
    served = work / "private-index"
    shutil.rmtree(served, ignore_errors=True)
    served.mkdir(parents=True)
    with private_index.private_index(served, wheels) as index:
        yield index


def _path(installers: list[str]) -> str:
    """Which installer a row's runs took: `uv`, or each with its count when they differ."""
    counts = {name: installers.count(name) for name in dict.fromkeys(installers)}
    return next(iter(counts)) if len(counts) == 1 else ", ".join(f"{n} {c}x" for n, c in counts.items())


def _install_rows(scale: Scale, work: Path) -> list[Row]:
    python = subprocess.run(["python3", "-c", "import sys; print(sys.executable)"],
                            capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    workspace = data.write_dataset(
        "validation-results", work / "install-workspace", files=10, results=RESULTS
    ).directory
    names = ("new job", "same job", "private index", "bare venv", "pip --python", "venv + its pip")
    seconds: dict[str, list[float]] = {name: [] for name in names}
    installers: dict[str, list[str]] = {name: [] for name in names}
    with _private_index(work) as index:
        running = None if isinstance(index, str) else index
        # One round that warms pip's cache, not counted.
        _measure_once(work, python, workspace, {n: [] for n in names}, {n: [] for n in names}, running)
        for _ in range(scale.runs):
            _measure_once(work, python, workspace, seconds, installers, running)
    baseline = statistics.median(seconds["bare venv"])
    name = "bare `python3 -m venv`"

    def row(label: str, key: str, limit: float | None) -> Row:
        return ratio_row(label, statistics.median(seconds[key]), baseline, unit="s", baseline_name=name,
                         limit=limit, runs=scale.runs, ours_seconds=seconds[key],
                         baseline_seconds=seconds["bare venv"], installers=installers[key])  # fmt: skip

    steps = f"action.yml's steps + dry run, {RESULTS:,} results; cache miss"
    private = "action install: new job, private index (HTTPS on loopback, private CA in the system store; "
    return [
        row(f"action install: new job ({steps}; path: {_path(installers['new job'])})", "new job", _TARGET),
        row(f"action install: same job, second use ({steps.removesuffix('; cache miss')})", "same job", None),
        Row.unavailable(f"{private}{steps})", index, f"≤ {_TARGET:g}x") if isinstance(index, str)
        else row(f"{private}{steps}; path: {_path(installers['private index'])})", "private index", _TARGET),
        row("action install, option: venv without pip + runner's `pip --python`", "pip --python", None),
        row("action install, option: venv + its own pip (the set-up before uv)", "venv + its pip", None),
    ]  # fmt: skip


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
