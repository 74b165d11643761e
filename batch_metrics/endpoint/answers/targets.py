"""What the operator expects: weekly runner-minute budgets per operating system, success-rate targets.

Set with `serve --minutes-budget macos=1000,linux=5000` and `serve --success-target 0.9,homebrew=0.95`
(or `$BATCH_METRICS_MINUTES_BUDGET` and `$BATCH_METRICS_SUCCESS_TARGET`). The dashboard shows the
minutes against the budgets, and `/metrics` exports both, so the alert rules in `deploy/alerts.yml`
compare what was measured with what was expected, per ecosystem and per operating system.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

MINUTES_BUDGET_ENV = "BATCH_METRICS_MINUTES_BUDGET"
SUCCESS_TARGET_ENV = "BATCH_METRICS_SUCCESS_TARGET"
SYSTEMS = ("macos", "linux")  # the runner minutes a batch reports: `macos_minutes`, `linux_minutes`
DEFAULT_SUCCESS_TARGET = 0.9
BUDGET_DAYS = 7  # a budget is per week: the minutes of the last 7 days count against it


class TargetError(ValueError):
    """A setting that does not parse: the message says which part and why."""


@dataclass(frozen=True)
class Targets:
    """Weekly minutes per operating system (`macos`, `linux`; none set: no budget), and the success rate
    each ecosystem should keep (`default` for those not named)."""

    minutes_budget: dict[str, float] = field(default_factory=dict)
    success_default: float = DEFAULT_SUCCESS_TARGET
    success: dict[str, float] = field(default_factory=dict)

    def success_target(self, ecosystem: str) -> float:
        return self.success.get(ecosystem, self.success_default)


def _pairs(text: str, what: str) -> list[tuple[str | None, float]]:
    """`a=1,b=2` (and bare numbers, as `(None, n)`) with every number finite and not negative."""
    found: list[tuple[str | None, float]] = []
    for part in text.split(","):
        name, sep, number = part.strip().rpartition("=")
        try:
            value = float(number)
        except ValueError:
            raise TargetError(f"{what}: {part.strip()[:60]!r} is not name=number") from None
        if not math.isfinite(value) or value < 0:
            raise TargetError(f"{what}: {part.strip()[:60]!r} is not a finite number of at least 0")
        if sep and not name.strip():
            raise TargetError(f"{what}: {part.strip()[:60]!r} names nothing before '='")
        found.append((name.strip() if sep else None, value))
    return found


def parse_budget(text: str) -> dict[str, float]:
    """`macos=1000,linux=5000`: weekly runner minutes per operating system."""
    budget: dict[str, float] = {}
    for name, minutes in _pairs(text, "minutes budget"):
        if name not in SYSTEMS:
            raise TargetError(f"minutes budget: {name!r} is not one of {', '.join(SYSTEMS)} (macos=1000)")
        budget[name] = minutes
    return budget


def parse_success(text: str) -> tuple[float, dict[str, float]]:
    """`0.9,homebrew=0.95`: the default target and targets per ecosystem, each from 0 to 1."""
    default, targets = DEFAULT_SUCCESS_TARGET, dict[str, float]()
    for name, rate in _pairs(text, "success target"):
        if rate > 1:
            raise TargetError(f"success target: {rate:g} is over 1 (a rate: 0.9 is 90%)")
        if name is None:
            default = rate
        else:
            targets[name] = rate
    return default, targets


def targets_from(budget: str | None, success: str | None) -> Targets:
    """The settings as `serve` and `app_from_env` take them (None or blank: not set)."""
    success_targets = parse_success(success) if success and success.strip() else (DEFAULT_SUCCESS_TARGET, {})
    return Targets(parse_budget(budget) if budget and budget.strip() else {}, *success_targets)
