"""Drill: the database stops (RDS StopDBInstance through the AWS API). DatabaseUnreachable
(P0) must fire and page; starting the instance again restores service."""

from __future__ import annotations

import pytest

from playbook.faults.aws import RdsStop

pytestmark = [pytest.mark.severity("P0"), pytest.mark.incident_type("data")]


def test_database_outage(run_drill, timing) -> None:
    run_drill(timing.drill(
        "database outage", RdsStop(),
        timing.expect("P0", alert="DatabaseUnreachable", receiver="pagerduty")))
