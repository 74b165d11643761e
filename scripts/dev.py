"""Developer entry points that work on a fresh machine with only Python 3.11+ and git.

    python3 scripts/dev.py demo [--keep]  # walkthrough: endpoint on SQLite, the action's job on sample data
    python3 scripts/dev.py test           # ruff, mypy and the whole pytest suite
    python3 scripts/dev.py bench          # the benchmark suite, each figure beside its baseline

Each creates `.venv/` beside this repository on first use and installs the
project into it, so nothing is installed system-wide.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
# The lines of pip's output that show progress, one or two per package; the rest is shown on failure.
PIP_PROGRESS = ("Collecting", "Downloading", "Processing", "Installing", "Successfully")


def ensure_venv(extras: str) -> None:
    """Install the project with `extras` into .venv unless it (or dev, which includes all) is current."""
    pins = ROOT / "requirements" / "image.txt"
    stamp = " ".join(str(path.stat().st_mtime_ns) for path in (ROOT / "pyproject.toml", pins))
    markers = [VENV / f".installed-{name}" for name in dict.fromkeys((extras, "dev"))]
    if any(marker.exists() and marker.read_text() == stamp for marker in markers):
        print(f"   {VENV} is up to date", flush=True)
        return
    if not PYTHON.exists():
        print(f"   creating {VENV}", flush=True)
        venv.create(VENV, with_pip=True)
    # The runtime packages at the versions the action and the image ship, so that the tests (and
    # the generated documents they check) see what users run.
    constraints = VENV / "constraints.txt"
    shipped = re.findall(r"^[A-Za-z0-9._-]+==\S+", pins.read_text(encoding="utf-8"), re.MULTILINE)
    constraints.write_text("".join(f"{pin}\n" for pin in shipped), encoding="utf-8")
    print(f"   installing the project and its dependencies ({extras} extras) into {VENV}", flush=True)
    command = [str(PYTHON), "-m", "pip", "install", "--progress-bar", "off", "-c", str(constraints)]
    pip = subprocess.Popen(
        [*command, "-e", f".[{extras}]"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    said = []
    for line in pip.stdout or ():  # a pipe: pip's lines as it prints them, so the wait shows progress
        said.append(line)
        if line.startswith(PIP_PROGRESS):
            print(f"   pip | {line.rstrip()}", flush=True)
    if pip.wait() != 0:
        sys.exit(f"{''.join(said)}pip exited with status {pip.returncode} (all it said is above)")
    markers[0].write_text(stamp)


def demo(arguments: list[str]) -> int:
    """Step 1 here (the install); scripts/demo.py, run by the venv's Python, does the rest."""
    print("batch-metrics demo: an endpoint on loopback stores what the GitHub Action's job uploads.")
    print("\n1. Install the project into .venv (under a minute on the first run, then instant)", flush=True)
    ensure_venv("server")
    return subprocess.run(
        [str(PYTHON), str(ROOT / "scripts" / "demo.py"), *arguments], check=False
    ).returncode


def postgres_available() -> bool:
    if os.environ.get("BATCH_METRICS_TEST_DATABASE_URL"):
        return True
    return any(Path("/usr/lib/postgresql").glob("*/bin/initdb"))


def test(pytest_args: list[str]) -> int:
    """Lint, type-check and run the whole suite; in CI (CI=true) nothing may be left out."""
    ensure_venv("dev")
    for check in (["ruff", "check", "."], ["ruff", "format", "--check", "."], ["mypy"]):
        if subprocess.run([str(BIN / check[0]), *check[1:]], cwd=ROOT, check=False).returncode != 0:
            print(f"`{' '.join(check)}` failed (above); the tests did not run")
            return 1
    deselect = []
    if os.environ.get("CI") != "true":
        if not postgres_available():
            print("note: no PostgreSQL here; deselecting the postgres tests (.ci/run installs it)")
            deselect.append("not postgres")
        # Pulls the Dockerfile's base image if the engine lacks it, so this can take a minute once.
        print("looking for a container engine (docker or podman) and the base image", flush=True)
        engine = subprocess.run(
            [str(PYTHON), "-m", "tests.containers"], cwd=ROOT, capture_output=True, text=True, check=False
        )
        if engine.returncode != 0:
            why = engine.stdout.strip() or engine.stderr.strip()
            print(f"note: {why}; deselecting the container tests (.ci/run sets up podman)")
            deselect.append("not container")
    marker = ["-m", " and ".join(deselect)] if deselect else []
    return subprocess.run(
        [str(PYTHON), "-m", "pytest", *marker, *pytest_args], cwd=ROOT, check=False
    ).returncode


def main() -> int:
    command, *rest = sys.argv[1:] or ["test"]
    if command == "demo":
        return demo(rest)
    if command == "test":
        return test(rest)
    if command == "bench":
        ensure_venv("dev")
        return subprocess.run([str(PYTHON), "-m", "bench", *rest], cwd=ROOT, check=False).returncode
    sys.exit(
        f"usage: python3 scripts/dev.py demo [--keep] | test [pytest args] | bench [...] (got {command!r})"
    )


if __name__ == "__main__":
    sys.exit(main())
