"""The playbook's P0-P3 rules (playbook/severity.py), one by one."""

from __future__ import annotations

import pytest

from playbook import severity as sev
from playbook.config import Slo

pytestmark = pytest.mark.unit


def test_order_and_caps() -> None:
    assert sev.worst(["P2", "P0", "P3", "nonsense"]) == "P0" and sev.worst([]) is None
    assert sev.least("P0", "P1") == "P1" and sev.least("P3", "P1") == "P3"
    assert sorted(["P3", "P0", "P2"], key=sev.rank) == ["P0", "P2", "P3"]
    with pytest.raises(ValueError, match="severity must be one of"):
        sev.CheckFailed("x", "P4")


@pytest.mark.parametrize("check_level, expected", [("P0", "P1"), ("P1", "P1"), ("P2", "P2"),
                                                   ("P3", "P3")])
def test_an_unobserved_system_is_p1_or_the_checks_lower_level(check_level: str,
                                                               expected: str) -> None:
    assert sev.unobserved(check_level) == expected


@pytest.mark.parametrize("rule", [sev.pods_ready, sev.replicas_available, sev.nodes_ready])
@pytest.mark.parametrize("ok, total, expected", [
    (0, 0, "P0"),  # no pod / a Deployment scaled to 0 of 0 / no node: nothing serves
    (0, 3, "P0"), (2, 3, "P1"), (3, 3, None)])
def test_ready_of_total(rule: object, ok: int, total: int, expected: str | None) -> None:
    assert rule(ok, total) == expected  # type: ignore[operator]


@pytest.mark.parametrize("ok, total, expected", [(0, 0, "P1"), (0, 2, "P1"), (1, 2, "P2"),
                                                 (2, 2, None)])
def test_instances(ok: int, total: int, expected: str | None) -> None:
    assert sev.instances_ok(ok, total) == expected


@pytest.mark.parametrize("healthy, registered, minimum, expected", [
    (0, 0, 1, "P0"), (0, 2, 1, "P0"), (1, 2, 1, "P1"), (2, 2, 3, "P1"), (2, 2, 2, None)])
def test_load_balancer_targets(healthy: int, registered: int, minimum: int,
                               expected: str | None) -> None:
    assert sev.targets_healthy(healthy, registered, minimum) == expected


@pytest.mark.parametrize("up, total, expected", [(0, 2, "P0"), (1, 2, "P2"), (2, 2, None),
                                                 (0, 0, "P0")])
def test_scrape_targets(up: int, total: int, expected: str | None) -> None:
    assert sev.scrape_targets_up(up, total) == expected


@pytest.mark.parametrize("rate, expected", [(0.0, None), (0.10, None), (0.11, "P1"),
                                            (0.50, "P1"), (0.51, "P0")])
def test_error_rate(rate: float, expected: str | None) -> None:
    assert sev.error_rate(rate, Slo()) == expected


def test_latency() -> None:
    assert sev.latency(2.0, Slo()) is None
    assert sev.latency(2.01, Slo()) == "P1"
    assert sev.latency(0.6, Slo(p95_seconds=0.5)) == "P1"
