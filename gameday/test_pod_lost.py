"""Drill: one pod is lost. The Deployment heals itself; no page may go out (a false alarm
fails the drill), and the service stays up throughout."""

from __future__ import annotations

import pytest

from playbook.faults.kube import PodsDeleted

pytestmark = [pytest.mark.severity("P2"), pytest.mark.incident_type("infrastructure")]


def test_one_pod_lost(run_drill, timing) -> None:
    run_drill(timing.drill(
        "one pod lost", PodsDeleted(count=1),
        timing.expect("P2", no_page_for=timing(timing.g.no_page_window))))
