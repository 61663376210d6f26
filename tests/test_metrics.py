"""checks/test_metrics.py and checks/test_alerting.py against a real sandbox (Prometheus,
Alertmanager, sink): green when healthy; red with the right sentence and severity when the
backend answers 5xx (P1, P0) or is slow, when replicas stop answering, when a query has no data,
when Prometheus or Alertmanager is down, when a rule is missing or broken; and the matching
alert fires and reaches the sink.

One sandbox for the module (Prometheus's first scrape takes ~6 s); every test undoes what it
did (chaos keys restored, processes resumed, rule files removed)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from playbook import queries
from playbook.clients import Clients
from playbook.probes.alertmanager import Alertmanager, receiver_kind, wait_for_notification
from playbook.probes.prometheus import Prometheus, wait_for_alert
from playbook.sandbox.launch import Sandbox, start_sandbox, stop_sandbox
from playbook.sandbox.state import CHAOS_FILE, read_json, write_json
from tests.conftest import run_suite

pytestmark = pytest.mark.sandbox

METRICS = "checks/test_metrics.py"
ALERTING = "checks/test_alerting.py"


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    sandbox = start_sandbox(tmp_path_factory.mktemp("monitoring"))
    try:
        yield sandbox
    finally:
        stop_sandbox(sandbox)


@pytest.fixture(scope="module")
def clients(sb: Sandbox) -> Iterator[Clients]:
    with Clients(sb.profile) as built:
        yield built


@pytest.fixture(scope="module")
def prom(clients: Clients) -> Prometheus:
    return clients.prometheus


@pytest.fixture(scope="module")
def am(clients: Clients) -> Alertmanager:
    return clients.alertmanager


@contextlib.contextmanager
def chaos(sb: Sandbox, **keys: Any) -> Iterator[None]:
    """Set chaos.json keys (as the Chaos Mesh stand-in does), restore exactly those after."""
    path = sb.dir / CHAOS_FILE
    before = read_json(path) or {}
    write_json(path, {**before, **keys})
    try:
        yield
    finally:
        now = read_json(path) or {}
        for key in keys:
            if key in before:
                now[key] = before[key]
            else:
                now.pop(key, None)
        write_json(path, now)


@contextlib.contextmanager
def frozen(pids: list[int]) -> Iterator[None]:
    """SIGSTOP replica processes (the supervisor would restart dead ones at once): their
    scrapes time out, so up == 0. Always resumed."""
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def variant(sb: Sandbox, tmp: Path, **sections: dict[str, Any]) -> Path:
    """The sandbox's profile with some fields of some sections changed."""
    raw = yaml.safe_load(sb.path.read_text())
    for name, values in sections.items():
        raw[name] = {**raw[name], **values}
    path = tmp / "variant.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def wait_value(prom: Prometheus, query: str, pred: Any, timeout: float) -> float | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        obs = prom.query(query)
        if obs.samples and pred(obs.samples[0].value):
            return obs.samples[0].value
        time.sleep(0.25)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def messages(run: Any) -> dict[str, dict[str, str]]:
    return {f["test"].split("::")[-1]: f for f in run.verdict.get("failures", [])}


def test_healthy_sandbox_is_green(sb: Sandbox, am: Alertmanager, tmp_path: Path) -> None:
    since = time.time()
    run = run_suite(sb.path, METRICS, ALERTING, tmp=tmp_path)
    assert run.verdict == {"verdict": "healthy", "failures": []}, run.output
    assert "11 passed" in run.output, run.output
    # The end-to-end check really went through Alertmanager to the PagerDuty-shaped receiver.
    got = am.received(contains="PlaybookSyntheticAlert", since=since)
    pages = [n for n in got.body["received"] if n["path"].startswith("/pagerduty/")]
    assert pages and receiver_kind(pages[0]["body"]) == "pagerduty", got.body
    assert pages[0]["body"]["event_action"] == "trigger"


def test_prometheus_and_alertmanager_down(sb: Sandbox, tmp_path: Path) -> None:
    dead = free_port()
    path = variant(sb, tmp_path, prometheus={"url": f"http://127.0.0.1:{dead}"},
                   alertmanager={"url": f"http://127.0.0.1:{dead}"})
    run = run_suite(path, METRICS, ALERTING, tmp=tmp_path)
    fails = messages(run)
    up = fails["test_backend_up"]
    assert up["severity"] == "P1"  # monitoring blind, not the service down
    assert up["message"].startswith(
        f'Prometheus query up{{job="security-dashboard-backend"}} failed: Prometheus GET '
        f"http://127.0.0.1:{dead}/api/v1/query?query=up"), up
    assert up["message"].endswith("unreachable: connection refused - nothing is listening "
                                  "there (service down or wrong URL?)")
    assert fails["test_error_rate"]["severity"] == "P1"
    assert fails["test_alert_rules_loaded"]["message"].startswith(
        f"Prometheus GET http://127.0.0.1:{dead}/api/v1/rules: unreachable: connection refused")
    assert fails["test_alertmanager_ready"]["message"] == (
        f"Alertmanager GET http://127.0.0.1:{dead}/-/ready: unreachable: connection refused - "
        "nothing is listening there (service down or wrong URL?)")
    assert "posting synthetic alert" in fails["test_synthetic_alert_delivered"]["message"]
    assert run.verdict["verdict"] == "P1"


