"""The health, status and readiness checks against targets that misbehave in each way an
on-call engineer meets: every one fails with a sentence naming what was expected, what was
seen and where - never a traceback - and with the playbook's severity."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_suite
from tests.fakes import serve

pytestmark = pytest.mark.sandbox

JSON = "application/json"
HEALTHY = {
    "/api/health": (200, JSON, json.dumps({"status": "ok", "version": "9.9"}), 0),
    "/api/ready": (200, JSON, json.dumps({"status": "ok"}), 0),
    "/api/status": (200, JSON, json.dumps({"status": "operational"}), 0),
}
HTML_502 = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"


def profile_for(tmp: Path, base_url: str, timeout: float = 0.5, p95: float = 2.0) -> Path:
    path = tmp / "target.yaml"
    path.write_text(
        f"name: fake\nservice:\n  base_url: {base_url}\n  timeout: {timeout}\n"
        f"  slo: {{p95_seconds: {p95}}}\n  repeated_health: {{count: 3, interval: 0.05}}\n"
        "run: {budget_seconds: 60}\n")
    return path


CHECKS = ("checks/test_health.py", "checks/test_readiness.py")


@pytest.mark.parametrize("route, p95, expected, severity", [
    pytest.param((200, JSON, json.dumps({"status": "degraded"}), 0), 2.0,
                 "answered 200 but status is 'degraded', expected 'ok'", "P0", id="unhealthy"),
    pytest.param((502, "text/html", HTML_502, 0), 2.0,
                 "expected HTTP 200, got 502 Bad Gateway - body: <html>", "P0", id="5xx-html"),
    pytest.param((200, "text/html", HTML_502, 0), 2.0,
                 "expected a JSON body, got text/html (an HTML error page?)", "P0",
                 id="html-not-json"),
    pytest.param((200, JSON, json.dumps({"status": "ok"}), 2.0), 2.0,
                 "no answer within 0.5 s (timeout", "P0", id="timeout"),
    pytest.param((200, JSON, json.dumps({"status": "ok"}), 0.3), 0.2,
                 "above the p95 SLO of 0.2 s", "P1", id="slow-but-ok"),
])
def test_health_fails_with_a_sentence(tmp_path: Path, route: tuple, p95: float, expected: str,
                                      severity: str) -> None:
    routes = {**HEALTHY, "/api/health": route}
    with serve(routes) as url:
        run = run_suite(profile_for(tmp_path, url, p95=p95), "checks/test_health.py::"
                        "test_endpoint_answers", tmp=tmp_path)
    failure = run.failure("test_endpoint_answers[health]")
    assert failure is not None, run.output
    assert failure["message"].startswith(f"GET {url}/api/health: "), failure
    assert expected in failure["message"], failure
    assert failure["severity"] == severity
    assert run.verdict["verdict"] == severity
    assert "Traceback" not in run.output
    assert run.output.rstrip().splitlines()[-1].startswith(f"verdict: {severity} - GET {url}")
    results = [json.loads(p.read_text()) for p in run.allure.glob("*-result.json")]
    (health,) = [r for r in results if r["name"] == "test_endpoint_answers[health]"]
    assert [label["value"] for label in health["labels"] if label["name"] == "severity"] == [
        {"P0": "blocker", "P1": "critical"}[severity]]


def test_ready_names_the_failed_dependency(tmp_path: Path) -> None:
    body = {"status": "unavailable", "failed": ["database"],
            "checks": {"database": "error: OperationalError: connection refused",
                       "cache": "ok"}}
    routes = {**HEALTHY, "/api/ready": (503, JSON, json.dumps(body), 0)}
    with serve(routes) as url:
        run = run_suite(profile_for(tmp_path, url), *CHECKS, tmp=tmp_path)
    failure = run.failure("test_ready")
    assert failure == {"test": "checks/test_readiness.py::test_ready", "severity": "P1",
                       "message": f"GET {url}/api/ready: not ready (503) - failed dependency: "
                                  "database (database: error: OperationalError: connection "
                                  "refused)"}
    assert run.verdict["verdict"] == "P1"
    assert run.returncode == 1
    # Allure: the playbook's P1 is Allure's "critical"; the incident type is the feature.
    results = [json.loads(p.read_text()) for p in run.allure.glob("*-result.json")]
    (ready,) = [r for r in results if r["name"] == "test_ready"]
    labels = {(label["name"], label["value"]) for label in ready["labels"]}
    assert {("severity", "critical"), ("tag", "P1"), ("feature", "service outage")} <= labels
    assert ready["status"] == "failed"
    assert "failed dependency: database" in ready["statusDetails"]["message"]


def test_repeated_health_reports_the_failing_attempt(tmp_path: Path) -> None:
    with serve(HEALTHY) as url:
        run1 = run_suite(profile_for(tmp_path, url), "checks/test_health.py::"
                         "test_repeated_health", tmp=tmp_path)
    assert run1.returncode == 0, run1.output
    routes = {**HEALTHY, "/api/health": (503, JSON, '{"status":"down"}', 0)}
    with serve(routes) as url:
        run2 = run_suite(profile_for(tmp_path, url), "checks/test_health.py::"
                         "test_repeated_health", tmp=tmp_path)
    failure = run2.failure("test_repeated_health")
    assert failure is not None, run2.output
    assert failure["message"].startswith("health check failed on attempt 1/3: GET ")
    assert "expected HTTP 200, got 503" in failure["message"]


def test_dead_target_fails_fast(tmp_path: Path) -> None:
    """All of checks/ against a closed port: P0, one sentence, in under 10 seconds."""
    with serve({}) as url:
        pass  # the port is closed again now
    start = time.monotonic()
    run = run_suite(profile_for(tmp_path, url, timeout=2.0), "checks", tmp=tmp_path,
                    extra=["--incident", "INC-202611261830"])
    elapsed = time.monotonic() - start
    assert elapsed < 10, f"took {elapsed:.1f} s"
    assert run.verdict["verdict"] == "P0"
    failure = run.failure("test_endpoint_answers[health]")
    assert failure is not None
    assert failure["message"] == (f"GET {url}/api/health: connection refused - nothing is "
                                  "listening there (service down or wrong URL?)")
    assert "Traceback" not in run.output
    assert run.returncode == 1
    # --incident tags every result: verdict, JUnit and Allure.
    assert run.verdict["incident"] == "INC-202611261830"
    assert '<property name="incident" value="INC-202611261830" />' in run.junit.read_text()
    tagged = [json.loads(p.read_text()) for p in run.allure.glob("*-result.json")]
    assert tagged and all({"name": "tag", "value": "INC-202611261830"} in r["labels"]
                          for r in tagged)


def test_bad_profile_stops_before_any_test(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nservice:\n  base_url: http://127.0.0.1:1\n  timout: 3\n")
    run = run_suite(bad, "checks", tmp=tmp_path)
    assert run.returncode == 4
    assert f"profile error: {bad}: service.timout: unknown key" in run.output
    assert "passed" not in run.output and "failed" not in run.output
    assert run.verdict == {}


def test_playbook_check_passes_pytest_options_on(tmp_path: Path) -> None:
    """`playbook check -k health -q`: the options argparse does not know go on to pytest."""
    with serve({}) as url:
        pass  # closed again
    env = {**os.environ, "PLAYBOOK_REPORTS": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "playbook.cli", "check", "--env",
                           str(profile_for(tmp_path, url)), "-k", "repeated", "-q"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 failed" in proc.stdout and "deselected" in proc.stdout
    assert proc.stdout.rstrip().splitlines()[-1].startswith("verdict: P1 - health check failed")
