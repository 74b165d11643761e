"""The release path: scripts/release.py builds the image, pushes it to a registry, pins
docker/action.yml to the pushed digest, and that pinned reference pulls and runs as the action.

The registry is Debian's `docker-registry` (the CNCF distribution registry) on a loopback port with
its own config and storage; the engine is the one tests/containers.py finds. Only the `pin` tests
run without a container engine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, need, parse_outputs, unused_port

SCRIPT = ROOT / "scripts" / "release.py"
DOCKER_ACTION = ROOT / "docker" / "action.yml"
REGISTRY_BINARY = Path("/usr/bin/docker-registry")
DIGEST = "sha256:" + "ab" * 32
MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)


def release(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


# --- pinning, no engine needed ----------------------------------------------------------------


def test_pin_changes_only_the_image_line(tmp_path: Path) -> None:
    action = tmp_path / "action.yml"
    shutil.copyfile(DOCKER_ACTION, action)
    reference = f"ghcr.io/octo/batch-metrics@{DIGEST}"
    github_output = tmp_path / "github_output"
    env = {**os.environ, "GITHUB_OUTPUT": str(github_output)}
    done = release("pin", "--reference", reference, "--action", str(action), env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == reference
    assert parse_outputs(github_output.read_text(encoding="utf-8")) == {
        "reference": reference,
        "image": "ghcr.io/octo/batch-metrics",
        "digest": DIGEST,
    }
    before = DOCKER_ACTION.read_text(encoding="utf-8").splitlines()
    after = action.read_text(encoding="utf-8").splitlines()
    changed = [(old, new) for old, new in zip(before, after, strict=True) if old != new]
    assert changed == [
        (next(line for line in before if line.startswith("  image: ")), f"  image: docker://{reference}")
    ]
    pinned, original = load(action), load(DOCKER_ACTION)
    assert pinned["runs"] == {**original["runs"], "image": f"docker://{reference}"}
    assert {key: value for key, value in pinned.items() if key != "runs"} == {
        key: value for key, value in original.items() if key != "runs"
    }


@pytest.mark.parametrize(
    "reference",
    ["ghcr.io/octo/batch-metrics:1.2.3", "ghcr.io/octo/batch-metrics@sha256:abc", f"@{DIGEST}", ""],
)
def test_pin_refuses_anything_but_a_digest_reference(tmp_path: Path, reference: str) -> None:
    action = tmp_path / "action.yml"
    shutil.copyfile(DOCKER_ACTION, action)
    done = release("pin", "--reference", reference, "--action", str(action))
    assert done.returncode == 1
    assert "not a digest reference" in done.stderr
    assert action.read_bytes() == DOCKER_ACTION.read_bytes()


def test_pinned_action_matches_githubs_schema(tmp_path: Path) -> None:
    action = tmp_path / "action.yml"
    shutil.copyfile(DOCKER_ACTION, action)
    assert (
        release(
            "pin", "--reference", f"ghcr.io/octo/batch-metrics@{DIGEST}", "--action", str(action)
        ).returncode
        == 0
    )
    check = Path(sys.executable).parent / "check-jsonschema"
    done = subprocess.run(
        [str(check), "--builtin-schema", "vendor.github-actions", str(action)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


# --- the workflow that runs it and the Dockerfile it builds --------------------------------------


def test_dockerfile_pins_its_base_by_digest() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^ARG BASE_IMAGE=python:3\.12-slim@sha256:[0-9a-f]{64}$", text, re.MULTILINE)
    assert re.findall(r"^FROM .*$", text, re.MULTILINE) == ["FROM ${BASE_IMAGE}"]


def test_release_workflow_publishes_on_version_tags_with_least_privilege() -> None:
    text = (ROOT / ".github" / "workflows" / "release.yml").read_text(encoding="utf-8")
    workflow: dict[Any, Any] = yaml.safe_load(text)
    assert workflow[True] == {"push": {"tags": ["v*.*.*"]}}  # YAML 1.1 reads the key `on` as True
    assert workflow["permissions"] == {}
    jobs = workflow["jobs"]
    assert {name: job["permissions"] for name, job in jobs.items()} == {
        "test": {"contents": "read"},
        "image": {"contents": "read", "packages": "write", "id-token": "write", "attestations": "write"},
        "release": {"contents": "write"},
    }
    assert (jobs["image"]["needs"], jobs["release"]["needs"]) == ("test", "image")
    assert jobs["test"]["uses"] == "$/.github/workflows/ci.yml"  # all of CI gates a release
    ci: dict[Any, Any] = yaml.safe_load(
        (ROOT / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8")
    )
    assert "workflow_call" in ci[True]
    scripts = {
        name: "\n".join(step.get("run", "") for step in jobs[name]["steps"]) for name in ("image", "release")
    }
    assert "scripts/release.py publish --engine docker" in scripts["image"]
    assert "--platform linux/amd64,linux/arm64" in scripts["image"]
    assert 'scripts/release.py pin --reference "$REFERENCE"' in scripts["release"]
    assert jobs["release"]["env"]["REFERENCE"] == "${{ needs.image.outputs.reference }}"
    attest = next(
        step for step in jobs["image"]["steps"] if "attest-build-provenance" in step.get("uses", "")
    )
    assert attest["with"]["subject-digest"] == "${{ steps.publish.outputs.digest }}"
    for job in jobs.values():
        for step in job.get("steps", []):
            if "uses" in step:
                assert re.fullmatch(r"[\w./-]+@[0-9a-f]{40}", step["uses"]), step["uses"]


# --- the whole path: build, push to a loopback registry, pin, pull by digest, run -------------


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A plain-http registry on loopback; its host:port."""
    need(REGISTRY_BINARY, "docker-registry")
    home = tmp_path_factory.mktemp("registry")
    address = f"127.0.0.1:{unused_port()}"
    config = home / "config.yml"
    config.write_text(
        yaml.safe_dump({
            "version": 0.1,
            "log": {"level": "warn"},
            "storage": {"filesystem": {"rootdirectory": str(home / "storage")}},
            "http": {"addr": address},
        }),
        encoding="utf-8",
    )  # fmt: skip
    log = (home / "log").open("wb")
    server = subprocess.Popen([str(REGISTRY_BINARY), "serve", str(config)], stdout=log, stderr=log)
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://{address}/v2/", timeout=2) as answer:
                    assert answer.status == 200
                    break
            except OSError:
                assert server.poll() is None, (home / "log").read_text()
                time.sleep(0.1)
        else:
            pytest.fail(f"the registry did not answer on {address}: {(home / 'log').read_text()}")
        yield address
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def registry_digest(address: str, repository: str, tag: str) -> str:
    """The digest the registry itself reports for repository:tag (Docker-Content-Digest)."""
    request = urllib.request.Request(
        f"http://{address}/v2/{repository}/manifests/{tag}", method="HEAD",
        headers={"Accept": ", ".join(MANIFEST_TYPES)},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as answer:
        return str(answer.headers["Docker-Content-Digest"])


@pytest.mark.container
def test_release_publishes_an_image_the_pinned_action_runs(
    registry: str, tmp_path: Path, fixtures: Path, request: pytest.FixtureRequest
) -> None:
    from tests.containers import discover, github_dirs, run_action_container

    engine = discover()
    if isinstance(engine, str):
        pytest.fail(engine)
    # A loopback registry is plain http: podman is told so; docker trusts 127.0.0.0/8 by default.
    # The daemon's default builder cannot attach attestations; the release workflow's builder does.
    insecure = ["--insecure-registry"] if engine.name == "podman" else ["--no-attest"]
    tls = ["--tls-verify=false"] if engine.name == "podman" else []
    image = f"{registry}/octo/batch-metrics"
    action = tmp_path / "action.yml"
    shutil.copyfile(DOCKER_ACTION, action)
    published = release(
        "publish", "--engine", engine.name, "--image", image, "--tag", "1.2.3", "--tag", "1",
        "--platform", "linux/amd64", "--build-arg", f"BASE_IMAGE={engine.base_image}",
        *insecure, "--action", str(action),
        env=engine.env, timeout=900,
    )  # fmt: skip
    assert published.returncode == 0, published.stdout + published.stderr[-4000:]
    reference = published.stdout.strip()
    # The engine's store keeps nothing of this test: the built list, its tags and the pulled image.
    built = ["manifest", "rm"] if engine.name == "podman" else ["rmi"]  # podman built a manifest list

    def forget() -> None:
        engine(*built, f"{image}:1.2.3")
        engine("rmi", "--force", reference)

    request.addfinalizer(forget)
    digest = reference.removeprefix(f"{image}@")
    # The digest written is the one the registry serves under both tags.
    assert registry_digest(registry, "octo/batch-metrics", "1.2.3") == digest
    assert registry_digest(registry, "octo/batch-metrics", "1") == digest
    runs = load(action)["runs"]
    assert runs == {"using": "docker", "image": f"docker://{reference}"}

    # Pull exactly what the action names from the registry, then run it as the runner does.
    pulled_ref = runs["image"].removeprefix("docker://")
    pulled = engine("pull", *tls, pulled_ref, timeout=300)
    assert pulled.returncode == 0, pulled.stderr
    github = github_dirs(tmp_path, fixtures)
    # The runner sets INPUT_<NAME> (upper-cased, hyphens kept) for every input: `with:` or default.
    given = {"results": "results/**", "dry-run": "true", "batch-id": "release-1", "ecosystem": "pypi"}
    inputs = {name: given.get(name, str(spec["default"])) for name, spec in load(action)["inputs"].items()}
    ran = run_action_container(engine, pulled_ref, github, inputs, network="none")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    outputs = parse_outputs((github["file_commands"] / "set_output").read_text(encoding="utf-8"))
    payload = json.loads((github["workspace"] / "batch-metrics-payload.json").read_text(encoding="utf-8"))
    assert outputs["status"] == "dry-run"
    assert outputs["payload-path"] == "batch-metrics-payload.json"
    assert (payload["batch_id"], payload["ecosystem"]) == ("release-1", "pypi")
    assert int(outputs["total"]) == payload["total_recipes"] == len(payload["results"]) > 0
    assert (
        int(outputs["passed"]) + int(outputs["failed"]) + int(outputs["skipped"]) == payload["total_recipes"]
    )
