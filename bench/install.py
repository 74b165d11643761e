"""Workload 5, action install: the composite action's venv + pinned requirements, and the image size.

The install repeats action.yml's install step — `python -m venv`, then `pip install
--require-hashes --no-deps --only-binary :all: -r requirements/action.txt` — timed from a warm
pip cache (one install first, not counted), as a runner with a cached pip directory sees it.
Baseline: creating the bare venv, the part no requirements file can shrink. The image size is
read with podman from `batch-metrics:test` (the tag the container tests build), beside the size
of the base image it was built from.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
from pathlib import Path

from bench.measure import MIB, PYTHON, ROOT, Row, Scale, ratio_row, run_process

REQUIREMENTS = ROOT / "requirements" / "action.txt"
IMAGE = "batch-metrics:test"
BASE_IMAGE = "localhost/python-standin"
_CONTAINER_ENV = Path("/tmp/container-env")  # where ../shared/tools/container-env keeps its config


def _install(work: Path) -> tuple[float, float]:
    """(seconds to create the venv, seconds to create it and install the requirements)."""
    venv = work / "install-venv"
    shutil.rmtree(venv, ignore_errors=True)
    create = run_process([PYTHON, "-m", "venv", str(venv)]).seconds
    install = run_process([
        str(venv / "bin" / "python"), "-m", "pip", "install", "--require-hashes", "--no-deps",
        "--only-binary", ":all:", "--disable-pip-version-check", "--no-input", "--quiet",
        "-r", str(REQUIREMENTS),
    ]).seconds  # fmt: skip
    return create, create + install


def _podman_env() -> dict[str, str]:
    env = dict(os.environ)
    for name, file in (("CONTAINERS_CONF", "containers.conf"), ("CONTAINERS_STORAGE_CONF", "storage.conf")):
        if name not in env and (_CONTAINER_ENV / file).exists():
            env[name] = str(_CONTAINER_ENV / file)
    return env


def _image_bytes(podman: str, image: str) -> int | None:
    inspected = subprocess.run(
        [podman, "image", "inspect", image, "--format", "{{.Size}}"],
        capture_output=True, text=True, env=_podman_env(), check=False,
    )  # fmt: skip
    return int(inspected.stdout.strip()) if inspected.returncode == 0 and inspected.stdout.strip() else None


def _image_row() -> Row:
    label = f"Docker image size ({IMAGE})"
    podman = shutil.which("podman")
    if podman is None:
        return Row.unavailable(label, 'podman not installed (eval "$(../shared/tools/container-env)")')
    size, base = _image_bytes(podman, IMAGE), _image_bytes(podman, BASE_IMAGE)
    if size is None or base is None:
        missing = IMAGE if size is None else BASE_IMAGE
        return Row.unavailable(label, f"not built ({missing} is not in podman's image store)")
    return ratio_row(label, size / MIB, base / MIB, unit="MiB", baseline_name=f"base image {BASE_IMAGE}",
                     limit=None, image_bytes=size, base_bytes=base)  # fmt: skip


def run(scale: Scale, work: Path) -> list[Row]:
    label = "action install: venv + `pip install --require-hashes` (warm cache)"
    if not REQUIREMENTS.exists():
        rows = [Row.unavailable(label, f"{REQUIREMENTS.relative_to(ROOT)} does not exist yet")]
    elif scale.offline:
        rows = [Row.unavailable(label, "--offline: pip would contact the package index")]
    else:
        _install(work)  # warms pip's cache
        measured = [_install(work) for _ in range(scale.runs)]
        venv_only = statistics.median(created for created, _ in measured)
        total = statistics.median(installed for _, installed in measured)
        rows = [
            ratio_row(label, total, venv_only, unit="s", baseline_name="bare `python -m venv`", limit=None,
                      runs=scale.runs, requirements=REQUIREMENTS.read_text().count("--hash="))
        ]  # fmt: skip
        shutil.rmtree(work / "install-venv", ignore_errors=True)
    return [*rows, _image_row()]
