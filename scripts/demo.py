"""The demo's walkthrough, steps 2 to 5 (`python3 scripts/dev.py demo` installs first, as step 1).

    python scripts/demo.py [--keep]   # with the Python of a venv that has batch-metrics[server]

It starts the endpoint on loopback with a throwaway SQLite database, runs the action's job on
examples/results/ against it, and reads the stored batch back through the read API. Each stream
is labelled: the endpoint's log goes to a file it names, the job's messages are prefixed `job |`,
and its outputs are shown as a later workflow step reads them. In a terminal the endpoint stays
up until Enter, so the commands under "Where to look next" work; then the temporary folder is
removed unless `--keep` (or a failure) keeps it, and the last line says which.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "examples" / "results"
ECOSYSTEM = "homebrew"
HEALTH_SECONDS = 30


def say(text: str = "") -> None:
    print(text, flush=True)


def step(number: int, text: str) -> None:
    say()
    say(f"{number}. {text}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get(url: str, token: str | None = None) -> tuple[int, bytes]:
    """Status and body of a GET on loopback; an HTTP error status is an answer too."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - loopback URL built here
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def parse_outputs(text: str) -> dict[str, str]:
    """$GITHUB_OUTPUT as the runner reads it: `name=value` lines and `name<<DELIMITER` blocks."""
    outputs: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        name, is_block, delimiter = line.partition("<<")
        if is_block and "=" not in name:
            block = []
            for body in lines:
                if body == delimiter:
                    break
                block.append(body)
            outputs[name] = "\n".join(block)
        elif "=" in line:
            key, _, value = line.partition("=")
            outputs[key] = value
    return outputs


class DemoError(Exception):
    """A step that did not do what the walkthrough says; the message says what happened instead."""


