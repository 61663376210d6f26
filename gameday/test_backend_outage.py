"""Drill: the backend is gone (scaled to zero). The P0 alert must fire and page; scaling back
up (playbook 4.1) must restore service within the P0 response time."""

from __future__ import annotations

import pytest

from playbook.actions.scale import scale_up
from playbook.faults.kube import ScaledToZero

pytestmark = [pytest.mark.severity("P0"), pytest.mark.incident_type("service outage")]


def test_backend_outage(run_drill, timing) -> None:
    fault = ScaledToZero()
    run_drill(timing.drill(
        "backend outage", fault,
        # Scaled to zero, the scrape targets vanish (BackendAbsent) and the load balancer has
        # nothing to route to (LoadBalancerNoTargets); a crash would be BackendDown.
        timing.expect("P0", alert="LoadBalancerNoTargets|BackendAbsent|BackendDown",
                      receiver="pagerduty"),
        mitigate=lambda ctx: scale_up(ctx, fault.previous)))
