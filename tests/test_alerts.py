"""deploy/alerts.yml: valid rules that fire and resolve on sample series (`promtool test rules`, Debian's
`prometheus` package), that read only metrics `/metrics` serves, and that fire on a real scrape of a seeded
history: its success rate under target, its new failures, its minutes over the weekly budget."""

from __future__ import annotations

import re
import secrets
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from batch_metrics.endpoint.answers.dashboard import Window
from batch_metrics.endpoint.answers.targets import targets_from
from batch_metrics.endpoint.storage import open_storage
from tests.answers_history import BUDGET, batches, seed
from tests.conftest import ROOT, need
from tests.live import running

PROMTOOL = Path("/usr/bin/promtool")
RULES = ROOT / "deploy" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "alerts.test.yml"
NAME = re.compile(r"\bbatch_metrics_[a-z0-9_]+")


def promtool(*args: str, stdin: str | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    need(PROMTOOL, "prometheus")
    return subprocess.run(
        [str(PROMTOOL), *args], input=stdin, capture_output=True, text=True, timeout=120, cwd=cwd, check=False
    )


@pytest.fixture(scope="module")
def scrape(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`/metrics` over HTTP, served with the budget and targets, on the seeded history up to last night."""
    storage = open_storage(str(tmp_path_factory.mktemp("alerts") / "metrics.db"))
    storage.migrate()
    seed(storage, datetime.now(UTC))
    token = secrets.token_urlsafe(24)
    with running(storage, [token], targets=targets_from(BUDGET, "0.9,pypi=0.95")) as url:
        answer = requests.get(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=60)
    storage.close()
    assert answer.status_code == 200
    yield answer.text


def test_the_rules_are_valid_and_each_alert_fires_and_resolves() -> None:
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0 and "SUCCESS: 5 rules found" in checked.stdout, (
        checked.stdout + checked.stderr
    )
    tested = promtool("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr
    resolved = set()  # alerts seen firing for some labels, then no longer for them, in one test's timeline
    for test in yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]:
        seen: dict[tuple[str, str], bool] = {}
        for check in test["alert_rule_test"]:  # in the order of their eval_time
            firing = {
                (check["alertname"], repr(sorted(alert["exp_labels"].items())))
                for alert in check["exp_alerts"]
            }
            resolved |= {
                alert
                for alert, labels in seen
                if (alert, labels) not in firing and alert == check["alertname"]
            }
            seen.update(dict.fromkeys(firing, True))
    alerts = {
        rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    }
    assert resolved == alerts


def test_the_rules_read_only_metrics_that_are_served(scrape: str) -> None:
    served = {family.name for family in text_string_to_metric_families(scrape)}
    read = set(NAME.findall(RULES.read_text(encoding="utf-8")))
    assert read and read <= served, read - served
    sampled = set(NAME.findall(RULE_TESTS.read_text(encoding="utf-8")))
    assert sampled <= served, sampled - served


def test_the_scrape_passes_promtools_lint(scrape: str) -> None:
    linted = promtool("check", "metrics", stdin=scrape)
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_the_seeded_history_fires_the_alerts_it_should(scrape: str, tmp_path: Path) -> None:
    """The real scrape held a few minutes as promtool's input: the alerts a Prometheus scraping it fires."""
    series = [
        {"series": f"{sample.name}{{{','.join(f'{key}={text!r}' for key, text in sample.labels.items())}}}",
         "values": f"{sample.value!r}x5"}
        for family in text_string_to_metric_families(scrape) for sample in family.samples
    ]  # fmt: skip
    now = datetime.now(UTC)
    since = Window(days=7, now=now).since
    minutes = sum(
        sent["macos_minutes"] for sent in batches(now) if sent["started_at"] >= since
    )  # homebrew's 40 a night and pypi's 2, against 200
    hours, rest = divmod(int(minutes * 60), 3600)
    expected = {
        "BatchMetricsSuccessRateBelowTarget": [
            ({"ecosystem": "pypi", "severity": "warning"},
             "pypi: the latest batch passed 75% of its validations, under its target"),
        ],
        "BatchMetricsNewFailures": [
            ({"ecosystem": "homebrew", "severity": "info"},
             "homebrew: 2 new failures since the previous run"),
        ],
        "BatchMetricsMinutesOverBudget": [
            ({"os": "macos", "severity": "warning"},
             f"macos: {hours}h {rest // 60}m {rest % 60}s of runner time in the last 7 days, over the weekly "
             "budget"),
        ],
        "BatchMetricsEcosystemStale": [],  # a batch last night, as every night
        "BatchMetricsRollupSetAside": [],
    }  # fmt: skip
    checks = [
        {"eval_time": "1m", "alertname": name,
         "exp_alerts": [{"exp_labels": labels, "exp_annotations": {"summary": said}}
                        for labels, said in found]}
        for name, found in expected.items()
    ]  # fmt: skip
    (tmp_path / "alerts.yml").write_text(RULES.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "scrape.test.yml").write_text(yaml.safe_dump({
        "rule_files": ["alerts.yml"], "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": checks}],
    }), encoding="utf-8")  # fmt: skip
    tested = promtool("test", "rules", "scrape.test.yml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
