"""Publish the image and pin the Docker action to it: what the release workflow runs.

    python3 scripts/release.py publish --image ghcr.io/owner/batch-metrics --tag 1.2.3 --tag 1 \\
        --engine docker --platform linux/amd64,linux/arm64
    python3 scripts/release.py pin --reference ghcr.io/owner/batch-metrics@sha256:...

`publish` builds the Dockerfile for every platform with the given engine, pushes it under every
tag, takes the digest the registry stored (the manifest list's, for several platforms), writes
`image: docker://IMAGE@DIGEST` into docker/action.yml, and prints `IMAGE@DIGEST`. With docker it
builds with buildx and attaches SLSA provenance and an SBOM to the image. `pin` only writes the
reference. Under GitHub Actions both also write `reference=`, `image=` and `digest=` to
$GITHUB_OUTPUT.

Standard library only: it runs on a bare runner before anything is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCKER_ACTION = ROOT / "docker" / "action.yml"
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# The one `image:` line under `runs:` (two-space indent); every other line stays byte for byte.
IMAGE_LINE = re.compile(r"^  image: .*$", re.MULTILINE)


class ReleaseError(Exception):
    """A step failed; the message says which and why."""


def run(command: Sequence[str]) -> None:
    """Run an engine command; its progress goes to stderr, so stdout carries only the reference."""
    print("+", " ".join(command), file=sys.stderr, flush=True)
    done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=sys.stderr, check=False)
    if done.returncode != 0:
        raise ReleaseError(f"{command[0]} {command[1]} exited {done.returncode}")


def publish_with_docker(
    image: str, tags: list[str], platforms: str, build_args: list[str], context: Path, attest: bool
) -> str:
    """buildx: one multi-platform build pushed under every tag, with provenance and an SBOM."""
    with tempfile.TemporaryDirectory() as scratch:
        metadata = Path(scratch) / "metadata.json"
        command = ["docker", "buildx", "build", "--platform", platforms, "--push"]
        command += ["--metadata-file", str(metadata)]
        # Attestations need a BuildKit builder (docker/setup-buildx-action makes one), not the
        # daemon's own `docker` driver, which the container tests use.
        command += ["--provenance=mode=max", "--sbom=true"] if attest else ["--provenance=false"]
        command += [part for tag in tags for part in ("--tag", f"{image}:{tag}")]
        command += [part for arg in build_args for part in ("--build-arg", arg)]
        run([*command, str(context)])
        digest: str = json.loads(metadata.read_text(encoding="utf-8")).get("containerimage.digest", "")
    return digest


def publish_with_podman(
    image: str, tags: list[str], platforms: str, build_args: list[str], context: Path, tls_verify: bool
) -> str:
    """podman: a manifest list holding every platform, pushed under every tag; its digest."""
    manifest = f"{image}:{tags[0]}"
    # A list left from an earlier run would gain these images beside its old ones.
    subprocess.run(["podman", "manifest", "rm", manifest], capture_output=True, check=False)
    # On the host's network: a rootful podman without a configured CNI bridge has none of its own,
    # and the build installs the pinned wheels from the package index.
    command = ["podman", "build", "--platform", platforms, "--manifest", manifest, "--network", "host"]
    command += [part for arg in build_args for part in ("--build-arg", arg)]
    run([*command, str(context)])
    digests = set()
    with tempfile.TemporaryDirectory() as scratch:
        for tag in tags:
            digest_file = Path(scratch) / f"{tag}.digest"
            push = ["podman", "manifest", "push", "--all", f"--tls-verify={str(tls_verify).lower()}"]
            run([*push, "--digestfile", str(digest_file), manifest, f"docker://{image}:{tag}"])
            digests.add(digest_file.read_text(encoding="utf-8").strip())
    if len(digests) != 1:
        raise ReleaseError(f"the tags were pushed with different digests: {sorted(digests)}")
    return digests.pop()


def pin(action: Path, reference: str) -> None:
    """Point the Docker action at `reference` (IMAGE@sha256:...), so the runner pulls, never builds."""
    image, _, digest = reference.partition("@")
    if not image or not DIGEST.fullmatch(digest):
        raise ReleaseError(f"not a digest reference: {reference!r} (want IMAGE@sha256:<64 hex>)")
    text = action.read_text(encoding="utf-8")
    pinned, count = IMAGE_LINE.subn(f"  image: docker://{reference}", text)
    if count != 1:
        raise ReleaseError(f"{action} has {count} `  image:` lines under runs:, expected one")
    action.write_text(pinned, encoding="utf-8")


def report(reference: str) -> None:
    print(reference)
    github_output = os.environ.get("GITHUB_OUTPUT")
    if github_output:
        with open(github_output, "a", encoding="utf-8") as outputs:
            image, _, digest = reference.partition("@")
            outputs.write(f"reference={reference}\nimage={image}\ndigest={digest}\n")


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="release.py", description=__doc__.split("\n", 1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    publish = commands.add_parser("publish", help="build, push, pin docker/action.yml to the digest")
    publish.add_argument("--image", required=True, help="REGISTRY/REPOSITORY, lower case")
    publish.add_argument("--tag", action="append", required=True, help="repeat for several tags")
    publish.add_argument("--engine", choices=["docker", "podman"], default="docker")
    publish.add_argument("--platform", default="linux/amd64,linux/arm64")
    publish.add_argument("--build-arg", action="append", default=[], metavar="NAME=VALUE")
    publish.add_argument("--context", type=Path, default=ROOT)
    publish.add_argument(
        "--insecure-registry", action="store_true", help="podman: plain http, no TLS check (loopback)"
    )
    publish.add_argument(
        "--no-attest", dest="attest", action="store_false", help="docker: no provenance or SBOM"
    )
    publish.add_argument("--action", type=Path, default=DOCKER_ACTION)
    only_pin = commands.add_parser("pin", help="write IMAGE@DIGEST into docker/action.yml")
    only_pin.add_argument("--reference", required=True)
    only_pin.add_argument("--action", type=Path, default=DOCKER_ACTION)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        if args.command == "pin":
            reference = args.reference
        else:
            if args.image != args.image.lower():
                raise ReleaseError(f"image names are lower case: {args.image}")
            if args.engine == "docker":
                digest = publish_with_docker(
                    args.image, args.tag, args.platform, args.build_arg, args.context, args.attest
                )
            else:
                digest = publish_with_podman(
                    args.image, args.tag, args.platform, args.build_arg, args.context,
                    tls_verify=not args.insecure_registry,
                )  # fmt: skip
            if not DIGEST.fullmatch(digest):
                raise ReleaseError(f"{args.engine} reported no digest for the pushed image: {digest!r}")
            reference = f"{args.image}@{digest}"
        pin(args.action, reference)
    except (ReleaseError, OSError) as error:
        print(f"release.py: {error}", file=sys.stderr)
        return 1
    report(reference)
    return 0


if __name__ == "__main__":
    sys.exit(main())
