"""The composite action's set-up (action/install.sh through action.yml's steps): each platform's branch,
the fallbacks, uv following the runner's pip settings, the real Linux path end to end, and a self-hosted
runner's private index (HTTPS on loopback, a private CA in the system's trust store)."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from bench.private_index import URL, PrivateIndex, pinned_wheels, private_index, runner_pip_conf, unavailable
from tests.conftest import ROOT, leave_out
from tests.test_action_metadata import (
    ACTION_REQUIREMENTS,
    BASH,
    UV_REQUIREMENTS,
    StepRun,
    fake_bin,
    pinned,
    run_context,
    run_step,
    runner_env,
)

SYSTEM_PATH = os.pathsep.join(("/usr/bin", "/bin"))
# Nothing leaves the machine: no index for pip, uv offline.
NO_INDEX = {"PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "UV_OFFLINE": "1"}


def runner(tmp_path: Path, path: str, action_path: Path = ROOT, **extra: str) -> dict[str, str]:
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir(exist_ok=True)
    return {
        "PATH": path,
        "RUNNER_TEMP": str(runner_temp),
        "RUNNER_OS": "Linux",
        "RUNNER_ARCH": "X64",
        "GITHUB_ACTION_PATH": str(action_path),
        **NO_INDEX,
        **extra,
    }


def old_pythons_only(tmp_path: Path) -> Path:
    """A PATH directory with bash and only Pythons too old for the action (as a 3.10 answers the probe)."""
    directory = fake_bin(tmp_path, python3="exit 1", python="exit 1")
    (directory / "bash").symlink_to(BASH)
    return directory


def with_python(tmp_path: Path, directory: Path, name: str = "python3") -> Path:
    """`directory/name` runs this interpreter (a symlink, as the tool cache and setup-python lay them out)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).symlink_to(sys.executable)
    return directory


def locate(
    tmp_path: Path, env: Mapping[str, str], fail_on_error: str = "false", wrapper: Sequence[str] = ()
) -> StepRun:
    return run_step("locate", tmp_path, {"inputs.fail-on-error": fail_on_error}, env, wrapper)


def install(
    tmp_path: Path,
    env: Mapping[str, str],
    base_python: str,
    venv: Path | str,
    fail_on_error: str = "false",
    wrapper: Sequence[str] = (),
) -> StepRun:
    context = {
        "inputs.fail-on-error": fail_on_error,
        "steps.locate.outputs.python": base_python,
        "steps.locate.outputs.venv": str(venv),
    }
    return run_step("install", tmp_path, context, env, wrapper)


def digest_of(venv: str) -> str:
    return venv.rsplit("-", 1)[1]


def action_with(tmp_path: Path, action_txt: str) -> Path:
    """An action directory whose requirements/action.txt holds `action_txt`, beside the real script."""
    action = tmp_path / "action-checkout"
    (action / "requirements").mkdir(parents=True)
    (action / "requirements" / "action.txt").write_text(action_txt)
    shutil.copy(UV_REQUIREMENTS, action / "requirements" / "uv.txt")
    shutil.copytree(ROOT / "action", action / "action")
    return action


# --- locate: which Python, which venv, which cache key ----------------------------------------


def test_locate_names_the_venv_and_cache_key_after_python_and_requirements(tmp_path: Path) -> None:
    path = os.pathsep.join((str(with_python(tmp_path, tmp_path / "bin")), SYSTEM_PATH))
    found = locate(tmp_path, runner(tmp_path, path))
    assert found.code == 0, found.stdout
    digest = digest_of(found.outputs["venv"])
    assert re.fullmatch(r"[0-9a-f]{16}", digest)
    assert found.outputs["venv"] == str(tmp_path / "runner-temp" / f"batch-metrics-venv-{digest}")
    assert found.outputs["key"] == f"batch-metrics-venv-Linux-X64-py{platform.python_version()}-{digest}"
    # the interpreter's own path (sys.executable), not a command name or a shim that runs it
    assert Path(found.outputs["python"]).resolve() == Path(sys.executable).resolve()
    changed = runner(tmp_path, path, action_with(tmp_path, "# other pins\n"))
    assert digest_of(locate(tmp_path, changed).outputs["venv"]) != digest  # new pins, new venv and key


