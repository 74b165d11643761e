"""Developer entry points that work on a fresh machine with only Python 3.11+ and git.

    python3 scripts/dev.py demo   # endpoint on SQLite + the action's job on sample data
    python3 scripts/dev.py test   # ruff, mypy and the whole pytest suite
    python3 scripts/dev.py bench  # the benchmark suite, each figure beside its baseline

Both create `.venv/` beside this repository on first use and install the
project into it, so nothing is installed system-wide.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")


def ensure_venv(extras: str) -> None:
    pins = ROOT / "requirements" / "image.txt"
    marker = VENV / f".installed-{extras}"
    stamp = " ".join(str(path.stat().st_mtime_ns) for path in (ROOT / "pyproject.toml", pins))
    if marker.exists() and marker.read_text() == stamp:
        return
    if not PYTHON.exists():
        print(f"creating {VENV}", flush=True)
        venv.create(VENV, with_pip=True)
    # The runtime packages at the versions the action and the image ship, so that the tests (and
    # the generated files they check, wire.json above all) see what users run.
    constraints = VENV / "constraints.txt"
    shipped = re.findall(r"^[A-Za-z0-9._-]+==\S+", pins.read_text(encoding="utf-8"), re.MULTILINE)
    constraints.write_text("".join(f"{pin}\n" for pin in shipped), encoding="utf-8")
    command = [str(PYTHON), "-m", "pip", "install", "-q", "-c", str(constraints), "-e", f".[{extras}]"]
    subprocess.run(command, cwd=ROOT, check=True)
    marker.write_text(stamp)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_healthy(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"the endpoint exited with status {server.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - loopback URL built above
                return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"the endpoint did not answer {url} within 30 s")


def demo() -> int:
    """Serve on loopback with a throwaway SQLite file, upload the sample results, read them back."""
    ensure_venv("server")
    workdir = Path(tempfile.mkdtemp(prefix="batch-metrics-demo-"))
    token = secrets.token_urlsafe(24)
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {**os.environ, "BATCH_METRICS_TOKEN": token}
    db = workdir / "batch-metrics.db"
    cli = [str(PYTHON), "-m", "batch_metrics.cli"]
    print(f"demo: endpoint {endpoint}, database {db}", flush=True)
    server = subprocess.Popen([*cli, "serve", "--port", str(port), "--db", str(db)], env=env)
    try:
        wait_healthy(f"{endpoint}/health", server)
        shutil.copytree(ROOT / "examples" / "results", workdir / "results")
        job = subprocess.run(
            [
                *cli,
                "run",
                "--workspace",
                str(workdir),
                "--results",
                "results/**",
                "--endpoint",
                endpoint,
                "--ecosystem",
                "homebrew",
                "--payload-path",
                str(workdir / "payload.json"),
            ],
            env=env,
            check=False,
        )
        request = urllib.request.Request(  # noqa: S310 - loopback URL built above
            f"{endpoint}/batch-runs?limit=5", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            print("stored runs:", response.read().decode())
        return job.returncode
    finally:
        server.terminate()
        server.wait(timeout=30)


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
        return demo()
    if command == "test":
        return test(rest)
    if command == "bench":
        ensure_venv("dev")
        return subprocess.run([str(PYTHON), "-m", "bench", *rest], cwd=ROOT, check=False).returncode
    sys.exit(f"usage: python3 scripts/dev.py demo | test [pytest args] | bench [options]  (got {command!r})")


if __name__ == "__main__":
    sys.exit(main())
