"""Security incidents: checks/test_security.py green on a quiet sandbox and red after a
credential-stuffing burst; each bad input (open admin endpoint, missing headers, 401,
throttling, unreachable, malformed, no data) fails with its sentence and severity; the sandbox's
NetworkPolicies (API and front); and the credential-stuffing drill - passing, and failing at
detection without the alert rule and at mitigation without the isolation.

One sandbox for the module (the burst tests leave an hour of suspicious log lines behind); the
tests run in file order: quiet first, then the drills and bursts.
"""

from __future__ import annotations

import importlib
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from playbook import config, drill
from playbook import security as sec
from playbook.actions import isolate
from playbook.faults.base import FaultRefused, Journal
from playbook.faults.context import GameDay
from playbook.faults.security import CredentialStuffing, client_from
from playbook.probes.kube import Kube, LogLine
from playbook.sandbox.kube import netpol
from playbook.sandbox.launch import Sandbox, start_sandbox, stop_sandbox
from tests.conftest import run_suite
from tests.fakes import serve

# The drill's module (gameday/ is not a package: a namespace import), for its variants.
credential_stuffing = importlib.import_module("gameday.test_credential_stuffing")
CHECKS = "checks/test_security.py"
ALERT = "AuthFailureSpike"
JSON = "application/json"


# --- pure parts -----------------------------------------------------------------------------


def _line(t: float, text: str, pod: str = "p") -> LogLine:
    import datetime as dt

    return LogLine(pod, dt.datetime.fromtimestamp(t, dt.UTC), text)


@pytest.mark.unit
def test_burst_detection_is_a_sliding_window() -> None:
    fail = json.dumps({"event": "authentication_failed", "source": "10.0.0.9"})
    lines = [_line(0, "FATAL boom"), *[_line(100 + i * 2, fail) for i in range(25)],
             _line(1000, "unauthorized_request"), _line(1001, "all good")]
    found = sec.suspicious(lines, "(failed|unauthorized|breach|attack)")
    assert len(found) == 26  # grep is case-sensitive: "FATAL" does not match "failed"
    burst = sec.densest(found, 60)
    assert burst.count == 25 and burst.start is not None
    assert sec.densest(found, 10).count == 6  # 100, 102, ... 110
    assert sec.sources(found) == {"10.0.0.9": 25}
    assert sec.densest([], 60).count == 0


@pytest.mark.unit
def test_netpol_semantics() -> None:
    pods = [("http://a", 1, {"app": "b", "version": "stable"}), ("http://c", 2, {"app": "x"})]
    emergency = {"metadata": {"name": "iso"}, "spec": isolate.manifest(
        "iso", "ns", "app=b", ["127.0.0.66/32"])["spec"]}
    compiled = netpol.compile_rules([emergency], pods)["pods"]
    assert set(compiled) == {"http://a"}  # the other pod is not selected: not isolated
    assert not netpol.admits(compiled["http://a"], "127.0.0.66")
    assert netpol.admits(compiled["http://a"], "127.0.0.1")
    assert netpol.admits(compiled["http://a"], "::1")  # the ::/0 peer
    assert netpol.admits(None, "127.0.0.66")
    # Policies add up: one that admits everyone undoes the isolation.
    allow_all = {"metadata": {"name": "all"}, "spec": {"podSelector": {}, "ingress": [{}]}}
    both = netpol.compile_rules([emergency, allow_all], pods)["pods"]
    assert netpol.admits(both["http://a"], "127.0.0.66")
    # Deny-all ingress (no rules), and a rule for another port only.
    deny = {"metadata": {"name": "deny"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
    assert not netpol.admits(netpol.compile_rules([deny], pods)["pods"]["http://c"], "127.0.0.1")
    other_port = {"metadata": {"name": "p"}, "spec": {"podSelector": {}, "ingress": [
        {"ports": [{"port": 5432}]}]}}
    assert not netpol.admits(netpol.compile_rules([other_port], pods)["pods"]["http://c"],
                             "127.0.0.1")
    problems = netpol.validate("Bad_Name", {"podSelector": {}, "ingress": [{"from": [
        {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["192.168.0.0/16"]}}]}]})
    assert [f for f, _ in problems] == ["metadata.name",
                                        "spec.ingress[0].from[0].ipBlock.except[0]"]


@pytest.mark.unit
def test_isolation_manifest_splits_address_families() -> None:
    m = isolate.manifest("iso", "security-dashboard", "app=security-dashboard-backend",
                         ["203.0.113.7", "2001:db8::1/128"])
    peers = m["spec"]["ingress"][0]["from"]
    assert peers == [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["203.0.113.7/32"]}},
                     {"ipBlock": {"cidr": "::/0", "except": ["2001:db8::1/128"]}}]
    assert m["spec"]["podSelector"] == {"matchLabels": {"app": "security-dashboard-backend"}}
    with pytest.raises(ValueError):
        isolate.manifest("iso", "ns", "app!=x", ["10.0.0.1"])


