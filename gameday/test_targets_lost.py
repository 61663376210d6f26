"""Drill: the load balancer loses its targets (DeregisterTargets through the AWS API). Users
get 502 although every pod is fine: LoadBalancerNoTargets (P0) must fire and page;
registering the targets again restores service."""

from __future__ import annotations

import pytest

from playbook.faults.aws import TargetsDeregistered

pytestmark = [pytest.mark.severity("P0"), pytest.mark.incident_type("infrastructure")]


def test_targets_lost(run_drill, timing) -> None:
    run_drill(timing.drill(
        "load balancer targets lost", TargetsDeregistered(fraction=1.0),
        timing.expect("P0", alert="LoadBalancerNoTargets", receiver="pagerduty")))
