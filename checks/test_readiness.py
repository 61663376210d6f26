"""Playbook 1.2: `curl -f .../api/ready` - can the service reach its database and cache?"""

from __future__ import annotations

import httpx
import pytest

from playbook.config import Profile
from playbook.plugin import attach_json
from playbook.probes import http as http_probe


@pytest.mark.severity("P1")  # playbook 1.3: database connectivity issues are P1
@pytest.mark.incident_type("service outage")
def test_ready(profile: Profile, http: httpx.Client) -> None:
    service = profile.service
    obs = http_probe.get(http, service.url(service.endpoints.ready))
    attach_json(f"{obs.where} ({obs.status})", obs.json or obs.snippet(500))
    body = obs.json if isinstance(obs.json, dict) else {}
    if obs.status == 503 and body.get("failed"):
        details = "; ".join(f"{name}: {body.get('checks', {}).get(name, 'failed')}"
                            for name in body["failed"])
        raise AssertionError(f"{obs.where}: not ready (503) - failed dependency: "
                             f"{', '.join(body['failed'])} ({details})")
    problem = obs.problem(expect_status=200, expect_json={"status": "ok"},
                          max_seconds=service.slo.p95_seconds)
    assert problem is None, problem