@pytest.mark.parametrize(
    ("where", "layout"),
    [
        ("pythonLocation", "bin/python3"),  # setup-python on Linux and macOS
        ("pythonLocation", "python.exe"),  # setup-python on Windows
        ("RUNNER_TOOL_CACHE", "Python/3.12.9/x64/bin/python3"),  # hosted Linux and macOS images
        ("RUNNER_TOOL_CACHE", "Python/3.12.9/x64/python.exe"),  # hosted Windows images
    ],
)
def test_locate_finds_python_where_each_runner_keeps_it(tmp_path: Path, where: str, layout: str) -> None:
    old = old_pythons_only(tmp_path)
    root = tmp_path / "toolcache"
    with_python(tmp_path, (root / layout).parent, Path(layout).name)
    found = locate(tmp_path, {**runner(tmp_path, str(old)), where: str(root)})  # no other Python on PATH
    assert found.code == 0, found.stdout
    assert found.outputs["python"] == str(root / layout)
    assert found.outputs["key"].startswith(f"batch-metrics-venv-Linux-X64-py{platform.python_version()}-")


def test_locate_hands_windows_paths_to_windows_programs(tmp_path: Path) -> None:
    """On Git Bash the venv path goes to Python and the cache action as D:\\..., and comes back as /d/..."""
    converter = (
        'case "$1" in\n'
        '  -w) printf "%s\\n" "$2" | sed "s|^/d/|D:\\\\\\\\|; s|/|\\\\\\\\|g" ;;\n'
        '  -u) printf "%s\\n" "$2" | sed "s|^D:\\\\\\\\|/d/|; s|\\\\\\\\|/|g" ;;\n'
        "esac"
    )
    tools = fake_bin(tmp_path, cygpath=converter)
    with_python(tmp_path, tools)
    env = runner(tmp_path, os.pathsep.join((str(tools), SYSTEM_PATH)), RUNNER_TEMP="D:\\a\\_temp")
    found = locate(tmp_path, env)
    assert found.code == 0, found.stdout
    assert found.outputs["venv"] == f"D:\\a\\_temp\\batch-metrics-venv-{digest_of(found.outputs['venv'])}"


@pytest.mark.parametrize(("fail_on_error", "expected_code"), [("false", 0), ("true", 1)])
def test_locate_without_a_new_enough_python(tmp_path: Path, fail_on_error: str, expected_code: int) -> None:
    old = old_pythons_only(tmp_path)
    found = locate(tmp_path, runner(tmp_path, str(old)), fail_on_error)
    assert found.code == expected_code, found.stdout
    command = "::error" if fail_on_error == "true" else "::warning"
    assert f"{command} title=batch-metrics::no Python 3.11 or newer" in found.stdout
    assert "key" not in found.outputs  # so the cache, install and run steps are skipped
    assert found.outputs.get("status") == (None if fail_on_error == "true" else "failed")


# --- install: reuse, uv, the pip fallback -----------------------------------------------------


def fake_uv(directory: Path, log: Path, code: int = 0) -> Path:
    """A uv that writes down its arguments and exits with `code`."""
    directory.mkdir(parents=True, exist_ok=True)
    uv = directory / "uv"
    uv.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" >>"{log}"\nexit {code}\n')
    uv.chmod(0o755)
    return uv


@pytest.mark.parametrize("layout", ["bin/python", "Scripts/python.exe"])  # Linux/macOS, Windows
def test_a_venv_restored_or_made_earlier_is_used_as_it_is(tmp_path: Path, layout: str) -> None:
    venv = tmp_path / "runner-temp" / "batch-metrics-venv-0123456789abcdef"
    with_python(tmp_path, (venv / layout).parent, Path(layout).name)
    (venv / ".installed").touch()
    offline = runner(tmp_path, SYSTEM_PATH)  # no install is possible
    done = install(tmp_path, offline, sys.executable, venv)
    assert done.code == 0, done.stdout
    assert done.outputs == {"python": str(venv / layout)}  # no `installed`: nothing to save to the cache


