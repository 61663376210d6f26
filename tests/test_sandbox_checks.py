"""checks/ against a real sandbox: green when healthy, red with the right sentence when a
component is broken the way it breaks in production."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from playbook.sandbox.launch import Sandbox
from tests.conftest import run_suite

pytestmark = pytest.mark.sandbox

CHECKS = ("checks/test_health.py", "checks/test_readiness.py")


def wait_for(predicate, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout} s")


def test_checks_green_on_healthy_sandbox(sandbox: Sandbox, tmp_path: Path) -> None:
    run = run_suite(sandbox.path, *CHECKS, tmp=tmp_path)
    assert run.returncode == 0, run.output
    assert run.verdict == {"verdict": "healthy", "failures": []}
    assert run.output.rstrip().splitlines()[-1] == "verdict: healthy"
    env = (run.allure / "environment.properties").read_text()
    assert "Profile=local" in env and "Service.Version=1.4.2" in env
    assert any(run.allure.glob("*-result.json"))


def test_killed_replica_is_routed_around_and_replaced(fresh_sandbox: Sandbox,
                                                      tmp_path: Path) -> None:
    sb = fresh_sandbox
    victim = sb.pods()[0]
    os.kill(victim["pid"], signal.SIGKILL)
    # The front must not send users to the dead replica while the controller restarts it.
    run = run_suite(sb.path, *CHECKS, tmp=tmp_path)
    assert run.returncode == 0, run.output
    wait_for(lambda: any(p["name"] == victim["name"] and p["restarts"] == 1 and p["ready"]
                         for p in sb.pods()), what="the killed replica restarted and ready")


def test_database_stopped_turns_readiness_red(fresh_sandbox: Sandbox, tmp_path: Path) -> None:
    sb = fresh_sandbox
    os.kill(sb.pid("postgres"), signal.SIGINT)  # PostgreSQL's fast shutdown
    wait_for(lambda: not any(p["ready"] for p in sb.pods()), what="replicas unready")
    run = run_suite(sb.path, *CHECKS, tmp=tmp_path)
    ready = run.failure("test_ready")
    assert ready is not None, run.output
    assert ready["severity"] == "P1"
    assert "not ready (503) - failed dependency: database (database: error: " in \
        ready["message"]
    status = run.failure("test_endpoint_answers[status]")
    assert status is not None and '"database":"outage"' in status["message"]
    # Liveness does not depend on the database: health stays green, so the verdict is P1.
    assert run.failure("test_endpoint_answers[health]") is None
    assert run.verdict["verdict"] == "P1"


def test_cache_stopped_turns_readiness_red(fresh_sandbox: Sandbox, tmp_path: Path) -> None:
    sb = fresh_sandbox
    os.kill(sb.pid("redis"), signal.SIGKILL)
    wait_for(lambda: not any(p["ready"] for p in sb.pods()), what="replicas unready")
    run = run_suite(sb.path, *CHECKS, tmp=tmp_path)
    ready = run.failure("test_ready")
    assert ready is not None, run.output
    assert "failed dependency: cache (cache: error: ConnectionError" in ready["message"]
    assert run.verdict["verdict"] == "P1"


def test_frozen_backend_times_out_as_p0(fresh_sandbox: Sandbox, tmp_path: Path) -> None:
    """Every replica hangs (SIGSTOP): requests time out; the check says so, fast."""
    sb = fresh_sandbox
    pids = [p["pid"] for p in sb.pods()]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        start = time.monotonic()
        run = run_suite(sb.path, "checks/test_health.py::test_endpoint_answers", tmp=tmp_path)
        elapsed = time.monotonic() - start
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    health = run.failure("test_endpoint_answers[health]")
    assert health is not None, run.output
    assert health["severity"] == "P0"
    assert health["message"].endswith("no answer within 2 s (timeout; the service is hanging "
                                      "or overloaded)")
    assert elapsed < 15


def test_slow_backend_is_p1(sandbox: Sandbox, tmp_path: Path) -> None:
    """Answers that come, but slower than the p95 SLO: P1 (playbook 1.3)."""
    chaos = sandbox.dir / "chaos.json"
    chaos.write_text(json.dumps({"latency_seconds": 0.4}))
    try:
        time.sleep(0.5)  # replicas re-read the fault file every 0.2 s
        profile = tmp_path / "slo.yaml"
        profile.write_text(sandbox.path.read_text().replace("p95_seconds: 2.0",
                                                            "p95_seconds: 0.3"))
        run = run_suite(profile, "checks/test_health.py::test_endpoint_answers", tmp=tmp_path)
    finally:
        chaos.write_text("{}")
    health = run.failure("test_endpoint_answers[health]")
    assert health is not None, run.output
    assert health["severity"] == "P1"
    assert "above the p95 SLO of 0.3 s" in health["message"]
    assert run.verdict["verdict"] == "P1"