def test_no_data_missing_rule_and_delivery_deadline(sb: Sandbox, tmp_path: Path) -> None:
    """A job Prometheus does not scrape: every metric query is empty -> "no data for ...";
    a required alert that is not deployed; a delivery deadline shorter than the route's
    group_wait (1 s)."""
    path = variant(sb, tmp_path,
                   prometheus={"job": "no-such-job",
                               "required_alerts": ["BackendDown", "NoSuchAlert"]},
                   alertmanager={"delivery_timeout": 0.3})
    run = run_suite(path, METRICS, ALERTING, tmp=tmp_path)
    fails = messages(run)
    assert set(fails) == {"test_error_rate", "test_p95_latency", "test_backend_up",
                          "test_below_limit[db_connections]", "test_below_limit[memory]",
                          "test_alert_rules_loaded", "test_synthetic_alert_delivered"}, fails
    up = fails["test_backend_up"]
    assert up["message"].startswith('no data for up{job="no-such-job"} (Prometheus http://'), up
    assert up["severity"] == "P0"  # no target at all: as BackendAbsent
    assert fails["test_error_rate"]["message"].startswith(
        'no data for (sum(rate(http_requests_total{job="no-such-job",status=~"5.."}[10s]))')
    assert fails["test_below_limit[memory]"]["message"].startswith(
        'no data for process_resident_memory_bytes{job="no-such-job"}')
    assert fails["test_alert_rules_loaded"]["message"].startswith(
        "alert rule(s) NoSuchAlert not loaded in Prometheus http://127.0.0.1:")
    late = fails["test_synthetic_alert_delivered"]["message"]
    assert "was not delivered to http://127.0.0.1:" in late and "within 0.3 s" in late
    assert "Alertmanager holds it as: [('active', ['pagerduty-critical'])]" in late


def test_error_rate_p1_then_p0_alerts_reach_the_sink(sb: Sandbox, prom: Prometheus,
                                                     am: Alertmanager, tmp_path: Path) -> None:
    since = time.time()
    with chaos(sb, error_rate=0.3):
        fired = wait_for_alert(prom, "HighErrorRate", "firing", {"severity": "P1"}, timeout=40)
        assert fired.seen_at is not None, fired.last
        run = run_suite(sb.path, METRICS, tmp=tmp_path / "p1", extra=["-k", "error_rate"])
        fail = messages(run)["test_error_rate"]
        assert fail["severity"] == "P1", fail
        assert "of security-dashboard-backend requests answered 5xx over the last 10s, above " \
            "the P1 threshold of 10% - query (sum(rate(http_requests_total" in fail["message"]
        slack = wait_for_notification(am, "HighErrorRate", 10, path="/slack/slack-incidents",
                                      since=since)
        assert slack.notification is not None, slack.last
        assert "[FIRING:1] P1 Security Dashboard - HighErrorRate" in json.dumps(
            slack.notification["body"])

        with chaos(sb, error_rate=1.0):
            fired = wait_for_alert(prom, "HighErrorRate", "firing", {"severity": "P0"}, 30)
            assert fired.seen_at is not None, fired.last
            run = run_suite(sb.path, METRICS, tmp=tmp_path / "p0", extra=["-k", "error_rate"])
            fail = messages(run)["test_error_rate"]
            assert fail["severity"] == "P0", fail
            assert "above the P0 threshold of 50%" in fail["message"]
            page = wait_for_notification(am, "HighErrorRate", 10, path="/pagerduty/", since=since)
            assert page.notification is not None, page.last
            body = page.notification["body"]
            assert body["event_action"] == "trigger"
            assert body["payload"]["summary"] == "[FIRING:1] P0 Security Dashboard - HighErrorRate"
    assert "error_rate" not in (read_json(sb.dir / CHAOS_FILE) or {})