@pytest.mark.unit
@pytest.mark.parametrize("base_url, source, why", [
    ("https://security.candlefish.ai", "127.0.0.66", "runs against loopback only"),
    ("http://127.0.0.1:1", "10.1.2.3", "is not a loopback address"),
])
def test_the_burst_refuses_anything_but_loopback(tmp_path: Path, base_url: str, source: str,
                                                 why: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(f"name: x\nservice: {{base_url: '{base_url}'}}\n")
    ctx = GameDay(config.load(str(path)))
    fault = CredentialStuffing(source=source)
    with pytest.raises(FaultRefused, match=why):
        fault.check_allowed(ctx)
    with pytest.raises(FaultRefused):
        fault.inject(ctx)  # also when rebuilt from a journal
    assert fault.burst is None


# --- against the sandbox --------------------------------------------------------------------


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    box = start_sandbox(tmp_path_factory.mktemp("security-sandbox"))
    try:
        yield box
    finally:
        stop_sandbox(box)


@pytest.fixture
def ctx(sb: Sandbox) -> Iterator[GameDay]:
    c = GameDay(sb.profile)
    yield c
    c.close()


def wait_alert_inactive(c: GameDay, timeout: float = 30) -> None:
    watch = c.watchers()
    deadline = time.monotonic() + timeout
    while watch.alert_state(ALERT)[0] != "inactive":
        assert time.monotonic() < deadline, f"{ALERT} still active after {timeout} s"
        time.sleep(0.5)


@pytest.mark.sandbox
def test_checks_green_on_a_quiet_sandbox(sb: Sandbox, tmp_path: Path) -> None:
    run = run_suite(sb.path, CHECKS, tmp=tmp_path)
    assert run.verdict.get("verdict") == "healthy", run.output
    assert "5 passed, 1 skipped" in run.output, run.output  # HSTS: http, not https


@pytest.mark.sandbox
def test_networkpolicies_in_the_sandbox(sb: Sandbox, ctx: GameDay) -> None:
    """The Kubernetes API stores them (as the kubernetes client speaks it); the front refuses
    the isolated source with 403 and admits the others; policies add up; X-Forwarded-For from
    a client is not trusted."""
    kube = ctx.kube
    ns = sb.profile.kubernetes.namespace  # type: ignore[union-attr]
    api = k8s.NetworkingV1Api(kube.api())
    login_url = sb.profile.service.url("/api/auth/login")
    creds = {"username": "nobody", "password": "x"}

    def status_from(source: str | None, expect: int | None = None) -> int:
        """The login's status from `source`; with `expect`, polled (the front re-reads the
        policies every 0.1 s, a CNI takes its time too) until it is that, for 3 s at most."""
        deadline = time.monotonic() + 3
        while True:
            with client_from(source, 2.0) as c:
                status = c.post(login_url, json=creds).status_code
            if expect is None or status == expect or time.monotonic() > deadline:
                return status
            time.sleep(0.05)

    did = isolate.apply_emergency_policy(kube, ["127.0.0.66/32"], "iso-test")
    assert "except 127.0.0.66/32" in did and "WARNING" not in did
    got = api.read_namespaced_network_policy("iso-test", ns)
    assert got.spec.ingress[0]._from[0].ip_block._except == ["127.0.0.66/32"]
    assert [p.metadata.name for p in api.list_namespaced_network_policy(ns).items] == [
        "iso-test"]
    assert status_from("127.0.0.66", 403) == 403
    with client_from("127.0.0.66", 2.0) as c:
        body = c.post(login_url, json=creds).json()
    assert body == {"error": "forbidden by NetworkPolicy", "source": "127.0.0.66",
                    "policies": ["iso-test"]}
    assert status_from(None) == 401  # 127.0.0.1 still reaches the login (wrong password)
    # Applying again replaces it; an existing allow-all policy is reported, and wins.
    api.create_namespaced_network_policy(ns, k8s.V1NetworkPolicy.from_dict({
        "metadata": {"name": "allow-all"}, "spec": {"podSelector": {}, "ingress": [{}]}}))
    did = isolate.apply_emergency_policy(kube, ["127.0.0.66/32"], "iso-test")
    assert "WARNING: allow-all still admit(s) these sources" in did
    assert status_from("127.0.0.66", 401) == 401
    api.delete_namespaced_network_policy("allow-all", ns)
    assert status_from("127.0.0.66", 403) == 403
    # API errors as the real server answers them.
    with pytest.raises(ApiException) as e:
        api.create_namespaced_network_policy(ns, k8s.V1NetworkPolicy.from_dict(
            isolate.manifest("iso-test", ns, "app=x", ["10.0.0.1"])))
    assert e.value.status == 409
    bad = isolate.manifest("bad", ns, "app=x", ["10.0.0.1"])
    bad["spec"]["ingress"][0]["from"][0]["ipBlock"]["except"] = ["192.168.0.0/16", "10.0.0.0/8"]
    bad["spec"]["ingress"][0]["from"][0]["ipBlock"]["cidr"] = "10.0.0.0/16"
    with pytest.raises(ApiException) as e:
        api.create_namespaced_network_policy(ns, k8s.V1NetworkPolicy.from_dict(bad))
    assert e.value.status == 422 and "must be a strict subset of 10.0.0.0/16" in e.value.body
    assert isolate.remove_emergency_policy(kube, "iso-test").startswith("removed")
    assert isolate.remove_emergency_policy(kube, "iso-test").endswith("already gone")
    assert status_from("127.0.0.66", 401) == 401
    # The source logged is the connecting address, whatever the client claims.
    with httpx.Client(timeout=2.0) as c:
        c.post(login_url, json={"username": "spoof-check", "password": "x"},
               headers={"x-forwarded-for": "6.6.6.6"})
    logs = Kube(sb.profile.kubernetes).pod_logs(60)  # type: ignore[arg-type]
    events = [sec.event(line) for line in logs.lines]
    spoof = [ev for ev in events if ev and ev.get("user") == "spoof-check"]
    assert spoof and spoof[0]["source"] == "127.0.0.1", spoof


@pytest.mark.sandbox
def test_gameday_revert_removes_a_left_over_isolation(sb: Sandbox, ctx: GameDay,
                                                      tmp_path: Path) -> None:
    """After a SIGKILL mid-drill, `playbook gameday revert` replays the journal: the burst died
    with the process, and the fault's revert removes the emergency policy it left."""
    fault = CredentialStuffing(isolation_policy="iso-killed")
    isolate.apply_emergency_policy(ctx.kube, ["127.0.0.66/32"], "iso-killed")
    journal = Journal.open(tmp_path / "journal.json")
    journal.mark(journal.add(fault, sb.profile), "injected")
    assert GameDay.revert_journal(sb.profile, path=tmp_path / "journal.json") == 0
    assert Journal.open(tmp_path / "journal.json").pending() == []
    api = k8s.NetworkingV1Api(ctx.kube.api())
    assert api.list_namespaced_network_policy("security-dashboard").items == []


@pytest.mark.sandbox
def test_the_drill_passes(sb: Sandbox, tmp_path: Path) -> None:
    run = run_suite(sb.path, "gameday/test_credential_stuffing.py", tmp=tmp_path)
    assert run.verdict.get("verdict") == "healthy", run.output
    assert "1 passed" in run.output and "skipped" not in run.output, run.output
    card = json.loads(next((tmp_path / "reports" / "gameday").glob("*/scorecard.json"))
                      .read_text())
    result = card["drills"][0]
    stages = [e["stage"] for e in result["timeline"]]
    assert stages == ["steady state", "injected", "alert pending", "alert firing",
                      "notification delivered", "mitigation applied", "recovered", "reverted"]
    mitigation = next(e["detail"] for e in result["timeline"]
                      if e["stage"] == "mitigation applied")
    assert "the attack from 127.0.0.66 is refused (HTTP 403" in mitigation
    assert "analyst still logs in" in mitigation
    assert result["metrics"]["time_to_detect"] < 15, result["metrics"]
    journal = json.loads((tmp_path / "reports" / "gameday" / "journal.json").read_text())
    assert [e["status"] for e in journal["entries"]] == ["reverted"]
    # Reverted: no policy left, the attacker's address reaches the service again.
    assert json.loads((sb.dir / "netpol.json").read_text()) == {"pods": {}}


def _run_variant(sb: Sandbox, c: GameDay, tmp: Path, **variant: Any) -> drill.Result:
    assert sb.profile.gameday is not None
    timing = drill.Timing(sb.profile.gameday)
    d = credential_stuffing.build(sb.profile, timing, isolate=variant.pop("isolate", True))
    for key, value in variant.items():
        setattr(d.expect, key, value)
    journal = Journal.open(tmp / "journal.json")
    result = drill.run(d, c, journal, c.watchers())
    assert journal.pending() == []
    assert d.fault.burst is not None and not d.fault.burst.running  # type: ignore[attr-defined]
    return result


@pytest.mark.sandbox
def test_without_isolation_the_drill_fails_at_mitigation(sb: Sandbox, ctx: GameDay,
                                                         tmp_path: Path) -> None:
    wait_alert_inactive(ctx)
    result = _run_variant(sb, ctx, tmp_path, isolate=False)
    assert not result.passed and result.failed_stage == "mitigation", result.message
    assert result.message.startswith(
        "mitigation: the runbook action failed: NotIsolated: login attempts from 127.0.0.66 "
        f"still reach POST {sb.profile.service.url('/api/auth/login')} (HTTP 401: "), \
        result.message
    assert "after the mitigation (no isolation applied) - the attacking source is not " \
           "isolated" in result.message
    assert result.timeline.at("notification delivered") is not None  # it got that far


@pytest.mark.sandbox
def test_checks_red_after_a_burst(sb: Sandbox, ctx: GameDay, tmp_path: Path) -> None:
    fault = CredentialStuffing(max_seconds=12, max_attempts=200)
    fault.inject(ctx)
    try:
        query = 'sum(rate(security_dashboard_auth_failures_total[10s]))'
        deadline = time.monotonic() + 10
        while not [s for s in ctx.prometheus.query(query).samples if s.value > 2]:
            assert time.monotonic() < deadline, "the burst never showed in Prometheus"
            time.sleep(0.3)
        run = run_suite(sb.path, CHECKS, tmp=tmp_path)
    finally:
        fault.revert(ctx)
    assert run.verdict["verdict"] == "P0", run.output
    rate = run.failure("test_failed_login_rate")
    assert rate is not None and rate["severity"] == "P0", run.output
    assert "failed logins per second across the backend over the last 10s, above the " \
           "threshold of 1/s - credential stuffing or brute force" in rate["message"]
    assert "query sum(rate(security_dashboard_auth_failures_total{job=" \
           "\"security-dashboard-backend\"}[10s]))" in rate["message"]
    logs = run.failure("test_no_burst_in_security_logs")
    assert logs is not None and logs["severity"] == "P0", run.output
    assert "log lines matching grep -E '(failed|unauthorized|breach|attack)' within 60 s" \
           in logs["message"]
    assert "top sources 127.0.0.66 (" in logs["message"]
    # The evidence: security-events.log is attached, with the source addresses.
    attached = [p.read_text() for p in (tmp_path / "reports" / "allure-results").glob(
        "*-attachment.txt")]
    assert any('"source": "127.0.0.66"' in a and "authentication_failed" in a
               for a in attached)


@pytest.mark.sandbox
def test_without_the_alert_rule_the_drill_fails_at_detection(sb: Sandbox, ctx: GameDay,
                                                             tmp_path: Path) -> None:
    """The sandbox's Prometheus loads <state_dir>/monitoring/rules: without the rendered
    security rule (and a reload) nothing detects the attack."""
    rules = sb.dir / "monitoring" / "rules" / "security.yml"
    saved = tmp_path / "security.yml"
    shutil.copy(rules, saved)
    prom = ctx.prometheus
    try:
        rules.unlink()
        _reload_until(prom, present=False)
        result = _run_variant(sb, ctx, tmp_path, detect_within=8.0)
        assert not result.passed and result.failed_stage == "detection", result.message
        assert result.message == f"detection: {ALERT} did not fire within 8 s"
    finally:
        shutil.copy(saved, rules)
        _reload_until(prom, present=True)


def _reload_until(prom: Any, present: bool, timeout: float = 10) -> None:
    httpx.post(prom.url + "/-/reload", timeout=5).raise_for_status()
    deadline = time.monotonic() + timeout
    while True:
        groups = (prom.rules().body or {}).get("groups", [])
        names = {r.get("name") for g in groups for r in g.get("rules", [])}
        if (ALERT in names) == present:
            return
        assert time.monotonic() < deadline, f"{ALERT} still {'absent' if present else 'loaded'}"
        time.sleep(0.2)


# --- bad inputs (fakes) -----------------------------------------------------------------------


def _kubeconfig(tmp: Path, server: str) -> Path:
    path = tmp / "kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": server}}],
        "users": [{"name": "fake", "user": {"token": "fake-token"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}]}))
    return path


