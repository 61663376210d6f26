"""The playbook's P0-P3 rules (playbook 1.1 and 1.3), in one place."""

from __future__ import annotations

from collections.abc import Iterable

from playbook.config import Slo

LEVELS = ("P0", "P1", "P2", "P3")
# Allure's names for the same urgency.
ALLURE = {"P0": "blocker", "P1": "critical", "P2": "normal", "P3": "minor"}
DESCRIPTION = {
    "P0": "Critical - complete outage, data breach or security incident; respond < 5 minutes",
    "P1": "High - partial degradation or performance issues for > 50 % of users; < 15 minutes",
    "P2": "Medium - limited impact, degradation for < 50 % of users; < 1 hour",
    "P3": "Low - minor or cosmetic; < 24 hours",
}
INCIDENT_TYPES = (
    "service outage", "performance", "security", "data", "infrastructure", "third-party",
)


class CheckFailed(AssertionError):
    """A failed check whose severity depends on what was seen (e.g. a 5xx rate: P1 or P0)."""

    def __init__(self, message: str, severity: str) -> None:
        if severity not in LEVELS:
            raise ValueError(f"severity must be one of {LEVELS}, got {severity!r}")
        super().__init__(message)
        self.severity = severity


def worst(severities: Iterable[str]) -> str | None:
    found = [s for s in severities if s in LEVELS]
    return min(found, key=LEVELS.index) if found else None


def error_rate(rate: float, slo: Slo) -> str | None:
    """HTTP 5xx rate > 50 % is P0, > 10 % is P1 (playbook 1.3)."""
    if rate > slo.error_rate_p0:
        return "P0"
    if rate > slo.error_rate_p1:
        return "P1"
    return None


def latency(p95_seconds: float, slo: Slo) -> str | None:
    """P95 response time > 2 s is P1 (playbook 1.3)."""
    return "P1" if p95_seconds > slo.p95_seconds else None