def test_slow_backend_and_limits(sb: Sandbox, prom: Prometheus, tmp_path: Path) -> None:
    assert sb.profile.prometheus is not None
    query = queries.checks(sb.profile.prometheus)["p95"]
    with chaos(sb, latency_seconds=2.5):
        assert wait_value(prom, query, lambda v: v > 2.2, 30) is not None
        # The same run, with limits below what the replicas use (thresholds from the profile).
        path = variant(sb, tmp_path, prometheus={"memory_limit_bytes": 10 * 2**20,
                                                 "db_connections_limit": 0})
        run = run_suite(path, METRICS, tmp=tmp_path, extra=["-k", "p95 or below_limit"])
    fails = messages(run)
    fail = fails["test_p95_latency"]
    assert fail["severity"] == "P1"
    assert fail["message"].startswith("p95 response time of security-dashboard-backend is ")
    assert "over the last 10s, above the SLO of 2 s - query histogram_quantile(0.95" in \
        fail["message"]
    mem = fails["test_below_limit[memory]"]
    assert mem["severity"] == "P2"
    assert mem["message"].startswith("replica 127.0.0.1:")
    assert "at or above 90% of the limit of 10.0 MiB (9.0 MiB) - query " \
        "process_resident_memory_bytes" in mem["message"]
    db = fails["test_below_limit[db_connections]"]["message"]
    assert db.startswith("security-dashboard-backend (all replicas): database connections in use")
    assert "at or above 80% of the limit of 0 (0)" in db


def test_stopped_replicas_turn_up_red_and_page(sb: Sandbox, prom: Prometheus,
                                               am: Alertmanager, tmp_path: Path) -> None:
    pods = [p for p in sb.pods() if p["pid"]]
    assert len(pods) == 2, pods
    up = 'up{job="security-dashboard-backend"}'
    # One replica frozen: P2 naming it (the other still serves).
    with frozen([pods[0]["pid"]]):
        assert wait_value(prom, f"min({up})", lambda v: v == 0, 15) == 0
        run = run_suite(sb.path, METRICS, ALERTING, tmp=tmp_path / "one",
                        extra=["-k", "backend_up or targets"])
    fails = messages(run)
    assert fails["test_backend_up"]["severity"] == "P2"
    assert fails["test_backend_up"]["message"].startswith(
        f"1 of 2 scrape targets of job security-dashboard-backend are down (up == 0): "
        f"127.0.0.1:{pods[0]['port']} (pod {pods[0]['name']})")
    assert f"http://127.0.0.1:{pods[0]['port']}/metrics is down" in \
        fails["test_scrape_targets_up"]["message"]

    # All frozen: P0, BackendDown fires and pages.
    since = time.time()
    with frozen([p["pid"] for p in pods]):
        fired = wait_for_alert(prom, "BackendDown", "firing", timeout=20)
        assert fired.seen_at is not None, fired.last
        run = run_suite(sb.path, METRICS, tmp=tmp_path / "all", extra=["-k", "backend_up"])
        page = wait_for_notification(am, "BackendDown", 10, path="/pagerduty/", since=since)
    fail = messages(run)["test_backend_up"]
    assert fail["severity"] == "P0"
    assert fail["message"].startswith("all 2 scrape targets of job security-dashboard-backend "
                                      "are down (up == 0)")
    assert page.notification is not None, page.last
    assert page.notification["body"]["payload"]["summary"] == \
        "[FIRING:1] P0 Security Dashboard - BackendDown"


def test_broken_rule_is_reported(sb: Sandbox, prom: Prometheus, tmp_path: Path) -> None:
    """A rule that fails at evaluation (many-to-many matching) turns test_rules_evaluate red.
    Last in the module: a reload makes Prometheus rediscover its Alertmanager (~5 s)."""
    rules = Path(sb.state["components"]["prometheus"]["rules"])
    broken = rules / "zz-broken.yml"
    broken.write_text(yaml.safe_dump({"groups": [{"name": "broken", "rules": [
        {"alert": "Broken", "expr": "up / on() up"}]}]}))
    try:
        assert httpx.post(f"{prom.url}/-/reload", timeout=5).status_code == 200
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            groups = prom.rules().body["groups"]
            if any(r.get("lastError") for g in groups for r in g["rules"]):
                break
            time.sleep(0.25)
        run = run_suite(sb.path, ALERTING, tmp=tmp_path, extra=["-k", "rules_evaluate"])
    finally:
        broken.unlink()
        httpx.post(f"{prom.url}/-/reload", timeout=5)
    fail = messages(run)["test_rules_evaluate"]
    assert fail["severity"] == "P1"
    assert fail["message"].startswith("rule Broken in group broken is err: ")
    assert "many-to-many matching not allowed" in fail["message"]
