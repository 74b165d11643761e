#!/usr/bin/env bash
# The composite action's set-up (action.yml runs it in two steps, with a cache restore between):
#
#   install.sh locate   find the runner's Python 3.11+ and name the venv and its cache key
#   install.sh install  fill the venv, unless it is already there (this job, or the cache restored it)
#
# The venv is made without pip (creating pip costs more than everything else together), and uv
# installs the pinned, hashed wheels into it; uv is the runner's own when it has one, else it is
# installed from requirements/uv.txt (hashed too) with the runner's pip. uv is given the runner's pip
# settings (index, CA bundle, proxy: action/pip_to_uv.py) and the system's trust store, so it works
# behind a TLS-intercepting proxy or with a private index wherever pip does. When uv cannot do it
# anyway, one line says why and the runner's pip installs into the venv (`pip --python`). Metrics
# must not break the pipeline they measure: any failure is a warning (the run step is then skipped)
# unless fail-on-error is true.
#
# Runs on the Linux, macOS and Windows runners' bash (Git Bash on Windows, where paths handed to
# Windows programs are converted with cygpath and a venv keeps its interpreter in Scripts/).
set -uo pipefail

give_up() {
  case "${INPUT_FAIL_ON_ERROR:-false}" in
    true | True | TRUE) echo "::error title=batch-metrics::$1"; exit 1 ;;
  esac
  echo "::warning title=batch-metrics::$1; no metrics were sent (fail-on-error is false, so the job goes on)"
  echo "status=failed" >>"$GITHUB_OUTPUT"
  exit 0
}

# Git Bash reads /d/a/_temp; Windows programs (Python, the cache action) want D:\a\_temp.
posix() { if command -v cygpath >/dev/null; then cygpath -u "$1"; else printf '%s\n' "$1"; fi; }
native() { if command -v cygpath >/dev/null; then cygpath -w "$1"; else printf '%s\n' "$1"; fi; }

venv_python() { if [ -d "$1/Scripts" ]; then echo "$1/Scripts/python.exe"; else echo "$1/bin/python"; fi; }

# Interpreters to try, best first.
python_candidates() {
  # actions/setup-python, when the job used it.
  if [ -n "${pythonLocation:-}" ]; then
    local location
    location=$(posix "$pythonLocation")
    echo "$location/bin/python3"
    echo "$location/python.exe"
  fi
  printf '%s\n' python3 python python3.13 python3.12 python3.11
  # Hosted runners keep several versions in the tool cache (Windows' `python` is often older).
  if [ -n "${RUNNER_TOOL_CACHE:-}" ]; then
    local dir
    for dir in "$(posix "$RUNNER_TOOL_CACHE")"/Python/3.*/*/; do
      echo "${dir}bin/python3"
      echo "${dir}python.exe"
    done
  fi
}

# "VERSION DIGEST EXECUTABLE" for a Python 3.11+, else nothing. The digest names the venv and its
# cache entry and changes with the requirements, the interpreter's path and its exact version; the
# executable is the interpreter itself (not a shim such as pyenv's that runs it).
describe_python() {
  "$1" - "$2" 2>/dev/null <<'PY'
import hashlib, platform, sys
if sys.version_info < (3, 11):
    sys.exit(1)
digest = hashlib.sha256(open(sys.argv[1], "rb").read() + sys.executable.encode() + sys.version.encode())
print(platform.python_version(), digest.hexdigest()[:16], sys.executable)
PY
}

locate() {
  local requirements="$GITHUB_ACTION_PATH/requirements/action.txt" temp candidate version digest executable
  temp=$(posix "$RUNNER_TEMP")
  while IFS= read -r candidate; do
    read -r version digest executable < <(describe_python "$candidate" "$requirements") || continue
    {
      echo "python=$(posix "$executable")"
      echo "venv=$(native "$temp/batch-metrics-venv-$digest")"
      echo "key=batch-metrics-venv-${RUNNER_OS:-os}-${RUNNER_ARCH:-arch}-py$version-$digest"
    } >>"$GITHUB_OUTPUT"
    return 0
  done < <(python_candidates)
  give_up "no Python 3.11 or newer found on this runner (tried PATH and the tool cache; actions/setup-python before this step provides one)"
}

# The uv executable inside a `pip install --target` directory: bin/ on Linux and macOS, Scripts/ on Windows.
uv_in() {
  local candidate
  for candidate in "$1/bin/uv" "$1/Scripts/uv.exe"; do
    if [ -x "$candidate" ]; then echo "$candidate"; return 0; fi
  done
  return 1
}

# The runner's uv, else one installed now (into the job's temp directory, beside the venv).
find_uv() {
  if command -v uv; then return 0; fi
  local target
  target="$(posix "$RUNNER_TEMP")/batch-metrics-uv"
  rm -rf "$target"
  "$BATCH_METRICS_BASE_PYTHON" -m pip install --target "$(native "$target")" --require-hashes --no-deps \
    --only-binary :all: --no-compile --disable-pip-version-check --no-input --quiet --quiet \
    -r "$GITHUB_ACTION_PATH/requirements/uv.txt" >&2 || return 1
  uv_in "$target"
}

# What went wrong, in one line, from uv's output (`error: ...` and its last `cause: ...`) or pip's
# (its first `ERROR: ...`) in the file $1.
reason() {
  awk '
    /^(error|ERROR):/ && first == "" { first = $0; sub(/^(error|ERROR): */, "", first) }
    /^[ \t]*(cause|Caused by):/ { cause = $0; sub(/^[ \t]*(cause|Caused by): */, "", cause) }
    NF { last = $0 }
    END { if (first == "") first = last; if (cause != "") first = first ": " cause
          if (first == "") first = "it said nothing"; print first }
  ' "$1"
}

