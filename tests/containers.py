"""The container engine the container tests use, and the base image they build on, found once.

docker where its daemon answers (GitHub's ubuntu runners), else podman (configured as usual by
CONTAINERS_CONF / CONTAINERS_STORAGE_CONF when set). The base is the Dockerfile's `BASE_IMAGE`
default: already in the engine's store, or by its tag alone when the default is pinned by digest
(a local stand-in tagged like the official image), or else pulled once here.

Standard library only. `python -m tests.containers` prints what it finds and exits 1 when there
is nothing to use, with the reason: `scripts/dev.py test` runs it to decide whether the
`container` tests can run.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE_SECONDS = 30
PULL_SECONDS = 600


@dataclass(frozen=True)
class Engine:
    """`command` runs the engine (docker or podman) with `env`; `base_image` is in its store."""

    name: str
    command: list[str]
    env: dict[str, str]
    base_image: str

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.command, *args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def build(self, tag: str, context: Path = ROOT, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        """Build `context`'s Dockerfile on `base_image`, which is local, so nothing pulls it again."""
        # docker's --pull is a boolean; podman's takes a policy. podman builds here on the host's
        # network because a rootful podman without a configured CNI bridge has none of its own.
        flags = ["--pull=false"] if self.name == "docker" else ["--pull=never", "--network", "host"]
        return self(
            "build", *flags, "--build-arg", f"BASE_IMAGE={self.base_image}", "-t", tag, str(context),
            timeout=timeout,
        )  # fmt: skip


def dockerfile_base_image(dockerfile: Path = ROOT / "Dockerfile") -> str:
    match = re.search(r"^ARG BASE_IMAGE=(\S+)", dockerfile.read_text(encoding="utf-8"), re.MULTILINE)
    if match is None:
        raise ValueError(f"{dockerfile} has no `ARG BASE_IMAGE=` default")
    return match.group(1)


def _answers(command: list[str], env: dict[str, str]) -> bool:
    try:
        probe = subprocess.run(
            [*command, "info"], env=env, stdin=subprocess.DEVNULL, capture_output=True,
            timeout=PROBE_SECONDS, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return False
    return probe.returncode == 0


def _local_base(engine: Engine, default: str) -> str | None:
    # A digest pin is looked up by its tag too: a stand-in is tagged like the image it stands for.
    for name in dict.fromkeys((default, default.split("@", 1)[0])):
        if engine("image", "inspect", "--format", "{{.Id}}", name).returncode == 0:
            return name
    return None


@functools.cache
def discover() -> Engine | str:
    """The engine to use, or why there is none (a sentence)."""
    env = dict(os.environ)
    installed = (name for name in ("docker", "podman") if shutil.which(name, path=env.get("PATH")))
    name = next((name for name in installed if _answers([name], env)), None)
    if name is None:
        return "neither docker (with a running daemon) nor podman answers here"
    default = dockerfile_base_image()
    engine = Engine(name, [name], env, default)
    local = _local_base(engine, default)
    if local is not None:
        return Engine(engine.name, engine.command, env, local)
    try:
        pull = engine("pull", default, timeout=PULL_SECONDS)
    except subprocess.TimeoutExpired:
        return f"{engine.name} could not pull the base image {default} within {PULL_SECONDS} s"
    if pull.returncode != 0:
        return f"{engine.name} has no base image {default} and cannot pull it: {pull.stderr.strip()[-300:]}"
    return engine


def main() -> int:
    found = discover()
    if isinstance(found, str):
        print(found)
        return 1
    print(f"{found.name}, base image {found.base_image}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


# --- running the image as GitHub's runner runs a Docker action ---------------------------------------


def github_dirs(tmp_path: Path, fixtures: Path) -> dict[str, Path]:
    """The runner's mounts: workspace (holding real result files), home and file_commands under github/."""
    dirs = {name: tmp_path / "github" / name for name in ("workspace", "home", "file_commands")}
    for directory in dirs.values():
        directory.mkdir(parents=True)
    results = dirs["workspace"] / "results"
    results.mkdir()
    shutil.copyfile(fixtures / "tsuku/failures/batch-2026-02-19T14-31-25Z.jsonl", results / "records.jsonl")
    shutil.copyfile(fixtures / "junit/pytest-junit.fail.xml", results / "pytest.xml")
    return dirs


def run_action_container(
    engine: Engine, image: str, dirs: dict[str, Path], inputs: dict[str, str], network: str = "host"
) -> subprocess.CompletedProcess[str]:
    """`docker run` as GitHub's runner does it for a Docker action (mounts, workdir, INPUT_*)."""
    mounts = ["-v", f"{dirs['workspace']}:/github/workspace", "-v", f"{dirs['home']}:/github/home"]
    mounts += ["-v", f"{dirs['file_commands']}:/github/file_commands", "-w", "/github/workspace"]
    variables = {
        "HOME": "/github/home",
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": "/github/workspace",
        "GITHUB_OUTPUT": "/github/file_commands/set_output",
        "GITHUB_STEP_SUMMARY": "/github/file_commands/step_summary",
        "GITHUB_RUN_ID": "77",
        "GITHUB_RUN_ATTEMPT": "1",
        **{f"INPUT_{name.upper()}": value for name, value in inputs.items()},
    }
    flags = [part for name, value in variables.items() for part in ("-e", f"{name}={value}")]
    return engine("run", "--rm", "--network", network, *mounts, *flags, image, timeout=300)
