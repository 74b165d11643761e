"""The runner's pip settings as uv's: action/install.sh runs this with the runner's Python before uv installs.

A runner's pip follows its configuration (pip.conf, PIP_* variables) and the CA bundle variables requests
reads; that is how a private index, or the CA of a TLS-intercepting proxy, usually reaches it. uv reads
none of them, and trusts only the roots it ships unless told otherwise, so without this it failed where
pip worked. Prints one line per setting: NAME=VALUE for a variable uv reads (never one the environment
already sets: what the runner tells uv itself wins) or an option for `uv pip install`.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Mapping


def pip_options() -> dict[str, str]:
    """pip's settings for `pip install`, later ones winning as in pip: [global], [install], then PIP_*.

    From `pip config list` (its `section.option='value'` lines), which every pip prints the same way.
    """
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
    )
    if listed.returncode != 0:  # no pip: uv still gets the system's trust store
        return {}
    found: dict[str, dict[str, str]] = {"global": {}, "install": {}, ":env:": {}}
    for line in listed.stdout.splitlines():
        key, _, value = line.partition("=")
        section, _, option = key.partition(".")
        try:
            found.get(section, {})[option] = str(ast.literal_eval(value))
        except (ValueError, SyntaxError):
            continue
    return found["global"] | found["install"] | found[":env:"]


def uv_settings(pip: Mapping[str, str], env: Mapping[str, str]) -> list[str]:
    """What uv needs to go where pip goes, with the trust pip has."""
    variables: dict[str, str] = {}

    def give(value: str, name: str, *same: str) -> None:
        if value and not any(variable in env for variable in (name, *same)):
            variables[name] = value

    def words(option: str, separator: str = " ") -> str:
        return separator.join(pip.get(option, "").split())

    give(words("index-url"), "UV_DEFAULT_INDEX", "UV_INDEX_URL")
    give(words("extra-index-url"), "UV_INDEX", "UV_EXTRA_INDEX_URL")
    if "UV_INDEX" in variables:  # pip takes the best version from every index; each file still needs its hash
        give("unsafe-best-match", "UV_INDEX_STRATEGY")
    give(words("find-links", ","), "UV_FIND_LINKS")
    give(words("trusted-host"), "UV_INSECURE_HOST")
    for name in ("HTTPS_PROXY", "HTTP_PROXY"):
        give(pip.get("proxy", ""), name, name.lower())
    # pip's bundle: its `cert`, else what requests reads; else the system's store (pip 24.2+ uses it too).
    bundle = pip.get("cert") or env.get("REQUESTS_CA_BUNDLE") or env.get("CURL_CA_BUNDLE") or ""
    give(bundle, "SSL_CERT_FILE")
    give(pip.get("client-cert", ""), "SSL_CLIENT_CERT")
    give("true", "UV_SYSTEM_CERTS", "UV_NATIVE_TLS")  # uv 0.11 and later
    give("true", "UV_NATIVE_TLS", "UV_SYSTEM_CERTS")  # older uv (a runner's own)
    # uv fails at once, without its own retries: pip takes over then, and retries.
    give("0", "UV_HTTP_RETRIES")
    lines = [f"{name}={value}" for name, value in variables.items()]
    if pip.get("no-index", "").lower() in {"1", "true", "yes", "on"}:
        lines.append("--no-index")  # uv has no variable for it
    return lines


if __name__ == "__main__":
    print("\n".join(line for line in uv_settings(pip_options(), os.environ) if "\n" not in line))