install_with_uv() {
  local uv log settings reading setting variables=() options=()
  log="$(posix "$RUNNER_TEMP")/batch-metrics-uv.log"
  settings="$(posix "$RUNNER_TEMP")/batch-metrics-uv-settings"
  # Read while uv is found or installed (a Python start-up and pip's import: ~0.3 s, on another core).
  "$BATCH_METRICS_BASE_PYTHON" "$GITHUB_ACTION_PATH/action/pip_to_uv.py" >"$settings" &
  reading=$!
  if ! uv=$(find_uv 2>"$log"); then
    wait "$reading"
    echo "batch-metrics: uv could not be installed ($(reason "$log")); installing with pip" >&2
    return 1
  fi
  wait "$reading"
  # NAME=VALUE for uv's environment, or an option for `uv pip install`, one a line (CRLF on Windows).
  while IFS= read -r setting; do
    setting=${setting%$'\r'}
    case "$setting" in
      --*) options+=("$setting") ;;
      ?*=*) variables+=("$setting") ;;
    esac
  done <"$settings"
  env ${variables[@]+"${variables[@]}"} "$uv" pip install --python "$(native "$1")" --require-hashes \
    --no-deps --only-binary :all: --quiet ${options[@]+"${options[@]}"} \
    -r "$GITHUB_ACTION_PATH/requirements/action.txt" 2>"$log" && return 0
  echo "batch-metrics: uv could not install the requirements ($(reason "$log")); installing with pip" >&2
  return 1
}

install_with_pip() {
  "$BATCH_METRICS_BASE_PYTHON" -m pip --python "$(native "$1")" install --require-hashes --no-deps \
    --only-binary :all: --disable-pip-version-check --no-input --quiet --quiet \
    -r "$GITHUB_ACTION_PATH/requirements/action.txt"
}

install() {
  local venv python installer
  venv=$(posix "$BATCH_METRICS_VENV")
  # Installed earlier in this job, or restored from the cache: used as it is if its interpreter starts.
  if [ -f "$venv/.installed" ] && "$(venv_python "$venv")" -c '' 2>/dev/null; then
    echo "python=$(venv_python "$venv")" >>"$GITHUB_OUTPUT"
    return 0
  fi
  rm -rf "$venv"
  "$BATCH_METRICS_BASE_PYTHON" -m venv --without-pip "$(native "$venv")" \
    || give_up "creating a venv with $BATCH_METRICS_BASE_PYTHON failed (see the log above)"
  python=$(venv_python "$venv")
  installer=uv
  if ! install_with_uv "$python"; then
    installer=pip
    install_with_pip "$python" \
      || give_up "installing the action's requirements with $BATCH_METRICS_BASE_PYTHON failed (see the log above)"
  fi
  touch "$venv/.installed"
  { echo "python=$python"; echo "installed=true"; echo "installer=$installer"; } >>"$GITHUB_OUTPUT"
}

case "${1:-}" in
  locate) locate ;;
  install) install ;;
  *) echo "usage: install.sh locate|install" >&2; exit 2 ;;
esac
