"""Drill: the cache reboots (ElastiCache RebootCacheCluster through the AWS API). The
CacheUnreachable alert (P1) must fire and reach Slack; the service recovers when it is back."""

from __future__ import annotations

import pytest

from playbook.faults.aws import CacheReboot

pytestmark = [pytest.mark.severity("P1"), pytest.mark.incident_type("infrastructure")]


def test_cache_outage(run_drill, timing) -> None:
    run_drill(timing.drill(
        "cache outage", CacheReboot(),
        timing.expect("P1", alert="CacheUnreachable", receiver="slack")))
