"""Drill: the alert path alone. A synthetic P0 alert posted to Alertmanager must reach the
pager (PagerDuty receiver) within the deadline; resolving it afterwards closes the page."""

from __future__ import annotations

import pytest

from playbook.faults.alerting import SyntheticAlert

pytestmark = [pytest.mark.severity("P0"), pytest.mark.incident_type("third-party")]


def test_alert_reaches_the_pager(run_drill, timing) -> None:
    result = run_drill(timing.drill(
        "alert path", SyntheticAlert(severity="P0"),
        timing.expect("P0", receiver="pagerduty", notification_contains="{probe_id}")))
    assert result.metrics["time_to_notify"] is not None