def test_a_broken_venv_is_made_again_with_the_runners_uv(tmp_path: Path) -> None:
    venv = tmp_path / "runner-temp" / "batch-metrics-venv-0123456789abcdef"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(tmp_path / "gone")  # restored onto a runner without its Python
    (venv / ".installed").touch()
    log = tmp_path / "uv-args.txt"
    tools = fake_uv(tmp_path / "tools", log).parent
    env = runner(tmp_path, os.pathsep.join((str(tools), SYSTEM_PATH)))
    done = install(tmp_path, env, sys.executable, venv)
    assert done.code == 0, done.stdout
    assert done.outputs == {"python": str(venv / "bin" / "python"), "installed": "true", "installer": "uv"}
    assert (venv / "pyvenv.cfg").exists() and not list(venv.rglob("pip"))  # a fresh venv, made without pip
    assert log.read_text().splitlines() == [
        "pip", "install", "--python", str(venv / "bin" / "python"), "--require-hashes", "--no-deps",
        "--only-binary", ":all:", "--quiet",
        "--no-index",  # PIP_NO_INDEX, passed on
        "-r", str(ROOT / "requirements" / "action.txt"),
    ]  # fmt: skip


@pytest.mark.parametrize("layout", ["bin/uv", "Scripts/uv.exe"])  # where `pip install --target` puts it
def test_without_uv_on_path_it_is_installed_with_hashes_from_uv_txt(tmp_path: Path, layout: str) -> None:
    log = tmp_path / "uv-args.txt"
    pip_log = tmp_path / "pip-args.txt"
    # The base Python as far as pip goes: `-m pip install --target DIR ...` lays out a uv; the rest is real.
    fake_pip = fake_bin(
        tmp_path,
        python=(
            'if [ "$1 $2 $3 $4" = "-m pip install --target" ]; then\n'
            f'  printf "%s\\n" "$@" >"{pip_log}"\n'
            f'  mkdir -p "$5/{Path(layout).parent}"\n'
            f'  printf \'#!/bin/sh\\nprintf "%%s\\\\n" "$@" >"{log}"\\n\' >"$5/{layout}"\n'
            f'  chmod +x "$5/{layout}"; exit 0\n'
            "fi\n"
            f'exec "{sys.executable}" "$@"'
        ),
    )
    base = fake_pip / "python"
    venv = tmp_path / "runner-temp" / "batch-metrics-venv-0123456789abcdef"
    done = install(tmp_path, runner(tmp_path, SYSTEM_PATH), str(base), venv)
    assert done.code == 0, done.stdout
    assert done.outputs["installed"] == "true"
    pip = pip_log.read_text().splitlines()
    assert pip[4] == str(tmp_path / "runner-temp" / "batch-metrics-uv")
    assert {"--require-hashes", "--no-deps", ":all:"} <= set(pip)
    assert pip[-2:] == ["-r", str(ROOT / "requirements" / "uv.txt")]
    assert log.read_text().splitlines()[:4] == ["pip", "install", "--python", str(venv / "bin" / "python")]


def test_when_uv_fails_the_runners_pip_installs_into_the_venv(tmp_path: Path) -> None:
    action = action_with(tmp_path, "")  # nothing to fetch: this is about which installer runs
    tools = fake_uv(tmp_path / "tools", tmp_path / "uv-args.txt", code=2).parent
    env = runner(tmp_path, os.pathsep.join((str(tools), SYSTEM_PATH)), action)
    venv = tmp_path / "runner-temp" / "batch-metrics-venv-0123456789abcdef"
    done = install(tmp_path, env, sys.executable, venv)
    assert done.code == 0, done.stdout
    assert "batch-metrics: uv could not install the requirements (" in done.stdout
    assert done.outputs == {"python": str(venv / "bin" / "python"), "installed": "true", "installer": "pip"}
    assert (venv / ".installed").exists()


