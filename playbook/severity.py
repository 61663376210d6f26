"""The playbook's P0-P3 rules (playbook "Severity Levels", 1.1 and 1.3), in one place: each
rule takes what was seen and answers the severity of the finding, or None when there is none.
Check modules call them; a rule never reads a profile beyond its thresholds.

    P0  complete service outage, data breach, security incident
    P1  partial degradation, performance issues for > 50 % of users
    P2  limited impact, degradation for < 50 % of users
    P3  minor, cosmetic
"""

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
    """The most severe of these (P0 before P3); None when there is none."""
    found = [s for s in severities if s in LEVELS]
    return min(found, key=LEVELS.index) if found else None


def least(*severities: str) -> str:
    """The least severe of these: a cap (least("P0", "P1") is P1)."""
    return max(severities, key=LEVELS.index)


def rank(severity: str) -> int:
    """A sort key: P0 first."""
    return LEVELS.index(severity)


# --- the rules -------------------------------------------------------------------------------

UNOBSERVED = "P1"


def unobserved(check_level: str) -> str:
    """A system the check cannot ask (unreachable, 401/403, throttled, timed out): P1 - the
    suite is blind, which is not proof of an outage but leaves the on-call team without the
    playbook's view - or the check's own level when that is lower (a P3 context check stays
    P3)."""
    return least(check_level, UNOBSERVED)


def _of_total(ok: int, total: int) -> str | None:
    if total == 0 or ok == 0:
        return "P0"
    return "P1" if ok < total else None


def pods_ready(ready: int, total: int) -> str | None:
    """Playbook 1.1 `kubectl get pods`: no backend pod at all, or none Running and Ready, is
    P0 (the cluster cannot serve: a complete outage); some not ready is P1 (partial
    degradation)."""
    return _of_total(ready, total)


def replicas_available(available: int, desired: int) -> str | None:
    """The backend's Deployment: none available is P0, and so is one that wants no replica at
    all (scaled to 0 of 0 serves nothing: an outage, not a pass); fewer available than desired
    is P1."""
    return _of_total(available, desired)


def nodes_ready(ready: int, total: int) -> str | None:
    """Playbook 1.1 `kubectl get nodes`: no node, or none Ready, is P0; some NotReady is P1."""
    return _of_total(ready, total)


def instances_ok(ok: int, total: int) -> str | None:
    """Playbook 1.1 `aws ec2 describe-instance-status`: no node instance at all, or none
    passing its status checks, is P1 (the running pods may still serve; the cluster cannot
    heal); some failing is P2 (Kubernetes reschedules their pods)."""
    if total == 0 or ok == 0:
        return "P1"
    return "P2" if ok < total else None


def targets_healthy(healthy: int, registered: int, minimum: int = 1) -> str | None:
    """Playbook 3.2 `aws elbv2 describe-target-health`: no registered target, or none healthy,
    is P0 (the load balancer answers 503 to every request); some not healthy, or fewer healthy
    than `minimum`, is P1 (the others carry the traffic)."""
    if registered == 0 or healthy == 0:
        return "P0"
    return "P1" if healthy < registered or healthy < minimum else None


def scrape_targets_up(up: int, total: int) -> str | None:
    """`up{job="security-dashboard-backend"}`: every target down is P0 (complete
    unavailability); some down is P2 (the others still serve: limited impact)."""
    if total == 0 or up == 0:
        return "P0"
    return "P2" if up < total else None


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