def _fake_profile(tmp: Path, service: str, prometheus: str, kube: str) -> Path:
    path = tmp / "fake.yaml"
    path.write_text(
        f"name: fake\nservice: {{base_url: '{service}', timeout: 1.0}}\n"
        f"prometheus: {{url: '{prometheus}', timeout: 1.0}}\n"
        f"kubernetes: {{kubeconfig: '{_kubeconfig(tmp, kube)}', timeout: 1.0}}\n"
        "security: {}\nrun: {budget_seconds: 60}\n")
    return path


STATUS_401 = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                         "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
STATUS_403 = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                         "message": "pods is forbidden: User \"x\" cannot list resource",
                         "reason": "Forbidden", "code": 403})
PODS = "/api/v1/namespaces/security-dashboard/pods"
EMPTY_VECTOR = json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}})


def _closed_port() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.sandbox
def test_open_admin_endpoint_missing_headers_and_refused_credentials(tmp_path: Path) -> None:
    service = {"/api/admin/users": (200, JSON, json.dumps({"items": [{"username": "admin"}]}), 0),
               "/api/admin/audit": (401, JSON, "{}", 0),
               "/api/health": (200, JSON, "{}", 0), "/api/status": (200, JSON, "{}", 0)}
    with serve(service) as svc, serve({}, default=(401, JSON, "{}", 0)) as prom, \
            serve({PODS: (401, JSON, STATUS_401, 0)}) as kube:
        run = run_suite(_fake_profile(tmp_path, svc, prom, kube), CHECKS, tmp=tmp_path)
    assert run.verdict["verdict"] == "P0", run.output
    admin = run.failure("test_admin_endpoints_demand_a_token")
    assert admin is not None and admin["severity"] == "P0"
    assert admin["message"].startswith(
        f"admin endpoint GET {svc}/api/admin/users answered 200 OK to a request without a "
        "token: it is open to anyone - a security incident"), admin
    assert admin["message"].endswith("(+1 more)")  # the forged token got in too
    nosniff = run.failure("test_security_headers[nosniff]")
    assert nosniff is not None and nosniff["severity"] == "P3"
    assert nosniff["message"].startswith(f"GET {svc}/api/health sends no X-Content-Type-"
                                         "Options, expected nosniff")
    leak = run.failure("test_security_headers[no-version-leak]")
    assert leak is not None and leak["severity"] == "P3"
    assert f"GET {svc}/api/health sends Server: BaseHTTP/" in leak["message"]
    rate = run.failure("test_failed_login_rate")
    assert rate is not None and rate["severity"] == "P1"
    assert "HTTP 401 Unauthorized - the request was refused; check prometheus.bearer_token" \
        in rate["message"]
    logs = run.failure("test_no_burst_in_security_logs")
    assert logs is not None and logs["severity"] == "P1"
    assert logs["message"].startswith(f"cannot read the backend's logs: Kubernetes API at "
                                      f"{kube} refused the credentials (401 Unauthorized)")


