"""Playbook 1.2 quick assessment and 6.2 validation: is the service up and answering?"""

from __future__ import annotations

import time

import allure
import httpx
import pytest

from playbook.config import Profile
from playbook.plugin import attach_json, attach_text
from playbook.probes import http as http_probe
from playbook.severity import CheckFailed

outage = pytest.mark.incident_type("service outage")


def _assert_answer(obs: http_probe.HttpObservation, expect: dict, slo_seconds: float) -> None:
    attach_json(f"{obs.where} ({obs.status})", {"status": obs.status, "elapsed_s": obs.elapsed,
                                                "body": obs.json or obs.snippet(500)})
    problem = obs.problem(expect_status=200, expect_json=expect)
    assert problem is None, problem
    slow = obs.problem(expect_status=200, max_seconds=slo_seconds)
    if slow:
        raise CheckFailed(slow, "P1")  # playbook 1.3: P95 > 2 s is P1, even when it answers


@outage
@pytest.mark.parametrize("endpoint, expect", [
    pytest.param("health", {"status": "ok"}, marks=pytest.mark.severity("P0"), id="health"),
    pytest.param("status", {"status": "operational"}, marks=pytest.mark.severity("P1"),
                 id="status"),
])
def test_endpoint_answers(endpoint: str, expect: dict, profile: Profile, http: httpx.Client,
                          facts: dict) -> None:
    """`curl -f https://.../api/health`: 200, JSON, the expected status, within the p95 SLO."""
    service = profile.service
    obs = http_probe.get(http, service.url(getattr(service.endpoints, endpoint)))
    if isinstance(obs.json, dict) and obs.json.get("version"):
        facts.setdefault("version", obs.json["version"])
    _assert_answer(obs, expect, service.slo.p95_seconds)


@outage
@pytest.mark.severity("P1")
def test_repeated_health(profile: Profile, http: httpx.Client) -> None:
    """Playbook 6.2: the health check passes N times in a row, `interval` seconds apart."""
    service = profile.service
    count, interval = service.repeated_health.count, service.repeated_health.interval
    url = service.url(service.endpoints.health)
    log = []
    for attempt in range(1, count + 1):
        obs = http_probe.get(http, url)
        problem = obs.problem(expect_status=200, expect_json={"status": "ok"})
        log.append(f"{'PASS' if not problem else 'FAIL'} {attempt}/{count} "
                   f"{obs.status or '-'} {obs.elapsed * 1000:.0f} ms {problem or ''}".rstrip())
        with allure.step(log[-1]):
            pass
        if problem:
            attach_text("repeated health", "\n".join(log))
            raise AssertionError(f"health check failed on attempt {attempt}/{count}: {problem}")
        if attempt < count:
            time.sleep(interval)
    attach_text("repeated health", "\n".join(log))


@outage
@pytest.mark.parametrize("path", [
    pytest.param(p, marks=pytest.mark.severity("P2"), id=p)
    for p in ("/api/vulnerabilities", "/api/assets", "/api/alerts")
])
def test_read_endpoint(path: str, profile: Profile, http: httpx.Client) -> None:
    """The dashboard's read endpoints answer 200 with a JSON list of items."""
    if path not in profile.service.read_endpoints:
        pytest.skip(f"{path} is not in service.read_endpoints of profile {profile.name}")
    obs = http_probe.get(http, profile.service.url(path))
    problem = obs.problem(expect_status=200, expect_json={})
    if problem is None and not isinstance(obs.json.get("items"), list):
        problem = f"{obs.where}: expected a JSON object with an `items` list, got {obs.snippet()}"
    assert problem is None, problem


@pytest.mark.severity("P2")
@pytest.mark.incident_type("infrastructure")
def test_tls_certificate(profile: Profile) -> None:
    """The certificate of an https base URL is valid for at least `tls_min_days` more days."""
    service = profile.service
    if not service.base_url.startswith("https://"):
        pytest.skip(f"{service.base_url} is not https: no certificate to check")
    obs = http_probe.tls_certificate(service.base_url, service.timeout)
    assert obs.error is None, obs.error
    assert obs.days_left is not None
    if obs.days_left < 0:
        raise CheckFailed(f"TLS certificate of {obs.host}:{obs.port} expired on "
                          f"{obs.not_after}", "P0")
    assert obs.days_left >= service.tls_min_days, (
        f"TLS certificate of {obs.host}:{obs.port} expires in {obs.days_left:.1f} days "
        f"({obs.not_after}), below the minimum of {service.tls_min_days} days")
