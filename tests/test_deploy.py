"""deploy/: the production topology, end to end on this machine, and the compose file's shape.

Caddy (Debian's package) serves deploy/endpoint.caddy on a loopback port with its internal CA,
in front of `batch-metrics serve` on PostgreSQL; the action uploads over https trusting that CA
the standard way (REQUESTS_CA_BUNDLE or SSL_CERT_FILE), and the stored batch is read back
through Caddy. No Docker Hub: the compose file itself is checked for structure only.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import yaml

from tests.conftest import ROOT, need, parse_outputs, unused_port, wait_healthy
from tests.pg import fresh_database

pytest_plugins = ["tests.pg"]

DEPLOY = ROOT / "deploy"
CADDY = Path("/usr/bin/caddy")
DIGEST_PINNED = re.compile(r"^[a-z0-9./-]+:[\w.-]+@sha256:[0-9a-f]{64}$")


# --- the compose file ------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    return data


def test_compose_matches_the_compose_spec() -> None:
    check = Path(sys.executable).parent / "check-jsonschema"
    done = subprocess.run(
        [str(check), "--builtin-schema", "vendor.compose-spec", str(DEPLOY / "compose.yaml")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_wires_caddy_the_endpoint_and_postgresql() -> None:
    spec = compose()
    services = spec["services"]
    assert set(services) == {"caddy", "endpoint", "db"}
    # Third-party images pinned by digest; ours is the released image the operator names.
    for name in ("caddy", "db"):
        assert DIGEST_PINNED.match(services[name]["image"]), services[name]["image"]
    assert services["endpoint"]["image"].startswith("${BATCH_METRICS_IMAGE:?")
    # Caddy's config reads these two; compose refuses to start without them rather than pass "".
    for variable in ("METRICS_DOMAIN", "ACME_EMAIL"):
        assert services["caddy"]["environment"][variable].startswith(f"${{{variable}:?")

    # Only Caddy publishes ports; the database sits on an internal network with the endpoint.
    assert [service for service in services.values() if "ports" in service] == [services["caddy"]]
    assert spec["networks"]["backend"] == {"internal": True}
    assert services["db"]["networks"] == ["backend"]
    assert set(services["endpoint"]["networks"]) == {"edge", "backend"}
    assert services["caddy"]["networks"] == ["edge"]

    endpoint = services["endpoint"]
    command = endpoint["command"]
    assert command[0] == "serve" and "--host=0.0.0.0" in command
    credentials = next(arg.split("=", 1)[1] for arg in command if arg.startswith("--credentials="))
    database_url = endpoint["environment"]["DATABASE_URL"]
    assert database_url.startswith("postgresql://") and ":" not in urlsplit(database_url).netloc.split("@")[0]
    passfile = re.search(r"passfile=(\S+)", database_url)
    assert passfile is not None
    # Every secret a service reads is mounted into it, and every secret is declared.
    mounted = {f"/run/secrets/{name}" for name in endpoint["secrets"]}
    assert passfile.group(1) in mounted
    # The credentials file's folder is mounted (an edit that replaces the file is seen), read-only.
    folders = {volume.split(":")[1]: volume for volume in endpoint["volumes"]}
    assert folders[credentials.rsplit("/", 1)[0]].endswith(":ro")
    assert services["db"]["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    used = {name for service in services.values() for name in service.get("secrets", [])}
    assert used == set(spec["secrets"])

    # Named volumes are declared; files Caddy mounts exist beside the compose file.
    named = {
        volume.split(":")[0]
        for service in services.values()
        for volume in service.get("volumes", [])
        if not volume.startswith("./")
    }
    assert named == set(spec["volumes"]) and "pgdata" in named
    for volume in services["caddy"]["volumes"]:
        if volume.startswith("./"):
            assert (DEPLOY / volume.split(":")[0]).is_file(), volume
    assert any(volume.startswith("pgdata:") for volume in services["db"]["volumes"])


def test_caddyfile_is_valid_wherever_caddy_starts() -> None:
    # The import of endpoint.caddy is relative to the Caddyfile, not to Caddy's working directory.
    need(CADDY, "caddy")
    env = {**os.environ, "METRICS_DOMAIN": "metrics.example.dev", "ACME_EMAIL": "ops@example.dev"}
    done = subprocess.run(
        [str(CADDY), "validate", "--config", str(DEPLOY / "Caddyfile"), "--adapter", "caddyfile"],
        cwd="/", env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]


# --- the topology, end to end ------------------------------------------------------------------


@dataclass
class Deployment:
    url: str  # https://localhost:PORT, through Caddy
    token: str
    root_ca: Path  # Caddy's internal root certificate
    database: str
    logs: list[Path]

    def get(self, path: str) -> Any:
        request = urllib.request.Request(
            f"{self.url}{path}", headers={"Authorization": f"Bearer {self.token}"}
        )
        context = ssl.create_default_context(cafile=str(self.root_ca))
        with urllib.request.urlopen(request, timeout=10, context=context) as answer:
            return json.loads(answer.read())


def listening_addresses(pid: int) -> set[str]:
    """The local addresses of the TCP and UDP sockets `pid` listens or is bound on, from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:  # closed since the listing: Caddy opens and closes files as it runs
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    addresses = set()
    for table in ("tcp", "tcp6", "udp", "udp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if inode in inodes and (state == "0A" or table.startswith("udp")):  # 0A: LISTEN
                addresses.add(local.split(":")[0])
    return addresses


def password_file_url(url: str, home: Path) -> str:
    """`url` with its password moved into a libpq passfile, as deploy/compose.yaml passes it."""
    parts = urlsplit(url)
    passfile = home / "pgpass"
    passfile.write_text(f"*:*:*:*:{parts.password or ''}\n", encoding="utf-8")
    passfile.chmod(0o600)
    netloc = f"{parts.username}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc, query=f"passfile={passfile}"))


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def deployment(postgres_admin_url: str, tmp_path: Path) -> Iterator[Deployment]:
    need(CADDY, "caddy")
    token = secrets.token_urlsafe(24)
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{token}\n", encoding="utf-8")
    endpoint_port, https_port = unused_port(), unused_port()
    processes: list[subprocess.Popen[bytes]] = []
    logs = [tmp_path / "endpoint.log", tmp_path / "caddy.log"]
    with fresh_database(postgres_admin_url) as database:
        try:
            endpoint_env = {
                "PATH": os.environ["PATH"],
                "DATABASE_URL": password_file_url(database, tmp_path),
            }  # fmt: skip
            serve = [sys.executable, "-m", "batch_metrics.cli", "serve", "--host", "127.0.0.1"]
            serve += ["--port", str(endpoint_port), "--token-file", str(tokens)]
            processes.append(endpoint := start(serve, endpoint_env, logs[0]))
            wait_healthy(
                f"http://127.0.0.1:{endpoint_port}", seconds=30,
                alive=lambda: endpoint.poll() is None, why=logs[0].read_text,
            )  # fmt: skip

            # The production site file, served on loopback with Caddy's own CA, trusted by no system store.
            caddyfile = tmp_path / "Caddyfile"
            caddyfile.write_text(
                "{\n\tadmin off\n\tskip_install_trust\n\tlocal_certs\n\tauto_https disable_redirects\n"
                f"\thttps_port {https_port}\n}}\n\n"
                f"localhost:{https_port} {{\n\tbind 127.0.0.1\n\timport {DEPLOY / 'endpoint.caddy'}\n}}\n",
                encoding="utf-8",
            )
            caddy_env = {
                "PATH": os.environ["PATH"],
                "HOME": str(tmp_path),
                "XDG_DATA_HOME": str(tmp_path / "data"),
                "XDG_CONFIG_HOME": str(tmp_path / "config"),
                "BATCH_METRICS_UPSTREAM": f"127.0.0.1:{endpoint_port}",
            }
            run = [str(CADDY), "run", "--config", str(caddyfile), "--adapter", "caddyfile"]
            processes.append(caddy := start(run, caddy_env, logs[1]))
            root_ca = tmp_path / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
            deployed = Deployment(f"https://localhost:{https_port}", token, root_ca, database, logs)
            deadline = time.monotonic() + 60
            while True:
                try:
                    assert deployed.get("/health")["status"] == "ok"
                    break
                except (OSError, ssl.SSLError):
                    assert caddy.poll() is None and time.monotonic() < deadline, logs[1].read_text()[-3000:]
                    time.sleep(0.2)
            assert listening_addresses(caddy.pid) == {"0100007F"}, logs[1].read_text()[-3000:]  # 127.0.0.1
            yield deployed
        finally:
            for process in reversed(processes):
                stop(process)


def run_action(
    tmp_path: Path, fixtures: Path, deployment: Deployment, ca_env: dict[str, str]
) -> dict[str, str]:
    """entrypoint.py as the composite action runs it: INPUT_* from `with:`, the runner's GITHUB_*."""
    workspace = tmp_path / "workspace"
    (workspace / "results").mkdir(parents=True)
    for name in ("pytest-junit.fail.xml", "jest-jest-junit.xml"):
        (workspace / "results" / name).write_bytes((fixtures / "junit" / name).read_bytes())
    github_output = tmp_path / "github_output"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_OUTPUT": str(github_output),
        "GITHUB_REPOSITORY": "octo/recipes",
        "GITHUB_RUN_ID": "31",
        "GITHUB_RUN_ATTEMPT": "1",
        "INPUT_ENDPOINT": deployment.url,
        "INPUT_TOKEN": deployment.token,
        "INPUT_RESULTS": "results/*.xml",
        "INPUT_ECOSYSTEM": "npm",
        "INPUT_BATCH_ID": "deployed-1",
        "INPUT_RETRIES": "0",
        "INPUT_SUMMARY": "false",
        **ca_env,
    }
    done = subprocess.run(
        [sys.executable, str(ROOT / "entrypoint.py")], cwd=workspace, env=env,
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    outputs = parse_outputs(github_output.read_text(encoding="utf-8"))
    outputs["log"] = done.stdout + done.stderr
    return outputs


@pytest.mark.postgres
@pytest.mark.parametrize("ca_variable", ["REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"])
def test_the_action_uploads_over_https_through_caddy(
    deployment: Deployment, tmp_path: Path, fixtures: Path, ca_variable: str
) -> None:
    outputs = run_action(tmp_path, fixtures, deployment, {ca_variable: str(deployment.root_ca)})
    assert outputs["status"] == "uploaded", outputs["log"]
    run_id = int(outputs["batch-run-id"])

    # Read back through Caddy with the read API, and straight from PostgreSQL.
    listed = deployment.get("/batch-runs?batch_id=deployed-1")
    assert [run["id"] for run in listed["runs"]] == [run_id]
    stored = deployment.get(f"/batch-runs/{run_id}")
    assert (stored["batch_id"], stored["ecosystem"]) == ("deployed-1", "npm")
    assert len(stored["results"]) == int(outputs["total"]) > 0
    with psycopg.connect(deployment.database) as db:
        row = db.execute(b"SELECT count(*) FROM recipe_results WHERE batch_run_id = %s", (run_id,)).fetchone()
    assert row == (int(outputs["total"]),)

    # The token never reaches a log: not the action's, not the endpoint's, not Caddy's access log.
    assert deployment.token not in outputs["log"].replace(f"::add-mask::{deployment.token}", "")
    for log in deployment.logs:
        assert deployment.token not in log.read_text(encoding="utf-8", errors="replace"), log.name


@pytest.mark.postgres
def test_without_the_ca_the_upload_fails_and_nothing_is_stored(
    deployment: Deployment, tmp_path: Path, fixtures: Path
) -> None:
    # Caddy's root is in no trust store (skip_install_trust): verification is real, not skipped.
    outputs = run_action(tmp_path, fixtures, deployment, {"SSL_CERT_FILE": os.devnull})
    assert outputs["status"] == "failed", outputs["log"]
    assert "SSLError" in outputs["log"]
    assert deployment.get("/batch-runs?batch_id=deployed-1")["runs"] == []
