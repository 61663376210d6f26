"""`playbook gate` (playbook 6.2) end to end: against the healthy sandbox it passes (exit 0,
JUnit XML and Allure results tagged with the incident) and with --notify posts the resolution;
with the cache stopped it fails (exit 1) naming the failure and posts a progress update. The
Slack webhook is a local fake; its URL never appears in the output. The load is the short
`smoke` profile (the `gate` profile's 5 minutes are for real incidents)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from playbook.sandbox.launch import Sandbox, start_sandbox, stop_sandbox
from tests.conftest import ROOT
from tests.test_notify import fake_service, slack

pytestmark = pytest.mark.sandbox

HOOK_PATH = "/services/TGATE0001/BGATE0001/gAtEw3bh00kS3cretPath"


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    box = start_sandbox(tmp_path_factory.mktemp("gate"))
    try:
        yield box
    finally:
        stop_sandbox(box)


def gate(sb: Sandbox, tmp: Path, hook: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "PLAYBOOK_REPORTS": str(tmp / "reports"), "SLACK_INCIDENT_WEBHOOK": hook,
           "PAGERDUTY_ROUTING_KEY": ""}
    return subprocess.run([sys.executable, "-m", "playbook.cli", "--env", str(sb.path), "gate",
                           "--load-profile", "smoke", *extra], cwd=ROOT, capture_output=True,
                          text=True, env=env, timeout=240)


def test_gate_passes_on_the_healthy_sandbox(sb: Sandbox, tmp_path: Path) -> None:
    with fake_service([slack(200, "ok")], path=HOOK_PATH) as hook:
        proc = gate(sb, tmp_path, hook.url, "--incident", "INC-gate-ok", "--notify")
        posted = hook.bodies()
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "gate: PASSED - every check and the load held; the incident may be closed" in out
    assert "loadtests/test_synthetic_load.py ." in out  # the load ran, and held
    reports = tmp_path / "reports"
    verdict = json.loads((reports / "verdict.json").read_text())
    assert verdict == {"verdict": "healthy", "failures": [], "incident": "INC-gate-ok"}
    junit = ET.parse(reports / "junit.xml").getroot()
    props = {p.get("name"): p.get("value") for p in junit.iter("property")}
    assert props["incident"] == "INC-gate-ok"
    assert int(junit.find("testsuite").get("tests")) >= 40
    results = [json.loads(p.read_text()) for p in (reports / "allure-results").glob(
        "*-result.json")]
    assert results and all({"name": "tag", "value": "INC-gate-ok"} in r["labels"]
                           for r in results)
    assert len(posted) == 1 and posted[0]["text"].startswith("✅ INCIDENT RESOLVED - INC-gate-ok")
    assert "Validation: playbook gate on local" in posted[0]["text"]
    assert HOOK_PATH not in out and "gAtEw3bh00kS3cret" not in out


def test_gate_fails_with_the_cache_stopped(sb: Sandbox, tmp_path: Path) -> None:
    os.kill(sb.pid("redis"), signal.SIGKILL)  # not restarted by the sandbox: this test is last
    deadline = time.monotonic() + 20
    while any(p["ready"] for p in sb.pods()) and time.monotonic() < deadline:
        time.sleep(0.2)
    with fake_service([slack(200, "ok")], path=HOOK_PATH) as hook:
        proc = gate(sb, tmp_path, hook.url, "--incident", "INC-gate-red", "--notify")
        posted = hook.bodies()
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    line = next(x for x in out.splitlines() if x.startswith("gate: FAILED"))
    verdict = json.loads((tmp_path / "reports" / "verdict.json").read_text())
    first = verdict["failures"][0]
    assert verdict["verdict"] in ("P0", "P1")
    assert line == f"gate: FAILED - keep the incident open: {first['message']}"
    assert any("failed dependency: cache" in f["message"] for f in verdict["failures"]), \
        verdict
    assert len(posted) == 1 and posted[0]["text"].startswith("📋 INCIDENT UPDATE - INC-gate-red")
    assert "Progress: Post-fix validation gate failed" in posted[0]["text"]
    assert HOOK_PATH not in out and "gAtEw3bh00kS3cret" not in out


def test_gate_notify_needs_an_incident(sb: Sandbox, tmp_path: Path) -> None:
    started = time.monotonic()
    proc = gate(sb, tmp_path, "", "--notify")
    assert time.monotonic() - started < 15  # refused before any check ran
    assert proc.returncode == 2
    assert "--notify needs --incident INC-..." in proc.stderr
