"""monitoring/: the deployable rules and configs pass Prometheus's and Alertmanager's own
validators and the rule unit tests, and so do the sandbox's rendered variants."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from playbook import config
from playbook.sandbox import monitoring

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
MON = ROOT / "monitoring"


def run(*argv: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(argv)} failed:\n{out}"
    return out


def test_promtool_check_rules() -> None:
    out = run("promtool", "check", "rules", *map(str, sorted(MON.glob("rules/*.yml"))))
    assert "SUCCESS: 7 rules found" in out


def test_promtool_check_config() -> None:
    out = run("promtool", "check", "config", str(MON / "prometheus.yml"))
    assert "is valid prometheus config file syntax" in out


def test_amtool_check_config() -> None:
    out = run("amtool", "check-config", str(MON / "alertmanager.yml"))
    assert "3 receivers" in out and "1 inhibit rules" in out


def test_promtool_rule_unit_tests() -> None:
    out = run("promtool", "test", "rules", *map(str, sorted(MON.glob("tests/*.yml"))))
    assert "SUCCESS" in out


def test_rules_carry_playbook_labels() -> None:
    doc = yaml.safe_load((MON / "rules" / "security-dashboard.yml").read_text())
    rules = [r for g in doc["groups"] for r in g["rules"] if "alert" in r]
    for rule in rules:
        assert rule["labels"]["severity"] in ("P0", "P1", "P2", "P3"), rule["alert"]
        assert rule["labels"]["incident_type"] in ("service outage", "performance", "security",
                                                   "data", "infrastructure", "third-party")
        assert {"summary", "runbook_url"} <= set(rule["annotations"]), rule["alert"]
        assert "PLAYBOOK.md#" in rule["annotations"]["runbook_url"]
    names = {r["alert"] for r in rules}
    assert set(config.DEFAULT_REQUIRED_ALERTS) <= names


@pytest.mark.parametrize("text, seconds, scaled", [
    ("5m", 300, "5s"), ("1m", 60, "1s"), ("2m", 120, "2s"), ("10m", 600, "10s"),
    ("1h30m", 5400, "90s"), ("30s", 30, "1s"), ("500ms", 0.5, "1s"),
])
def test_for_durations_scale(text: str, seconds: float, scaled: str) -> None:
    assert monitoring.parse_duration(text) == seconds
    assert monitoring.scale(text, monitoring.MIN_FOR) == scaled


def test_range_windows_scale_with_a_floor() -> None:
    expr = 'rate(x[5m]) / rate(y[1h]) + max_over_time(z[30m:1m])'
    assert monitoring.scale_expr(expr) == \
        'rate(x[10s]) / rate(y[60s]) + max_over_time(z[30s:1s])'
    with pytest.raises(ValueError):
        monitoring.parse_duration("5 minutes")


def test_sandbox_renderings_are_valid(tmp_path: Path) -> None:
    """The rendered rules/alertmanager.yml/prometheus.yml pass the same validators, keep the
    routes and point every receiver at the sink."""
    rendered = monitoring.render_rules(MON / "rules", tmp_path / "rules")
    run("promtool", "check", "rules", *map(str, rendered))
    (main,) = [p for p in rendered if p.name == "security-dashboard.yml"]
    doc = yaml.safe_load(main.read_text())
    fors = {r["alert"] + r["labels"]["severity"]: r["for"] for g in doc["groups"]
            for r in g["rules"]}
    assert fors["BackendDownP0"] == "1s" and fors["HighErrorRateP1"] == "5s"
    assert fors["BackendAbsentP0"] == "3s"

    am = monitoring.render_alertmanager(MON / "alertmanager.yml", "http://127.0.0.1:1")
    prod = yaml.safe_load((MON / "alertmanager.yml").read_text())
    assert [r["matchers"] for r in am["route"]["routes"]] == \
        [r["matchers"] for r in prod["route"]["routes"]]
    assert am["inhibit_rules"] == prod["inhibit_rules"]
    pd = am["receivers"][0]["pagerduty_configs"][0]
    assert pd["url"] == "http://127.0.0.1:1/pagerduty/pagerduty-critical/v2/enqueue"
    assert "routing_key_file" not in pd
    assert am["receivers"][1]["slack_configs"][0]["api_url"] == \
        "http://127.0.0.1:1/slack/slack-incidents"
    assert am["route"]["group_wait"] == "1s" and "group_wait" not in am["route"]["routes"][0]
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(am))
    run("amtool", "check-config", str(tmp_path / "alertmanager.yml"))

    ports = SimpleNamespace(front=1, prometheus=2, alertmanager=3, sink=4)
    prom = monitoring.render_prometheus(SimpleNamespace(sb=SimpleNamespace(ports=ports)),
                                        tmp_path)
    (tmp_path / "targets").mkdir()
    (tmp_path / "targets" / "backend.json").write_text("[]")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(prom))
    run("promtool", "check", "config", str(tmp_path / "prometheus.yml"))
    assert prom["global"]["scrape_interval"] == "1s"
