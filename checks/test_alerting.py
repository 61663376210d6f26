"""The monitoring chain itself (playbook "Incident Detection: Automated Monitoring"): the alert
rules are loaded and evaluate without errors, every scrape target answers, Prometheus knows an
Alertmanager, Alertmanager is ready, and a synthetic alert really reaches the receiver."""

from __future__ import annotations

import time

import pytest

from playbook.config import Profile
from playbook.control import alertmanager as am_control
from playbook.plugin import attach_json
from playbook.probes import alertmanager as am_probe
from playbook.probes.alertmanager import Alertmanager
from playbook.probes.api import ApiObservation
from playbook.probes.prometheus import Prometheus

infra = pytest.mark.incident_type("infrastructure")
# The receiver each severity must reach (monitoring/alertmanager.yml routes).
EXPECTED_RECEIVER = {"P0": "pagerduty", "P1": "slack"}


def _data(obs: ApiObservation) -> dict:
    problem = obs.problem()
    assert problem is None, problem
    return obs.body or {}


@infra
@pytest.mark.severity("P1")
@pytest.mark.requires("prometheus")
def test_alert_rules_loaded(profile: Profile, prometheus: Prometheus) -> None:
    """The playbook's alert rules (prometheus.required_alerts) are loaded."""
    assert profile.prometheus is not None
    groups = _data(prometheus.rules()).get("groups", [])
    loaded = {r.get("name") for g in groups for r in g.get("rules", []) if r.get("type") ==
              "alerting"}
    attach_json("alert rules", sorted(n for n in loaded if n))
    missing = [n for n in profile.prometheus.required_alerts if n not in loaded]
    assert not missing, (
        f"alert rule(s) {', '.join(missing)} not loaded in Prometheus {prometheus.url} "
        f"({len(loaded)} alerting rules in {len(groups)} groups) - deploy monitoring/rules")


@infra
@pytest.mark.severity("P1")
@pytest.mark.requires("prometheus")
def test_rules_evaluate(prometheus: Prometheus) -> None:
    """Every rule group evaluates without error (health ok, no lastError)."""
    groups = _data(prometheus.rules()).get("groups", [])
    assert groups, f"Prometheus {prometheus.url} has no rule groups loaded"
    broken = [(g.get("name"), r.get("name"), r.get("health"), r.get("lastError", ""))
              for g in groups for r in g.get("rules", [])
              if r.get("health") not in ("ok", "unknown") or r.get("lastError")]
    attach_json("rule health", [{"group": g.get("name"), "rules": [
        {"name": r.get("name"), "health": r.get("health"), "lastError": r.get("lastError")}
        for r in g.get("rules", [])]} for g in groups])
    if broken:
        group, name, health, error = broken[0]
        more = f" (+{len(broken) - 1} more)" if len(broken) > 1 else ""
        raise AssertionError(f"rule {name} in group {group} is {health}: {error}{more} - "
                             f"Prometheus {prometheus.url}/api/v1/rules")


@infra
@pytest.mark.severity("P2")
@pytest.mark.requires("prometheus")
def test_scrape_targets_up(prometheus: Prometheus) -> None:
    """Every active scrape target answers (a down target is a blind spot in the metrics)."""
    targets = _data(prometheus.targets()).get("activeTargets", [])
    assert targets, f"Prometheus {prometheus.url} has no active scrape target"
    down = [t for t in targets if t.get("health") != "up"]
    attach_json("targets", [{k: t.get(k) for k in ("scrapeUrl", "health", "lastError",
                                                   "lastScrape")} for t in targets])
    if down:
        first = down[0]
        job = first.get("labels", {}).get("job", "?")
        more = f" (+{len(down) - 1} more)" if len(down) > 1 else ""
        raise AssertionError(
            f"{len(down)} of {len(targets)} scrape targets are down: job {job} "
            f"{first.get('scrapeUrl')} is {first.get('health')}: "
            f"{first.get('lastError') or 'not scraped yet'}{more} - {prometheus.url}/targets")


@infra
@pytest.mark.severity("P1")
@pytest.mark.requires("prometheus")
def test_prometheus_has_alertmanager(prometheus: Prometheus) -> None:
    """Prometheus has discovered an Alertmanager to send firing alerts to."""
    data = _data(prometheus.alertmanagers())
    active = [a.get("url") for a in data.get("activeAlertmanagers", [])]
    attach_json("alertmanagers", data)
    assert active, (f"Prometheus {prometheus.url} has no active Alertmanager: firing alerts go "
                    f"nowhere (dropped: {len(data.get('droppedAlertmanagers', []))})")


@infra
@pytest.mark.severity("P1")
@pytest.mark.requires("alertmanager")
def test_alertmanager_ready(alertmanager: Alertmanager) -> None:
    problem = alertmanager.ready().problem()
    assert problem is None, problem


@infra
@pytest.mark.severity("P1")
@pytest.mark.requires("alertmanager")
def test_synthetic_alert_delivered(profile: Profile, alertmanager: Alertmanager) -> None:
    """A synthetic alert with a unique probe_id posted to Alertmanager reaches the receiver
    its severity routes to (P0: PagerDuty, P1: Slack) within alertmanager.delivery_timeout."""
    cfg = profile.alertmanager
    assert cfg is not None
    if not cfg.sink_url:
        pytest.skip("alertmanager.sink_url is not set: delivery cannot be read back here")
    probe_id = am_control.new_probe_id()
    severity = cfg.synthetic_severity
    labels = f'{am_control.SYNTHETIC_ALERT}{{probe_id="{probe_id}", severity="{severity}"}}'
    posted_at = time.time()
    post = am_control.post_alerts(alertmanager, [am_control.synthetic_alert(probe_id, severity)])
    assert post.ok, f"posting synthetic alert {labels} failed: {post.problem()}"
    held = None
    try:
        got = am_probe.wait_for_notification(alertmanager, probe_id, cfg.delivery_timeout)
        if got.notification is None:
            held = alertmanager.alerts([f'probe_id="{probe_id}"'])
    finally:
        # Resolve it at once (a real pager closes the incident); best effort.
        resolved = am_control.synthetic_alert(probe_id, severity, resolve=True)
        am_control.post_alerts(alertmanager, [resolved])
    if got.notification is None:
        if got.last is not None and not got.last.ok:
            raise AssertionError(f"cannot read back deliveries for {labels}: "
                                 f"{got.last.problem()}")
        state = [(a.get("status", {}).get("state"), [r.get("name") for r in a.get(
            "receivers", [])]) for a in (held.body or [])] if held and held.ok else (
            held.problem() if held else None)
        raise AssertionError(
            f"synthetic alert {labels} posted to {alertmanager.url} was not delivered to "
            f"{cfg.sink_url} within {cfg.delivery_timeout:g} s (Alertmanager holds it as: "
            f"{state}) - check the route, the receiver's URL and key, and Alertmanager's log")
    note = got.notification
    delay = note["received_at"] - posted_at
    kind = am_probe.receiver_kind(note.get("body"))
    attach_json(f"notification ({kind}, {delay:.2f} s)", note)
    want = EXPECTED_RECEIVER.get(severity)
    assert want is None or kind == want, (
        f"synthetic alert {labels} was delivered as a {kind} notification to {note['path']}, "
        f"but a {severity} alert must go to {want} (monitoring/alertmanager.yml routes)")
