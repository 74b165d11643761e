"""The image's contract: what GitHub's Docker action runner gives the container, and what it expects back.

The first test needs no container engine: it lays out the image's files as the Dockerfile copies
them and runs its ENTRYPOINT the way the runner runs the container (workspace mounted at the
working directory, HOME=/github/home, only INPUT_* and GITHUB_* variables, no TTY). The tests
marked `container` build the real image with docker or podman (tests/containers.py finds which)
and run it, including `serve`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, parse_outputs, unused_port, wait_healthy
from tests.containers import Engine, discover, github_dirs, run_action_container

IMAGE = "batch-metrics:test"
# A budget for what the image adds to its base: the pinned wheels and the package, no build tools.
ADDED_BYTES_BUDGET = 64 * 1024 * 1024
TOKEN = "container-test-token"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text(encoding="utf-8"))
    pairs = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            instruction, _, arguments = line.strip().partition(" ")
            pairs.append((instruction.upper(), arguments.strip()))
    return pairs


def test_entrypoint_runs_as_the_container_runs_it(tmp_path: Path, fixtures: Path) -> None:
    instructions = dockerfile_instructions()
    app = tmp_path / "app"
    for source, destination in (
        shlex.split(arguments) for instruction, arguments in instructions if instruction == "COPY"
    ):
        if destination.startswith("/app/"):
            target = app / destination.removeprefix("/app/")
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy(ROOT / source, target)
    image_env = dict(
        assignment.split("=", 1)
        for instruction, arguments in instructions
        if instruction == "ENV"
        for assignment in shlex.split(arguments)
    )
    entrypoint = json.loads(
        next(arguments for instruction, arguments in instructions if instruction == "ENTRYPOINT")
    )
    assert entrypoint == ["python", "/app/entrypoint.py"]
    command = [sys.executable, str(app / "entrypoint.py")]

    dirs = github_dirs(tmp_path, fixtures)
    workspace, commands = dirs["workspace"], dirs["file_commands"]
    before = {path.relative_to(workspace) for path in workspace.rglob("*")}
    env = {
        **image_env,
        "PATH": os.environ["PATH"],
        "HOME": str(dirs["home"]),
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_OUTPUT": str(commands / "set_output"),
        "GITHUB_STEP_SUMMARY": str(commands / "step_summary"),
        "GITHUB_REPOSITORY": "octo/recipes",
        "GITHUB_RUN_ID": "4242",
        "GITHUB_RUN_ATTEMPT": "2",
        # A Docker action gets its inputs upper-cased with the hyphens kept.
        "INPUT_RESULTS": "results/**",
        "INPUT_DRY-RUN": "true",
        "INPUT_BATCH-ID": "container-batch-7",
        "INPUT_PAYLOAD-PATH": "batch-metrics-payload.json",
        "INPUT_FAIL-ON-ERROR": "false",
    }
    proc = subprocess.run(
        command,
        cwd=workspace,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        umask=0o022,  # Docker's default
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr

    payload_path = workspace / "batch-metrics-payload.json"
    payload = json.loads(payload_path.read_text(encoding="utf-8"))
    assert payload["batch_id"] == "container-batch-7"
    outputs = parse_outputs((commands / "set_output").read_text(encoding="utf-8"))
    assert outputs["status"] == "dry-run"
    assert outputs["total"] == str(payload["total_recipes"]) == str(len(payload["results"]))
    assert payload["total_recipes"] > 0
    assert "container-batch-7" in (commands / "step_summary").read_text(encoding="utf-8")
    # The container writes only the payload into the runner's workspace ...
    after = {path.relative_to(workspace) for path in workspace.rglob("*")}
    assert after - before == {Path("batch-metrics-payload.json")}
    # ... as root: the job's later steps run as the runner's user and must still read it.
    assert payload_path.stat().st_mode & 0o044 == 0o044, oct(payload_path.stat().st_mode)


# --- finding an engine ---------------------------------------------------------------------------


def test_where_there_is_no_engine_the_discovery_says_so(tmp_path: Path) -> None:
    # What `scripts/dev.py test` runs to decide whether to leave the container tests out. On a
    # PATH holding only Python there is neither docker nor podman; a docker client without its
    # daemon (as on this project's CI machine) is refused the same way, by `docker info`.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "info"], capture_output=True, timeout=30, check=False).returncode:
        (bin_dir / "docker").symlink_to(docker)
    probe = subprocess.run(
        [sys.executable, "-m", "tests.containers"],
        cwd=ROOT,
        env={**os.environ, "PATH": str(bin_dir)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert probe.returncode == 1, probe.stdout + probe.stderr
    assert probe.stdout == "neither docker (with a running daemon) nor podman answers here\n"


# --- the real image, built and run with docker or podman ---------------------------------------


@pytest.fixture(scope="module")
def engine() -> Engine:
    found = discover()
    if isinstance(found, str):
        pytest.fail(f"no container engine: {found} (leave these tests out with -m 'not container')")
    return found


@pytest.fixture(scope="module")
def image(engine: Engine) -> str:
    build = engine.build(IMAGE)
    assert build.returncode == 0, (
        f"{engine.name} build failed:\n{build.stdout[-4000:]}\n{build.stderr[-4000:]}"
    )
    return IMAGE


@pytest.fixture
def endpoint(engine: Engine, image: str) -> Iterator[str]:
    """The image's `serve` on loopback (host network), on a SQLite file inside the container."""
    port = unused_port()
    started = engine(
        "run", "-d", "--rm", "--network", "host", "-e", f"BATCH_METRICS_TOKEN={TOKEN}",
        image, "serve", "--host", "127.0.0.1", "--port", str(port), "--db", "/tmp/metrics.db",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    container = started.stdout.strip()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, seconds=60, why=lambda: "\n" + engine("logs", container).stderr)
        yield url
    finally:
        engine("rm", "-f", container)