@pytest.mark.sandbox
def test_throttled_and_unreachable(tmp_path: Path) -> None:
    dead = _closed_port()
    with serve({}, default=(429, JSON, "{}", 0)) as prom:
        run = run_suite(_fake_profile(tmp_path, dead, prom, dead), CHECKS, tmp=tmp_path)
    assert run.verdict["verdict"] == "P1", run.output
    rate = run.failure("test_failed_login_rate")
    assert rate is not None and rate["severity"] == "P1"
    assert "HTTP 429 Too Many Requests - throttled" in rate["message"]
    logs = run.failure("test_no_burst_in_security_logs")
    assert logs is not None and logs["severity"] == "P1"
    assert f"Kubernetes API at {dead} is unreachable: connection refused" in logs["message"]
    admin = run.failure("test_admin_endpoints_demand_a_token")
    assert admin is not None and admin["severity"] == "P1"
    assert admin["message"].startswith(
        f"GET {dead}/api/admin/users (without a token): connection refused")
    headers = run.failure("test_security_headers[nosniff]")
    assert headers is not None and "connection refused" in headers["message"]


@pytest.mark.sandbox
@pytest.mark.parametrize("prom_route, expected", [
    pytest.param((200, "text/html", "<html><body>Sign in</body></html>", 0),
                 "answered an HTML page (HTTP 200, text/html) instead of the API's JSON",
                 id="malformed"),
    pytest.param((200, JSON, EMPTY_VECTOR, 0), "no data for sum(rate(security_dashboard_auth_"
                 "failures_total{job=\"security-dashboard-backend\"}[5m]))", id="no-data"),
])
def test_malformed_no_data_forbidden_and_odd_status(tmp_path: Path, prom_route: tuple,
                                                    expected: str) -> None:
    service = {"/api/admin/users": (500, JSON, "{}", 0), "/api/admin/audit": (403, JSON, "{}", 0),
               "/api/health": (200, JSON, "{}", 0), "/api/status": (200, JSON, "{}", 0)}
    headers = {"X-Content-Type-Options": "nosniff", "X-Powered-By": "PHP/8.2.1"}
    with serve(service, headers=headers) as svc, serve({}, default=prom_route) as prom, \
            serve({PODS: (403, JSON, STATUS_403, 0)}) as kube:
        run = run_suite(_fake_profile(tmp_path, svc, prom, kube), CHECKS, tmp=tmp_path)
    rate = run.failure("test_failed_login_rate")
    assert rate is not None and rate["severity"] == "P1" and expected in rate["message"], rate
    logs = run.failure("test_no_burst_in_security_logs")
    assert logs is not None and logs["severity"] == "P1"
    assert "forbids the suite to list pods app=security-dashboard-backend" in logs["message"]
    admin = run.failure("test_admin_endpoints_demand_a_token")
    assert admin is not None and admin["severity"] == "P2"
    assert admin["message"].startswith(f"admin endpoint GET {svc}/api/admin/users answered 500 "
                                       "Internal Server Error to a request without a token, "
                                       "expected 401 or 403")
    assert run.failure("test_security_headers[nosniff]") is None
    leak = run.failure("test_security_headers[no-version-leak]")
    assert leak is not None  # BaseHTTP's Server header comes first, X-Powered-By would too
    assert run.verdict["verdict"] == "P1", run.output
