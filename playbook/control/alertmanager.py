"""Posting alerts to Alertmanager (API v2), exactly as Prometheus posts a firing rule: the
suite proves the alert path end to end with a synthetic alert (a unique probe_id label, a
short lifetime) and resolves it afterwards (the same alert with endsAt now)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from playbook.probes import api
from playbook.probes.alertmanager import Alertmanager
from playbook.probes.api import ApiObservation

SYNTHETIC_ALERT = "PlaybookSyntheticAlert"


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def new_probe_id() -> str:
    return uuid.uuid4().hex[:16]


def synthetic_alert(probe_id: str, severity: str, lifetime: float = 300.0,
                    resolve: bool = False) -> dict[str, Any]:
    """A Prometheus-shaped alert for POST /api/v2/alerts; `resolve` ends it now."""
    now = dt.datetime.now(dt.UTC)
    ends = now if resolve else now + dt.timedelta(seconds=lifetime)
    return {
        "labels": {"alertname": SYNTHETIC_ALERT, "severity": severity, "probe_id": probe_id,
                   "synthetic": "true", "incident_type": "infrastructure"},
        "annotations": {"summary": f"Synthetic alert {probe_id} from the playbook suite: "
                                   "it proves the alert path; no action needed.",
                        "runbook_url": "https://github.com/candlefish-ai/security-dashboard/"
                                       "blob/main/PLAYBOOK.md#automated-monitoring"},
        # Now, not earlier: Alertmanager skips group_wait for an alert that started more than
        # group_wait ago, and the probe should see the route's real timing.
        "startsAt": _iso(now),
        "endsAt": _iso(ends),
        "generatorURL": "https://github.com/candlefish-ai/security-dashboard#playbook-suite",
    }


def post_alerts(am: Alertmanager, alerts: list[dict[str, Any]]) -> ApiObservation:
    """POST /api/v2/alerts through the run's Alertmanager client; never raises for network
    trouble (the observation's problem() says what went wrong)."""
    return api.request(am.client, "Alertmanager", "alertmanager.bearer_token", "POST",
                       am.url + "/api/v2/alerts", json=alerts)