@pytest.mark.parametrize(("fail_on_error", "expected_code"), [("false", 0), ("true", 1)])
def test_a_failing_install_warns_and_lets_the_job_go_on(
    tmp_path: Path, fail_on_error: str, expected_code: int
) -> None:
    # No package index reachable: neither uv nor the pinned wheels can be fetched, for real.
    venv = tmp_path / "runner-temp" / "batch-metrics-venv-0123456789abcdef"
    done = install(tmp_path, runner(tmp_path, SYSTEM_PATH), sys.executable, venv, fail_on_error)
    assert done.code == expected_code, done.stdout
    command = "::error" if fail_on_error == "true" else "::warning"
    assert f"{command} title=batch-metrics::installing the action's requirements with" in done.stdout
    assert "python" not in done.outputs  # so the run step is skipped
    assert not (venv / ".installed").exists()  # and the next use tries again


# --- end to end ---------------------------------------------------------------------------------


def test_the_linux_set_up_end_to_end_from_the_package_index(tmp_path: Path) -> None:
    """locate, install and run as action.yml chains them on a fresh RUNNER_TEMP, fetching uv and the
    pinned wheels for real; then the same job's second use reuses the venv."""
    machine = {key: value for key, value in os.environ.items() if not key.startswith(("GITHUB_", "RUNNER_"))}
    env = {**machine, **runner(tmp_path, os.environ["PATH"]), "HOME": os.environ.get("HOME", str(tmp_path))}
    for name in NO_INDEX:
        env.pop(name)
    env["UV_CACHE_DIR"] = str(tmp_path / "uv-cache")  # a new job's uv has no cache
    found = locate(tmp_path, env)
    assert found.code == 0, found.stdout
    installed = install(tmp_path, env, found.outputs["python"], found.outputs["venv"])
    assert installed.code == 0, installed.stdout
    assert installed.outputs["installed"] == "true"
    assert installed.outputs["installer"] == "uv", installed.stdout
    assert (tmp_path / "runner-temp" / "batch-metrics-uv").is_dir()  # uv came from requirements/uv.txt
    workspace = tmp_path / "workspace"
    shutil.copytree(ROOT / "examples" / "results", workspace / "results")
    inputs = {"results": "results/**", "ecosystem": "homebrew", "dry-run": "true", "summary": "false"}
    ran = run_step(
        "run",
        tmp_path,
        run_context(tmp_path, installed.outputs["python"], inputs),
        runner_env(tmp_path, workspace),
    )
    assert ran.code == 0, ran.stdout
    assert ran.outputs["status"] == "dry-run"
    payload = json.loads((workspace / "batch-metrics-payload.json").read_text())
    assert payload["total_recipes"] == int(ran.outputs["total"]) > 0
    again = install(tmp_path, {**env, **NO_INDEX}, found.outputs["python"], found.outputs["venv"])
    assert again.outputs == {"python": installed.outputs["python"]}  # reused, nothing to save


def test_uv_is_pinned_with_hashes() -> None:
    pins = pinned(UV_REQUIREMENTS)
    assert list(pins) == ["uv"]
    version, hashes = pins["uv"]
    assert f"uv=={version}" in (ROOT / "requirements" / "uv.in").read_text()
    assert len(hashes) > 10  # a wheel for every platform the runners have


# --- uv follows the runner's pip ------------------------------------------------------------------


