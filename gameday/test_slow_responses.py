"""Drill: every response takes 3 s (HTTPChaos delay). The p95 latency alert (P1) must fire
and reach Slack; removing the fault restores the SLO."""

from __future__ import annotations

import pytest

from playbook.faults.kube import HttpChaos

pytestmark = [pytest.mark.severity("P1"), pytest.mark.incident_type("performance")]


def test_slow_responses(run_drill, timing) -> None:
    run_drill(timing.drill(
        "slow responses", HttpChaos(status=None, delay="3s"),
        timing.expect("P1", alert="HighLatencyP95", receiver="slack")))