@pytest.mark.container
def test_image_runs_the_action_job(engine: Engine, image: str, tmp_path: Path, fixtures: Path) -> None:
    dirs = github_dirs(tmp_path, fixtures)
    inputs = {"results": "results/**", "dry-run": "true", "batch-id": "image-batch", "ecosystem": "homebrew"}
    run = run_action_container(engine, image, dirs, inputs)
    assert run.returncode == 0, run.stdout + run.stderr
    payload = json.loads((dirs["workspace"] / "batch-metrics-payload.json").read_text(encoding="utf-8"))
    assert (payload["batch_id"], payload["ecosystem"]) == ("image-batch", "homebrew")
    outputs = parse_outputs((dirs["file_commands"] / "set_output").read_text(encoding="utf-8"))
    assert outputs["status"] == "dry-run"
    assert outputs["total"] == str(payload["total_recipes"]) != "0"


@pytest.mark.container
def test_image_serves_the_endpoint_and_the_action_uploads_to_it(
    engine: Engine, image: str, endpoint: str, tmp_path: Path, fixtures: Path
) -> None:
    dirs = github_dirs(tmp_path, fixtures)
    inputs = {"results": "results/**", "endpoint": endpoint, "token": TOKEN, "batch-id": "served-1"}
    run = run_action_container(engine, image, dirs, inputs)
    assert run.returncode == 0, run.stdout + run.stderr
    outputs = parse_outputs((dirs["file_commands"] / "set_output").read_text(encoding="utf-8"))
    assert outputs["status"] == "uploaded", run.stdout
    assert outputs["batch-run-id"].isdigit()
    assert TOKEN not in run.stdout.replace(f"::add-mask::{TOKEN}", "") + run.stderr
    request = urllib.request.Request(
        f"{endpoint}/batch-runs?limit=5", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        stored = response.read().decode()
    assert "served-1" in stored


@pytest.mark.container
def test_what_the_image_leaves_in_the_workspace_belongs_to_the_workspace_owner(
    engine: Engine, image: str, tmp_path: Path, fixtures: Path
) -> None:
    """The runner's later steps run as the workspace's owner, not as the container's root."""
    dirs = github_dirs(tmp_path, fixtures)
    workspace = dirs["workspace"]
    if os.geteuid() == 0:  # as GitHub's runner user owns the workspace, and the container runs as root
        for path in (workspace, *workspace.rglob("*")):
            os.chown(path, 1001, 1001)
    owner = workspace.stat()
    inputs = {"results": "results/**", "endpoint": f"http://127.0.0.1:{unused_port()}", "token": TOKEN,
              "payload-path": "out/payload.json", "batch-id": "kept-1", "retries": "0"}  # fmt: skip
    run = run_action_container(engine, image, dirs, inputs)
    assert run.returncode == 0, run.stdout + run.stderr
    outputs = parse_outputs((dirs["file_commands"] / "set_output").read_text(encoding="utf-8"))
    assert outputs["status"] == "failed", run.stdout
    kept = list((workspace / "batch-metrics-pending").glob("kept-1-*.json"))
    assert len(kept) == 1, run.stdout
    for path in (workspace / "out", workspace / "out" / "payload.json", kept[0].parent, kept[0]):
        assert (path.stat().st_uid, path.stat().st_gid) == (owner.st_uid, owner.st_gid), path


@pytest.mark.container
def test_image_is_the_cli_too(engine: Engine, image: str) -> None:
    for args in (["--help"], ["serve", "--help"]):
        run = engine("run", "--rm", image, *args)
        assert run.returncode == 0, run.stderr
        assert "usage: batch-metrics" in run.stdout


@pytest.mark.container
def test_image_is_small_and_carries_no_build_tools(
    engine: Engine, image: str, record_property: Callable[[str, object], None]
) -> None:
    sizes = {
        name: int(engine("image", "inspect", "--format", "{{.Size}}", name).stdout)
        for name in (image, engine.base_image)
    }
    added = sizes[image] - sizes[engine.base_image]
    record_property("image_bytes", sizes[image])
    print(f"{image}: {sizes[image] / 2**20:.1f} MiB ({added / 2**20:.1f} MiB over {engine.base_image})")
    assert 0 < added <= ADDED_BYTES_BUDGET
    probe = "for tool in gcc cc make rustc; do command -v $tool && exit 1; done; test ! -e /root/.cache/pip"
    run = engine("run", "--rm", "--entrypoint", "sh", image, "-c", probe)
    assert run.returncode == 0, f"build leftovers in the image: {run.stdout}"
