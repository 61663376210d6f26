"""Playbook "Security Incidents (P0)": failed logins, the backend's security log lines, admin
endpoints that must demand a token, and the public endpoints' security headers.

Severities: a burst of failed logins (PromQL rate above security.failed_login_rate) or of
suspicious log lines, and an admin endpoint that answers without a token, are security
incidents: P0. A system the check cannot ask (Prometheus, the Kubernetes API, the service
unreachable or refusing the suite) is P1: the suite is blind, not proof of an attack. Header
hygiene is P2 (no HSTS on https) or P3 (no nosniff, a server version in the headers).
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from playbook import queries
from playbook import security as sec
from playbook import severity as sev
from playbook.config import Profile, Security
from playbook.plugin import attach_json, attach_text
from playbook.probes import http as http_probe
from playbook.severity import CheckFailed

pytestmark = [pytest.mark.requires("security"), pytest.mark.incident_type("security"),
              pytest.mark.playbook_section("Security Incidents (P0)")]
VERSION = re.compile(r"\d+\.\d+")  # "nginx/1.25.3", "Python/3.11.9", "PHP/8.2"
FORGED_TOKEN = "Bearer forged.0000000000000000"  # what an attacker without credentials sends


def _security(profile: Profile) -> Security:
    assert profile.security is not None  # the requires marker skipped the module otherwise
    return profile.security


def failed_login_query(profile: Profile) -> str:
    s = _security(profile)
    job = profile.prometheus.job if profile.prometheus else "security-dashboard-backend"
    return queries.failed_logins(job, s.rate_window)


@pytest.mark.severity("P0")
def test_failed_login_rate(profile: Profile, prometheus: Any) -> None:
    """Failed logins per second across the backend stay below security.failed_login_rate; a
    spike is credential stuffing or brute force (the AuthFailureSpike alert's condition)."""
    s = _security(profile)
    query = failed_login_query(profile)
    obs = prometheus.query(query)
    attach_json(f"query: {query}", {"url": obs.api.url, "status": obs.api.status,
                                    "error": obs.error,
                                    "samples": [[x.labels, x.value] for x in obs.samples]})
    if obs.error or obs.no_data:
        # Blind, not attacked: the failed-login signal cannot be read.
        raise CheckFailed(obs.problem() or "", sev.unobserved("P0"))
    rate = obs.samples[0].value
    if rate > s.failed_login_rate:
        raise CheckFailed(
            f"{rate:.1f} failed logins per second across the backend over the last "
            f"{s.rate_window}, above the threshold of {s.failed_login_rate:g}/s - credential "
            "stuffing or brute force: a security incident; collect the security logs and "
            f"isolate the sources - query {query} at {prometheus.url}", "P0")


@pytest.mark.severity("P0")
def test_no_burst_in_security_logs(profile: Profile, kube: Any) -> None:
    """`kubectl logs -l app=... --since=1h | grep -E '(failed|unauthorized|breach|attack)'`:
    no burst of such lines (security.burst_lines within security.burst_seconds). The recent
    ones are attached as security-events.log, their source addresses as security-sources."""
    s = _security(profile)
    since = int(s.log_window_hours * 3600)
    obs = kube.pod_logs(since, tail_lines=s.log_tail_lines)
    attach_json("pods read", {"where": obs.where, "pods": obs.pods, "errors": obs.pod_errors,
                              "lines": len(obs.lines)})
    blind = sev.unobserved("P0")
    if obs.error:
        raise CheckFailed(f"cannot read the backend's logs: {obs.error}", blind)
    if obs.pod_errors and len(obs.pod_errors) == len(obs.pods):
        raise CheckFailed(f"cannot read the log of any backend pod: {obs.pod_errors[0]}", blind)
    if not obs.pods:
        raise CheckFailed(f"no pod matches {obs.where}: no log to read", blind)
    found = sec.suspicious(obs.lines, s.log_pattern)
    attach_text("security-events.log", sec.render(found[-s.attach_lines:]))
    by_source = sec.sources(found)
    attach_json("security-sources", dict(by_source.most_common()))
    burst = sec.densest(found, s.burst_seconds)
    if burst.count >= s.burst_lines:
        failed = sum(by_source.values())
        top = ", ".join(f"{ip} ({n})" for ip, n in by_source.most_common(3)) or "unknown"
        when = burst.start.strftime("%H:%M:%S") if burst.start else "?"
        raise CheckFailed(
            f"{burst.count} log lines matching grep -E '{s.log_pattern}' within "
            f"{s.burst_seconds:g} s (from {when} UTC) in the backend's logs of the last "
            f"{s.log_window_hours:g} h, at or above the burst threshold of {s.burst_lines}; "
            f"{failed} authentication_failed events, top sources {top} - a security incident: "
            f"isolate the sources ({obs.where})", "P0")
    if obs.pod_errors:
        raise CheckFailed(f"{len(obs.pod_errors)} of {len(obs.pods)} backend pods' logs could "
                          f"not be read (no burst in the others): {obs.pod_errors[0]}", blind)


def _admin_verdict(obs: http_probe.HttpObservation, sent: str) -> tuple[str, str] | None:
    """(severity, sentence) when an admin endpoint did not refuse a request without a valid
    token, else None."""
    if obs.error:
        return (sev.unobserved("P0"),
                f"{obs.where} ({sent}): {obs.error} - cannot verify it demands a token")
    assert obs.status is not None
    if obs.status in (401, 403):
        return None
    if 200 <= obs.status < 300:
        return "P0", (f"admin endpoint {obs.where} answered {obs.status} {obs.reason} to a "
                      f"request {sent}: it is open to anyone - a security incident; take it "
                      f"offline or restore its authentication - body: {obs.snippet(80)}")
    return "P2", (f"admin endpoint {obs.where} answered {obs.status} {obs.reason} to a request "
                  f"{sent}, expected 401 or 403 - body: {obs.snippet(80)}")


@pytest.mark.severity("P0")
def test_admin_endpoints_demand_a_token(profile: Profile, http: httpx.Client) -> None:
    """Every admin endpoint (security.admin_endpoints) answers 401/403 without a token and with
    a forged one. 2xx is P0 (open to anyone); another status P2; unreachable P1."""
    s = _security(profile)
    if not s.admin_endpoints:
        pytest.skip(f"profile {profile.name} lists no security.admin_endpoints")
    findings: list[tuple[str, str]] = []
    seen = []
    for path in s.admin_endpoints:
        url = profile.service.url(path)
        for sent, headers in (("without a token", None),
                              ("with a forged token", {"authorization": FORGED_TOKEN})):
            obs = http_probe.get(http, url, headers=headers)
            seen.append({"url": url, "sent": sent, "status": obs.status, "error": obs.error})
            verdict = _admin_verdict(obs, sent)
            if verdict:
                findings.append(verdict)
    attach_json("admin endpoints", seen)
    if findings:
        findings.sort(key=lambda f: sev.rank(f[0]))
        level, sentence = findings[0]
        more = f" (+{len(findings) - 1} more)" if len(findings) > 1 else ""
        raise CheckFailed(sentence + more, level)


# --- security headers ----------------------------------------------------------------------------


def _hsts(obs: http_probe.HttpObservation, base_url: str) -> str | None:
    value = (obs.headers or {}).get("strict-transport-security", "")
    m = re.search(r"max-age=(\d+)", value)
    if not m or int(m.group(1)) <= 0:
        seen = f"Strict-Transport-Security: {value}" if value else "no Strict-Transport-Security"
        return (f"{obs.where} sends {seen} although {base_url} is https - browsers may be "
                "downgraded to http; send one with a max-age (e.g. 15552000, 180 days)")
    return None


def _nosniff(obs: http_probe.HttpObservation, _base_url: str) -> str | None:
    value = (obs.headers or {}).get("x-content-type-options", "")
    if value.strip().lower() != "nosniff":
        seen = f"X-Content-Type-Options: {value}" if value else "no X-Content-Type-Options"
        return (f"{obs.where} sends {seen}, expected nosniff - browsers may guess the content "
                "type of a response")
    return None


def _version_leak(obs: http_probe.HttpObservation, _base_url: str) -> str | None:
    for name in ("server", "x-powered-by"):
        value = (obs.headers or {}).get(name, "")
        if VERSION.search(value):
            return (f"{obs.where} sends {name.title()}: {value} - the version tells an "
                    "attacker which exploits apply; hide it (e.g. nginx server_tokens off, "
                    "uvicorn --no-server-header)")
    return None


@pytest.fixture(scope="module")
def public_answers(profile: Profile, http: httpx.Client) -> list[http_probe.HttpObservation]:
    """One GET of each public endpoint (security.public_endpoints), shared by the header
    checks."""
    answers = [http_probe.get(http, profile.service.url(p))
               for p in _security(profile).public_endpoints]
    attach_json("public endpoint headers", [{"url": o.url, "status": o.status,
                                             "error": o.error, "headers": o.headers}
                                            for o in answers])
    return answers


@pytest.mark.parametrize("rule", [
    pytest.param(_hsts, marks=pytest.mark.severity("P2"), id="hsts"),
    pytest.param(_nosniff, marks=pytest.mark.severity("P3"), id="nosniff"),
    pytest.param(_version_leak, marks=pytest.mark.severity("P3"), id="no-version-leak"),
])
def test_security_headers(rule: Any, profile: Profile,
                          public_answers: list[http_probe.HttpObservation]) -> None:
    """The public endpoints send HSTS (on https only: over http it means nothing),
    X-Content-Type-Options: nosniff, and no version in Server / X-Powered-By."""
    base = profile.service.base_url
    if rule is _hsts and not base.startswith("https://"):
        pytest.skip(f"{base} is not https: HSTS only applies to https")
    if not public_answers:
        pytest.skip(f"profile {profile.name} lists no security.public_endpoints")
    unreachable = [o for o in public_answers if o.error]
    assert not unreachable, f"{unreachable[0].where}: {unreachable[0].error}"
    problems = [p for p in (rule(o, base) for o in public_answers) if p]
    assert not problems, problems[0] + (f" (+{len(problems) - 1} more endpoints)"
                                        if len(problems) > 1 else "")
