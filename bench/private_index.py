"""A private package index as a self-hosted runner has one, for tests/test_action_install.py and the bench.

The pinned wheels (requirements/action.txt and uv.txt) as a PEP 503 tree, served by Debian's Caddy over
HTTPS with a CA of its own (`local_certs`) at https://127.0.0.1/simple/, in a network namespace that has
nothing but loopback (so whatever installs there can reach no other index), and a mount namespace whose
system trust store (/etc/ssl/certs/ca-certificates.crt) holds that CA too, as a runner's would: nothing
on the machine outside it changes. Both belong to a user namespace of the caller's (no root needed
where the kernel lets users make one); commands run there through `nsenter`. Needs util-linux and
iproute2.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.measure import ROOT, stop

CADDY = Path("/usr/bin/caddy")
SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
URL = "https://127.0.0.1/simple/"
REQUIREMENTS = (ROOT / "requirements" / "action.txt", ROOT / "requirements" / "uv.txt")
_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
_NAMESPACES = ["unshare", "--user", "--map-root-user", "--mount", "--net", "--"]


def unavailable() -> str | None:
    """Why the index cannot run here (what to install, or that it needs root), else None."""
    if not CADDY.exists():
        return f"{CADDY} is missing: install Debian's caddy package (.ci/run does)"
    if shutil.which("ip", path=_PATH) is None:
        return "`ip` is missing: install Debian's iproute2 package (.ci/run does)"
    if not SYSTEM_BUNDLE.exists():
        return f"{SYSTEM_BUNDLE} is missing: install Debian's ca-certificates package"
    what_it_does = 'ip link set lo up && mount --bind "$0" "$0"'
    probe = [*_NAMESPACES, "sh", "-c", what_it_does, str(SYSTEM_BUNDLE)]
    done = subprocess.run(probe, env={"PATH": _PATH}, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return f"no user, mount and network namespace can be made here: {done.stderr.strip()}"
    return None


def pinned_wheels(python: str, cache: Path) -> Path:
    """The pinned wheels for `python`'s platform, downloaded once into `cache` with this machine's pip."""
    tags = "import sys, sysconfig; print(sys.implementation.cache_tag, sysconfig.get_platform())"
    platform = subprocess.run([python, "-c", tags], capture_output=True, text=True, check=True).stdout
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in REQUIREMENTS) + platform.encode())
    wheels = cache / f"pinned-wheels-{digest.hexdigest()[:16]}"
    if wheels.is_dir():
        return wheels
    cache.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(dir=cache, prefix=".download-"))
    requirements = [argument for path in REQUIREMENTS for argument in ("-r", str(path))]
    download = subprocess.run(
        [python, "-m", "pip", "download", "--quiet", "--require-hashes", "--no-deps",
         "--only-binary", ":all:", "--disable-pip-version-check", "--dest", str(partial), *requirements],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if download.returncode != 0:
        shutil.rmtree(partial)
        raise RuntimeError(f"downloading the pinned wheels failed:\n{download.stdout}{download.stderr}")
    try:
        partial.rename(wheels)
    except OSError:  # another process got there first: its copy is the same wheels
        shutil.rmtree(partial)
    return wheels


def write_tree(wheels: Path, root: Path) -> None:
    """A PEP 503 "simple" tree: simple/<project>/index.html linking each wheel with its sha256."""
    (root / "files").mkdir(parents=True)
    projects: dict[str, list[str]] = {}
    for wheel in sorted(wheels.glob("*.whl")):
        shutil.copy(wheel, root / "files" / wheel.name)
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        project = re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower()
        name = html.escape(wheel.name)
        projects.setdefault(project, []).append(f'<a href="../../files/{name}#sha256={digest}">{name}</a>')
    for project, links in projects.items():
        page = root / "simple" / project / "index.html"
        page.parent.mkdir(parents=True)
        page.write_text(f"<!DOCTYPE html>\n<html><body>\n{'<br>'.join(links)}\n</body></html>\n")
    listing = "".join(f'<a href="{project}/">{project}</a>\n' for project in projects)
    (root / "simple" / "index.html").write_text(f"<!DOCTYPE html>\n<html><body>\n{listing}</body></html>\n")


@dataclass
class PrivateIndex:
    pid: int  # Caddy's, in the namespaces
    root_ca: Path  # Caddy's CA, which signed the index's certificate
    access_log: Path  # Caddy's JSON access log
    wheels: Path  # what it serves

    def enter(self) -> list[str]:
        """The command prefix that runs a program in the index's namespaces."""
        return ["nsenter", f"--target={self.pid}", "--user", "--net", "--mount", "--preserve-credentials",
                "--"]  # fmt: skip

    def requests(self) -> list[tuple[str, str]]:
        """(User-Agent, path) of every request the index answered 200, in order."""
        found = []
        for line in self.access_log.read_text().splitlines():
            entry = json.loads(line)
            if entry.get("status") == 200:
                request = entry["request"]
                found.append((request["headers"].get("User-Agent", [""])[0], request["uri"]))
        return found


