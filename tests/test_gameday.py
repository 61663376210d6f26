"""Game days against a real sandbox: every drill passes; a drill without its alert rule fails
at detection, with a broken rollback at mitigation; signals leave nothing injected; the
production guard and the blast-radius limit refuse."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from playbook import config, drill
from playbook.actions.rollback import emergency_rollback
from playbook.control.kube import replicas as desired_replicas
from playbook.faults.aws import RdsReboot, TargetsDeregistered
from playbook.faults.base import FaultRefused, Journal, injected
from playbook.faults.context import GameDay
from playbook.faults.kube import BadDeploy, NetworkPartition, PodsDeleted, ScaledToZero
from playbook.sandbox.launch import Sandbox, local_aws_env, start_sandbox, stop_sandbox
from tests.conftest import ROOT, run_suite

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    sandbox = start_sandbox(tmp_path_factory.mktemp("gameday"))
    os.environ.update(local_aws_env(sandbox.path))
    try:
        yield sandbox
    finally:
        stop_sandbox(sandbox)


@pytest.fixture
def ctx(sb: Sandbox) -> Iterator[GameDay]:
    g = GameDay(sb.profile)
    yield g
    g.close()


def wait_healthy(g: GameDay, timeout: float = 60) -> None:
    watch = g.watchers()
    deadline = time.monotonic() + timeout
    while (problem := watch.healthy()) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert problem is None, problem


def test_every_drill_passes_and_writes_a_scorecard(sb: Sandbox, tmp_path: Path) -> None:
    start = time.monotonic()
    run = run_suite(sb.path, "gameday", tmp=tmp_path, timeout=600)
    wall = time.monotonic() - start
    assert run.returncode == 0, run.output[-3000:]
    assert run.verdict["verdict"] == "healthy"
    (card_path,) = (tmp_path / "reports" / "gameday").glob("*/scorecard.json")
    card = json.loads(card_path.read_text())
    names = {d["drill"] for d in card["drills"]}
    assert {"backend outage", "one pod lost", "bad deploy, rollback", "slow responses",
            "database outage", "cache outage", "load balancer targets lost",
            "alert path"} <= names
    for d in card["drills"]:
        assert d["passed"], d
        stages = [e["stage"] for e in d["timeline"]]
        assert stages[0] == "steady state" and "injected" in stages and "reverted" in stages
    assert (card_path.parent / "timeline.svg").read_text().startswith("<svg")
    assert "| backend outage | PASS |" in (card_path.parent / "scorecard.md").read_text()
    outage = next(d for d in card["drills"] if d["drill"] == "backend outage")
    assert outage["metrics"]["detect_floor"] > 0
    journal = Journal.open(tmp_path / "reports" / "gameday" / "journal.json")
    assert journal.entries and journal.pending() == []
    print(f"game day wall time {wall:.1f} s")


def test_without_its_alert_rule_a_drill_fails_at_detection(sb: Sandbox, ctx: GameDay,
                                                           tmp_path: Path) -> None:
    rules = sb.dir / "monitoring" / "rules" / "dependencies.yml"
    original = rules.read_text()
    doc = yaml.safe_load(original)
    for group in doc["groups"]:
        group["rules"] = [r for r in group["rules"] if r["alert"] != "LoadBalancerNoTargets"]
    rules.write_text(yaml.safe_dump(doc))
    prom_pid = sb.pid("prometheus")
    os.kill(prom_pid, signal.SIGHUP)  # Prometheus reloads its rules
    try:
        time.sleep(2)
        d = drill.Drill("targets lost, no rule", TargetsDeregistered(),
                        drill.Expect(alert="LoadBalancerNoTargets", severity="P0",
                                     receiver="pagerduty", detect_within=6,
                                     recover_within=30), settle=30)
        result = drill.run(d, ctx, Journal.open(tmp_path / "j.json"), ctx.watchers())
    finally:
        rules.write_text(original)
        os.kill(prom_pid, signal.SIGHUP)
    assert result.failed_stage == "detection"
    assert result.message == "detection: LoadBalancerNoTargets did not fire within 6 s"
    wait_healthy(ctx)


def test_with_a_broken_rollback_a_drill_fails_at_mitigation(sb: Sandbox, ctx: GameDay,
                                                            tmp_path: Path) -> None:
    """The rollback runs with an identity that may only read (RBAC): the API refuses it."""
    viewer_profile = tmp_path / "viewer.yaml"
    raw = yaml.safe_load(sb.path.read_text())
    raw["kubernetes"]["context"] = "sandbox-viewer"
    viewer_profile.write_text(yaml.safe_dump(raw))
    viewer = GameDay(config.load(str(viewer_profile)))
    journal = Journal.open(tmp_path / "j.json")
    try:
        d = drill.Drill("bad deploy, rollback refused", BadDeploy(tag="bad-5xx"),
                        drill.Expect(alert="HighErrorRate", severity="P0", detect_within=40,
                                     recover_within=5),
                        mitigate=lambda _: emergency_rollback(viewer), settle=30)
        result = drill.run(d, ctx, journal, ctx.watchers())
    finally:
        viewer.close()
    assert result.failed_stage == "mitigation", result.message
    assert result.message.startswith("mitigation: the runbook action failed: RuntimeError: ")
    assert "403 Forbidden" in result.message
    assert journal.pending() == []  # the bad deploy was reverted anyway
    wait_healthy(ctx)


def test_production_guard_and_blast_radius(sb: Sandbox, tmp_path: Path) -> None:
    raw = yaml.safe_load(sb.path.read_text())
    raw["production"] = True
    prod_path = tmp_path / "prod.yaml"
    prod_path.write_text(yaml.safe_dump(raw))
    prod = GameDay(config.load(str(prod_path)))
    journal = Journal.open(tmp_path / "j.json")
    with pytest.raises(FaultRefused, match=r"production: true.*--allow-production"), \
            injected(ScaledToZero(), prod, journal):
        pass
    raw["production"] = False
    raw["gameday"]["max_pod_percent"] = 50
    limited_path = tmp_path / "limited.yaml"
    limited_path.write_text(yaml.safe_dump(raw))
    limited = GameDay(config.load(str(limited_path)))
    try:
        with pytest.raises(FaultRefused, match=r"affects 100% of the pods, above the "
                                               r"profile's blast-radius limit "
                                               r"gameday.max_pod_percent = 50 %"), \
                injected(PodsDeleted(percent=100), limited, journal):
            pass
        with injected(PodsDeleted(count=1), limited, journal):  # 1 of 2 pods: allowed
            pass
    finally:
        prod.close()
        limited.close()
    assert [e["status"] for e in journal.entries] == ["reverted"]
    assert desired_replicas(GameDay(sb.profile).kube) == 2


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL],
                         ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_signals_during_a_drill_leave_nothing_injected(sb: Sandbox, ctx: GameDay,
                                                       tmp_path: Path,
                                                       sig: signal.Signals) -> None:
    wait_healthy(ctx)
    reports = tmp_path / "reports"
    env = {**os.environ, **local_aws_env(sb.path), "PLAYBOOK_REPORTS": str(reports)}
    proc = subprocess.Popen([sys.executable, "-m", "playbook.cli", "gameday", "--scenario",
                             "backend_outage", "--env", str(sb.path)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    jpath = reports / "gameday" / "journal.json"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if jpath.exists() and any(e["status"] == "injected"
                                      for e in Journal.open(jpath).entries):
                break
            time.sleep(0.05)
        else:
            pytest.fail("the drill never injected its fault")
        assert desired_replicas(ctx.kube) == 0
        # To the whole process group, as a terminal's Ctrl-C or a CI runner's cancel does.
        os.killpg(proc.pid, sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    if sig == signal.SIGKILL:
        assert Journal.open(jpath).pending(), "a SIGKILLed run cannot have reverted"
        revert = subprocess.run([sys.executable, "-m", "playbook.cli", "gameday", "revert",
                                 "--env", str(sb.path)], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=120)
        assert revert.returncode == 0, revert.stdout + revert.stderr
        assert "reverted: deployment scaled from 2 to 0 replicas" in revert.stdout
    assert Journal.open(jpath).pending() == []
    assert desired_replicas(ctx.kube) == 2
    wait_healthy(ctx)


@pytest.mark.parametrize("fault", [NetworkPartition(), RdsReboot()],
                         ids=["network-partition", "rds-reboot"])
def test_database_unreachable_faults(sb: Sandbox, ctx: GameDay, tmp_path: Path,
                                     fault: Any) -> None:
    """The database cut off by a NetworkChaos partition (PostgreSQL itself stays up) or
    rebooted through the AWS API: readiness goes red naming the database; after the revert
    (or the reboot) the service is healthy again."""
    wait_healthy(ctx)
    watch = ctx.watchers()
    journal = Journal.open(tmp_path / "j.json")
    with injected(fault, ctx, journal):
        deadline = time.monotonic() + 20
        while (problem := watch.healthy()) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert problem is not None and "database" in problem, problem
    assert journal.pending() == []
    wait_healthy(ctx)
