"""tsuku's own shapes read as tsuku writes and reads them: run summaries, sandbox results, its categories.

The category tables are compared with tsuku's `failures.go` itself (tests/fixtures/tsuku/source/),
so a change there shows up here. No sandbox result is committed by tsuku: they are built from the
fields `install_sandbox.go` and `install.go` write.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from batch_metrics.client.collect import collect
from batch_metrics.client.collect.categories import CANONICAL, KNOWN_TAGS, canonical, subcategory
from batch_metrics.client.collect.sandbox import architecture

SOURCE = "tsuku/source"
BATCH = "tsuku/batches/2026-03-11T21-36-10Z/data"


def go_map(text: str, name: str) -> dict[str, str]:
    """`var <name> = map[string]<type>{ "a": "b", ... }` from Go source."""
    body = re.search(rf"var {name} = map\[string\]\w+\{{(.*?)\n\}}", text, re.DOTALL)
    assert body, name
    return dict(re.findall(r'"([^"]+)":\s*"?([\w]+)"?', body.group(1)))


def test_the_canonical_categories_are_tsukus(fixtures: Path) -> None:
    source = (fixtures / SOURCE / "failures.go").read_text(encoding="utf-8")
    assert go_map(source, "categoryRemap") == CANONICAL
    assert set(go_map(source, "knownSubcategories")) == KNOWN_TAGS
    assert canonical("deterministic") == "generation_failed"
    assert canonical("missing_dep") == "missing_dep"  # canonical names pass through


@pytest.mark.parametrize(
    ("message", "exit_code", "expected"),
    [
        ("deterministic generation failed: [no_bottles] none for arm64", 6, "no_bottles"),
        ("[not_a_tag] but the bottle not found", None, "no_bottle"),  # level 2 after an unknown tag
        ("Error: failed to verify version pattern", None, "verify_pattern_mismatch"),
        ("GET https://api.github.com: 429 Too Many Requests", None, "rate_limited"),
        ("context deadline exceeded", None, "timeout"),
        ("something else entirely", 6, None),  # a message that fits nothing: no exit-code fallback
        (None, 6, "install_failed"),
        (None, 7, "verify_failed"),
        (None, 9, "deterministic_failed"),
        (None, 1, None),
    ],
)
def test_subcategories_by_tsukus_three_levels(
    message: str | None, exit_code: int | None, expected: str | None
) -> None:
    assert subcategory(message, exit_code) == expected


# --- run summaries -------------------------------------------------------------------------------------


def test_a_committed_run_summary_is_read_whole(fixtures: Path) -> None:
    got = collect(f"{BATCH}/metrics/*.jsonl", fixtures)
    assert got.warnings == [] and got.results == []
    [summary] = got.summaries
    assert (summary.path, summary.line) == (f"{BATCH}/metrics/batch-runs-2026-03-11T21-36-10Z.jsonl", 1)
    values = summary.values
    assert values["platforms"]["linux-x86_64"] == {"tested": 5, "passed": 0, "failed": 5}
    six = ("crates.io", "github", "homebrew", "npm", "pypi", "rubygems")
    assert values["ecosystems"] == dict.fromkeys(six, 1)
    assert (values["generated"], values["total"], values["merged"], values["constrained"]) == (1, 1, 1, 1)
    assert (values["timestamp"], values["duration_seconds"]) == ("2026-03-11T21:36:10Z", 15)
    assert values.get("source") == summary.path


def test_the_older_summaries_name_one_ecosystem(fixtures: Path) -> None:
    got = collect("tsuku/metrics/batch-runs.jsonl", fixtures)
    assert got.warnings == []
    assert len(got.summaries) == 40
    first = got.summaries[0].values
    assert (first.get("ecosystem"), first.get("ecosystems"), first["batch_id"]) == (
        "homebrew",
        None,
        "2026-02-03-homebrew",
    )
    assert [summary.line for summary in got.summaries[:2]] == [1, 34]  # pretty-printed, one after another


def test_a_malformed_summary_is_a_warning_naming_its_line(tmp_path: Path) -> None:
    good = {"batch_id": "b", "platforms": {"linux-x86_64": {"tested": 1, "passed": 1, "failed": 0}}}
    bad = {"batch_id": "c", "platforms": {"linux-x86_64": {"tested": "five", "passed": 1, "failed": 0}}}
    (tmp_path / "s.jsonl").write_text(f"{json.dumps(good)}\n{json.dumps(bad)}\n")
    got = collect("s.jsonl", tmp_path)
    assert len(got.summaries) == 1
    [warning] = got.warnings
    assert (warning.path, warning.line) == ("s.jsonl", 2)
    assert "invalid run summary: platforms.linux-x86_64.tested" in warning.message


# --- sandbox results -----------------------------------------------------------------------------------


def sandbox(directory: Path, recipe: str, family: str, **fields: object) -> Path:
    """A `.result-<recipe>-<family>.json` as `tsuku install --sandbox --json` writes it."""
    value = {"tool": recipe, "passed": True, "verified": True, "install_exit_code": 0, "verify_exit_code": 0,
             "duration_ms": 61_500, "error": None, **fields}  # fmt: skip
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f".result-{recipe}-{family}.json"
    path.write_text(json.dumps(value) + "\n")
    return path


def test_sandbox_results_give_platform_duration_and_build_log(tmp_path: Path) -> None:
    x86, arm = tmp_path / "sandbox-results" / "linux-x86_64", tmp_path / "sandbox-results" / "linux-arm64"
    sandbox(x86, "fastlane", "alpine")
    log = "Step 3/4: install_gem\n" + "x" * 9000 + "\nerror: ruby 3.4 needs glibc, token ghp_" + "a" * 36
    sandbox(arm, "fast-lane", "debian", passed=False, verified=False, install_exit_code=6, duration_ms=2500,
            error="installation failed with exit code 6", install_output=log)  # fmt: skip
    got = collect("sandbox-results/**/.result-*.json", tmp_path)
    assert got.warnings == []
    by_platform = {row.get("platform"): row for row in got.results}
    passed = by_platform["linux-alpine-musl-x86_64"]
    assert (passed["recipe_name"], passed["result"], passed.get("duration_seconds")) == (
        "fastlane",
        "passed",
        61.5,
    )
    assert passed.get("error_message") is None
    failed = by_platform["linux-debian-glibc-arm64"]
    assert (failed["recipe_name"], failed["result"], failed.get("duration_seconds")) == (
        "fast-lane",
        "failed",
        2.5,
    )
    message = failed.get("error_message") or ""
    assert message.startswith("installation failed with exit code 6\nStep 3/4: install_gem")
    assert message.endswith("needs glibc, token ghp_" + "a" * 36)  # the log's end is kept (redacted later)
    assert len(message) <= 4096 and "characters cut" in message


def test_the_install_error_shape_gives_category_subcategory_and_blocked_by(tmp_path: Path) -> None:
    error = {"status": "error", "category": "missing_dep", "subcategory": "", "message": "needs openssl@3",
             "missing_recipes": ["openssl@3"], "install_exit_code": 8}  # fmt: skip
    folder = tmp_path / "linux-arm64"
    folder.mkdir()
    (folder / ".result-libgit2-alpine.json").write_text(json.dumps(error))
    [row] = collect("**/.result-*.json", tmp_path).results
    assert (row.get("platform"), row["result"], row.get("error_category"), row.get("blocked_by")) == (
        "linux-alpine-musl-arm64",
        "failed",
        "missing_dep",
        ["openssl@3"],
    )
    assert row.get("error_message") == "needs openssl@3"
    assert row.get("duration_seconds") is None


def test_a_sandbox_result_without_its_architecture_is_a_warning_not_a_guess(tmp_path: Path) -> None:
    sandbox(tmp_path / "results", "fd", "debian")
    got = collect("results/.result-*.json", tmp_path)
    assert got.results == []
    [warning] = got.warnings
    assert warning.path == "results/.result-fd-debian.json"
    assert "does not say which platform ran it" in warning.message


def test_dot_files_match_when_the_pattern_names_the_dot(tmp_path: Path) -> None:
    sandbox(tmp_path / "linux-x86_64", "fd", "debian")
    assert collect("linux-x86_64/*", tmp_path).results == []  # `*` never matches a leading dot
    assert collect("**/*.json", tmp_path).results == []
    assert len(collect("linux-x86_64/.result-*", tmp_path).results) == 1
    assert len(collect("**/.result-*.json", tmp_path).results) == 1


@pytest.mark.parametrize(
    ("path", "arch"),
    [
        ("sandbox-results/linux-x86_64/.result-a-b.json", "x86_64"),
        ("sandbox-results-linux-arm64/.result-a-b.json", "arm64"),
        ("aarch64/x/.result-a-b.json", "arm64"),
        ("runner/amd64/.result-a-b.json", "x86_64"),
        ("linux-x86_64/arm64/.result-a-b.json", "arm64"),  # the nearest directory decides
        (".result-a-b.json", None),
        ("barm64x/.result-a-b.json", None),  # part of a word is not a name
    ],
)
def test_the_architecture_comes_from_a_directory_named_for_it(path: str, arch: str | None) -> None:
    assert architecture(path) == arch