@contextmanager
def endpoint(workdir: Path, python: str) -> Iterator[str]:
    """`batch-metrics serve` on loopback, its log in workdir/server.log; stopped (SIGTERM) on exit."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = workdir / "server.log"
    arguments = ["serve", "--port", str(port), "--db", str(workdir / "batch-metrics.db")]
    arguments += ["--token-file", str(workdir / "token")]
    say(f"   $ batch-metrics {shlex.join(arguments)}")
    command = [python, "-m", "batch_metrics.cli", *arguments]
    with log.open("wb") as sink:
        server = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + HEALTH_SECONDS
        while True:
            if server.poll() is not None:
                raise DemoError(f"the endpoint exited with status {server.returncode}; see {log}")
            try:
                if get(f"{url}/health")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise DemoError(
                    f"the endpoint did not answer {url}/health within {HEALTH_SECONDS} s; see {log}"
                )
            time.sleep(0.2)
        say(f"   ready: GET {url}/health answers 200. Its log goes to {log}")
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def copy_results(workdir: Path) -> None:
    results = workdir / "results"
    shutil.copytree(SAMPLES, results)
    for path in sorted(results.iterdir()):
        say(f"   results/{path.name:<52} {path.stat().st_size:>6} bytes")


def run_job(workdir: Path, python: str, url: str) -> dict[str, str]:
    """The action's job as the runner runs it: inputs, $GITHUB_OUTPUT, $GITHUB_STEP_SUMMARY."""
    arguments = ["run", "--workspace", str(workdir), "--results", "results/**", "--endpoint", url]
    arguments += ["--ecosystem", ECOSYSTEM, "--token-file", str(workdir / "token")]
    say(f"   $ batch-metrics {shlex.join(arguments)}")
    env = {
        **os.environ,
        "GITHUB_OUTPUT": str(workdir / "outputs.txt"),
        "GITHUB_STEP_SUMMARY": str(workdir / "summary.md"),
    }
    job = subprocess.Popen(
        [python, "-m", "batch_metrics.cli", *arguments],
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for line in job.stdout or ():  # a pipe: the job's lines as it prints them
        say(f"   job | {line.rstrip()}")
    if job.wait() != 0:
        raise DemoError(f"the job exited with status {job.returncode}")
    outputs = parse_outputs((workdir / "outputs.txt").read_text(encoding="utf-8"))
    say("   Its outputs, as a later step reads them (steps.<id>.outputs.<name>):")
    for name, value in outputs.items():
        say(f"     {name:<13} {value}")
    say(f"   It wrote the payload to {workdir / outputs['payload-path']} before sending it,")
    say(f"   and the Markdown job summary GitHub would show to {workdir / 'summary.md'}")
    if outputs.get("status") != "uploaded":
        raise DemoError(
            f"the job's status is {outputs.get('status')!r}, not 'uploaded': see its warning above"
        )
    return outputs


def stored_table(run: dict[str, Any]) -> list[tuple[str, str]]:
    """What the endpoint stored for one batch run, as (label, value) lines."""
    counts = (
        f"{run['total_recipes']} ({run['passed']} passed, {run['failed']} failed, {run['skipped']} skipped)"
    )
    return [
        ("batch run id", str(run["id"])),
        ("batch id", str(run["batch_id"])),
        ("ecosystem", str(run["ecosystem"])),
        ("started at", str(run["started_at"])),
        ("results", counts),
        ("success rate", f"{run['success_rate']}  (passed / (passed + failed))"),
        ("macOS minutes", str(run["macos_minutes"])),
        ("Linux minutes", str(run["linux_minutes"])),
        ("rows stored", str(len(run["results"]))),
    ]


def read_back(url: str, token: str, batch_run_id: str) -> None:
    status, body = get(f"{url}/batch-runs/{batch_run_id}", token)
    if status != 200:
        raise DemoError(f"GET /batch-runs/{batch_run_id} answered {status}: {body[:200]!r}")
    for label, value in stored_table(json.loads(body)):
        say(f"   {label:<14} {value}")


def look_next(url: str, workdir: Path, batch_run_id: str, interactive: bool) -> None:
    say()
    say("Where to look next" + (" (the endpoint runs until you press Enter):" if interactive else ":"))
    say(f'   TOKEN="$(cat {workdir / "token"})"')
    say(f"   curl -s -H \"Authorization: Bearer $TOKEN\" '{url}/batch-runs/{batch_run_id}'")
    say(f"   curl -s -H \"Authorization: Bearer $TOKEN\" '{url}/batch-runs?ecosystem={ECOSYSTEM}&limit=5'")
    if get(f"{url}/")[0] == 200:
        say(f"   open {url}/ while the server runs: the dashboard")
    say("   README.md, sections 'Use it in a workflow' and 'Run the endpoint', to do this for real")
    if not interactive:
        say("   (not a terminal, so the endpoint stops now: run the demo in one to keep it up)")
        return
    try:
        input()
    except (EOFError, KeyboardInterrupt):
        say()


def walkthrough(workdir: Path, python: str, interactive: bool) -> None:
    token = secrets.token_urlsafe(24)
    (workdir / "token").write_text(token + "\n", encoding="utf-8")
    step(2, "Start the endpoint on loopback, on a new SQLite database, with a random token")
    say(f"   This run's files go to {workdir}, removed at the end unless --keep.")
    with endpoint(workdir, python) as url:
        step(3, f"A batch job has written its result files (copied from {SAMPLES.relative_to(ROOT)}/)")
        copy_results(workdir)
        step(4, "Run the action's job on them: collect every file, build one payload, upload it")
        outputs = run_job(workdir, python, url)
        batch_run_id = outputs["batch-run-id"]
        step(5, f"Read the stored batch back: GET /batch-runs/{batch_run_id}")
        read_back(url, token, batch_run_id)
        look_next(url, workdir, batch_run_id, interactive)


def main(argv: list[str]) -> int:
    if argv not in ([], ["--keep"]):
        sys.exit(f"usage: {Path(sys.argv[0]).name} [--keep]  (got {shlex.join(argv)})")
    keep = argv == ["--keep"]
    workdir = Path(tempfile.mkdtemp(prefix="batch-metrics-demo-"))
    try:
        walkthrough(workdir, sys.executable, interactive=sys.stdin.isatty())
    except DemoError as error:
        say()
        say(f"demo failed: {error}")
        log = workdir / "server.log"
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines() if log.exists() else []
        for line in lines[-20:]:
            say(f"   server | {line}")
        say(f"Left {workdir} as it was, to look into.")
        return 1
    except BaseException:
        say(f"\nStopped; left {workdir} as it was.")
        raise
    say()
    if keep:
        say(f"Kept {workdir}: database, payload, job summary, server log, results (rm -r it when done).")
    else:
        shutil.rmtree(workdir)
        say(f"Removed {workdir} (--keep keeps it).")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