def _reachable(index: PrivateIndex) -> bool:
    check = (
        "import ssl, sys, urllib.request\n"
        "context = ssl.create_default_context(cafile=sys.argv[2])\n"
        "urllib.request.urlopen(sys.argv[1], timeout=2, context=context)"
    )
    argv = [*index.enter(), sys.executable, "-c", check, URL, str(index.root_ca)]
    return index.root_ca.exists() and subprocess.run(argv, capture_output=True, check=False).returncode == 0


@contextmanager
def private_index(work: Path, wheels: Path, seconds: float = 60) -> Iterator[PrivateIndex]:
    """Caddy serving `wheels` at URL, in new namespaces whose system trust store holds its CA."""
    write_tree(wheels, work / "index")
    caddyfile = work / "Caddyfile"
    caddyfile.write_text(
        "{\n\tadmin off\n\tskip_install_trust\n\tlocal_certs\n\tauto_https disable_redirects\n}\n\n"
        f"https://127.0.0.1 {{\n\tbind 127.0.0.1\n\troot * {work / 'index'}\n\tfile_server\n"
        f"\tlog {{\n\t\toutput file {work / 'access.log'}\n\t\tformat json\n\t}}\n}}\n"
    )
    env = {
        "PATH": _PATH,
        "HOME": str(work),
        "XDG_DATA_HOME": str(work / "data"),
        "XDG_CONFIG_HOME": str(work / "config"),
    }
    log = work / "caddy.log"
    serve = [str(CADDY), "run", "--config", str(caddyfile), "--adapter", "caddyfile"]
    with log.open("wb") as sink:
        caddy = subprocess.Popen(
            [*_NAMESPACES, "sh", "-c", 'ip link set lo up && exec "$0" "$@"', *serve],
            env=env, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink,
        )  # fmt: skip
    try:
        root_ca = work / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
        index = PrivateIndex(caddy.pid, root_ca, work / "access.log", wheels)
        deadline = time.monotonic() + seconds
        while not _reachable(index):
            if caddy.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the private index did not answer at {URL}:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        bundle = work / "system-trust-store.crt"
        bundle.write_bytes(SYSTEM_BUNDLE.read_bytes() + root_ca.read_bytes())
        _inside(index, ["mount", "--bind", str(bundle), str(SYSTEM_BUNDLE)])
        yield index
    finally:
        stop(caddy, 20)


def _inside(index: PrivateIndex, argv: Sequence[str]) -> None:
    done = subprocess.run([*index.enter(), *argv], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} in the index's namespaces failed: {done.stderr.strip()}")


def runner_pip_conf(path: Path) -> Path:
    """A runner's pip configuration for the private index: its URL, and the system's bundle to trust."""
    path.write_text(f"[global]\nindex-url = {URL}\ncert = {SYSTEM_BUNDLE}\n")
    return path
