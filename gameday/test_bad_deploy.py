"""Drill: a bad deploy (an image that answers 5xx). The error-rate alert must fire and page;
the emergency rollback (playbook 4.2: abort, back to the stable revision) must restore
service."""

from __future__ import annotations

import pytest

from playbook.actions.rollback import emergency_rollback
from playbook.faults.kube import BadDeploy

pytestmark = [pytest.mark.severity("P0"), pytest.mark.incident_type("service outage")]


def test_bad_deploy_then_rollback(run_drill, timing) -> None:
    run_drill(timing.drill(
        "bad deploy, rollback", BadDeploy(tag="bad-5xx"),
        timing.expect("P0", alert="HighErrorRate", receiver="pagerduty"),
        mitigate=emergency_rollback))