def uv_settings(tmp_path: Path, pip_conf: str | None, **env: str) -> list[str]:
    """What action/pip_to_uv.py gives uv, with `pip_conf` as the runner's pip configuration file (None:
    no configuration files at all) and `env` as its environment; pip itself reads them."""
    config = os.devnull
    if pip_conf is not None:
        (tmp_path / "pip.conf").write_text(pip_conf)
        config = str(tmp_path / "pip.conf")
    done = subprocess.run(
        [sys.executable, str(ROOT / "action" / "pip_to_uv.py")],
        env={"PATH": SYSTEM_PATH, "HOME": str(tmp_path), "PIP_CONFIG_FILE": config, **env},
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout.splitlines()


TRUST_AND_RETRIES = ["UV_SYSTEM_CERTS=true", "UV_NATIVE_TLS=true", "UV_HTTP_RETRIES=0"]
RUNNER_PIP_CONF = """\
[global]
index-url = https://global.example/simple/
extra-index-url =
    https://one.example/simple/
    https://two.example/simple/
find-links = /wheels/a /wheels/b
trusted-host = one.example
proxy = http://proxy.example:3128
cert = /ca/bundle.pem
client-cert = /ca/client.pem

[install]
index-url = https://install.example/simple/
no-index = true
"""


def test_pips_settings_reach_uv_as_its_own_variables(tmp_path: Path) -> None:
    assert uv_settings(tmp_path, RUNNER_PIP_CONF) == [
        "UV_DEFAULT_INDEX=https://install.example/simple/",  # [install] over [global], as pip reads them
        "UV_INDEX=https://one.example/simple/ https://two.example/simple/",
        "UV_INDEX_STRATEGY=unsafe-best-match",  # pip's choice across indexes; every file still needs its hash
        "UV_FIND_LINKS=/wheels/a,/wheels/b",
        "UV_INSECURE_HOST=one.example",
        "HTTPS_PROXY=http://proxy.example:3128",
        "HTTP_PROXY=http://proxy.example:3128",
        "SSL_CERT_FILE=/ca/bundle.pem",
        "SSL_CLIENT_CERT=/ca/client.pem",
        *TRUST_AND_RETRIES,
        "--no-index",
    ]


def test_what_the_runner_tells_uv_itself_wins_over_pips_settings(tmp_path: Path) -> None:
    told = {
        "PIP_INDEX_URL": "https://env.example/simple/",  # PIP_* over pip.conf, as in pip
        "UV_INDEX": "https://uv.example/simple/",
        "SSL_CERT_FILE": "/uv/bundle.pem",
        "https_proxy": "http://uv-proxy.example:3128",
        "UV_NATIVE_TLS": "false",
    }
    assert uv_settings(tmp_path, RUNNER_PIP_CONF, **told) == [
        "UV_DEFAULT_INDEX=https://env.example/simple/",
        "UV_FIND_LINKS=/wheels/a,/wheels/b",
        "UV_INSECURE_HOST=one.example",
        "HTTP_PROXY=http://proxy.example:3128",
        "SSL_CLIENT_CERT=/ca/client.pem",
        "UV_HTTP_RETRIES=0",
        "--no-index",
    ]


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_the_ca_bundle_pip_reads_from_the_environment_reaches_uv(tmp_path: Path, variable: str) -> None:
    assert uv_settings(tmp_path, None, **{variable: "/ca/proxy.pem"}) == [
        "SSL_CERT_FILE=/ca/proxy.pem",
        *TRUST_AND_RETRIES,
    ]


# --- a self-hosted runner's private index: HTTPS on loopback, a private CA in the system store -------


@pytest.fixture
def index(tmp_path: Path) -> Iterator[PrivateIndex]:
    """Caddy serving the pinned wheels at https://127.0.0.1/simple/ in namespaces with no other network."""
    why = unavailable()
    if why is not None:
        leave_out(why)
    wheels = pinned_wheels(sys.executable, ROOT / ".venv" / "cache")  # downloaded once, through the proxy
    work = tmp_path / "index"
    work.mkdir()
    with private_index(work, wheels) as running:
        yield running


def private_runner(tmp_path: Path, *path: Path, **extra: str) -> dict[str, str]:
    """A runner's step environment: its Python (and `path`) on PATH, no CA, proxy or index variables
    (a step has none here, unlike this machine's shell), a new job's uv cache, and `extra`."""
    env = runner(tmp_path, os.pathsep.join((str(with_python(tmp_path, tmp_path / "bin")), *map(str, path),
                                            SYSTEM_PATH)))  # fmt: skip
    for name in NO_INDEX:
        env.pop(name)
    return {**env, "UV_CACHE_DIR": str(tmp_path / "uv-cache"), **extra}


def set_up(tmp_path: Path, index: PrivateIndex, env: Mapping[str, str]) -> StepRun:
    """locate and install as action.yml chains them, in the index's namespaces; the run step's dry run
    then shows the venv works."""
    found = locate(tmp_path, env, wrapper=index.enter())
    assert found.code == 0, found.stdout
    installed = install(tmp_path, env, found.outputs["python"], found.outputs["venv"], wrapper=index.enter())
    assert installed.code == 0, installed.stdout
    assert installed.outputs["installed"] == "true", installed.stdout
    workspace = tmp_path / "workspace"
    shutil.copytree(ROOT / "examples" / "results", workspace / "results")
    inputs = {"results": "results/**", "ecosystem": "homebrew", "dry-run": "true", "summary": "false"}
    context = run_context(tmp_path, installed.outputs["python"], inputs)
    ran = run_step("run", tmp_path, context, runner_env(tmp_path, workspace))
    assert ran.outputs.get("status") == "dry-run", ran.stdout
    return installed


def fetched_by(index: PrivateIndex, installer: str) -> set[str]:
    """The paths `installer` (uv or pip, by its User-Agent) fetched from the index."""
    return {path for agent, path in index.requests() if agent.startswith(f"{installer}/")}


def every_pin_page() -> set[str]:
    return {f"/simple/{name}/" for name in pinned(ACTION_REQUIREMENTS)}


def test_uv_installs_from_the_index_pips_configuration_names(tmp_path: Path, index: PrivateIndex) -> None:
    """pip.conf names the index and trusts the system's bundle, which holds the index's CA; no variable
    says so. pip installs uv from the index, and uv, given pip's settings, the pinned wheels."""
    env = private_runner(tmp_path, PIP_CONFIG_FILE=str(runner_pip_conf(tmp_path / "pip.conf")))
    installed = set_up(tmp_path, index, env)
    assert installed.outputs["installer"] == "uv", installed.stdout
    assert installed.stdout == ""  # nothing to say: no fallback, no warnings
    assert "/simple/uv/" in fetched_by(index, "pip")
    uv_fetched = fetched_by(index, "uv")
    assert every_pin_page() <= uv_fetched
    wheels = [path for path in uv_fetched if path.startswith("/files/")]
    assert len(wheels) == len(pinned(ACTION_REQUIREMENTS)), uv_fetched


def test_the_runners_uv_trusts_the_system_store_for_its_index(tmp_path: Path, index: PrivateIndex) -> None:
    """A runner with uv on PATH and UV_DEFAULT_INDEX set, the CA only in the system's store, and no pip
    configuration: uv's own roots would refuse the index; the set-up has it use the system's."""
    tools = tmp_path / "tools"
    tools.mkdir()
    with zipfile.ZipFile(next(index.wheels.glob("uv-*.whl"))) as wheel:
        (tools / "uv").write_bytes(wheel.read(next(n for n in wheel.namelist() if n.endswith("/scripts/uv"))))
    (tools / "uv").chmod(0o755)
    env = private_runner(tmp_path, tools, PIP_CONFIG_FILE=os.devnull, UV_DEFAULT_INDEX=URL)
    installed = set_up(tmp_path, index, env)
    assert installed.outputs["installer"] == "uv", installed.stdout
    assert not (tmp_path / "runner-temp" / "batch-metrics-uv").exists()  # the runner's uv, not one installed
    assert every_pin_page() <= fetched_by(index, "uv")
    assert not fetched_by(index, "pip")


def test_when_uv_fails_one_line_says_why_and_pip_installs(tmp_path: Path, index: PrivateIndex) -> None:
    """uv told another index than pip's (nothing listens there): it gives up at once, the log says why
    in one line, and pip installs from the private index."""
    env = private_runner(
        tmp_path,
        PIP_CONFIG_FILE=str(runner_pip_conf(tmp_path / "pip.conf")),
        UV_DEFAULT_INDEX="https://127.0.0.1:9/simple/",
    )
    installed = set_up(tmp_path, index, env)
    assert installed.outputs["installer"] == "pip", installed.stdout
    [line] = installed.stdout.splitlines()
    assert line.startswith("batch-metrics: uv could not install the requirements ("), line
    assert line.endswith("Connection refused (os error 111)); installing with pip"), line
    assert every_pin_page() <= fetched_by(index, "pip")
