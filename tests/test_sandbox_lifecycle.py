"""`playbook sandbox up | status | down` as a user runs them: idempotent, and nothing left."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from playbook import config
from playbook.sandbox import control
from playbook.sandbox.launch import write_sandbox_profile
from playbook.sandbox.state import pid_alive
from tests.conftest import ROOT


def playbook(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "playbook.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.sandbox
def test_up_status_down(tmp_path: Path) -> None:
    path = write_sandbox_profile(tmp_path)
    profile = config.load(str(path))
    try:
        first = playbook("sandbox", "up", "--env", str(path))
        assert first.returncode == 0, first.stdout + first.stderr
        assert "sandbox up in " in first.stdout and "(cold start)" in first.stdout

        status = playbook("sandbox", "status", "--json", "--env", str(path))
        st = json.loads(status.stdout)
        assert st["running"] and st["ready"]
        assert st["components"]["front"]["url"] == profile.service.base_url
        for name in ("front", "postgres", "redis"):
            assert st["components"][name]["up"], name
        assert len(st["pods"]) == profile.sandbox.replicas
        assert all(p["ready"] for p in st["pods"])

        start = time.monotonic()
        again = playbook("sandbox", "up", "--env", str(path))
        assert again.returncode == 0
        assert "already running" in again.stdout
        assert time.monotonic() - start < 5

        state = control.read_state(profile)
        pids = [*control._all_pids(state), state["supervisor_pid"]]
        ports = control.ports(profile)
    finally:
        down = playbook("sandbox", "down", "--env", str(path))
    assert down.returncode == 0, down.stdout + down.stderr
    assert "sandbox down" in down.stdout
    assert not [p for p in pids if pid_alive(p)], "processes left behind"
    assert not [n for n, p in ports.items() if control.port_in_use(p)], "ports left bound"
    assert playbook("sandbox", "status", "--env", str(path)).stdout.strip() == \
        "sandbox not running"
    shutil.rmtree(profile.sandbox.state_dir, ignore_errors=True)


@pytest.mark.sandbox
def test_down_after_supervisor_sigkill_cleans_up(tmp_path: Path) -> None:
    """The supervisor died hard: `down` still finds and stops every child from the state."""
    path = write_sandbox_profile(tmp_path)
    profile = config.load(str(path))
    state = control.up(profile, echo=lambda *_: None)
    children = control._all_pids(state)
    os.kill(state["supervisor_pid"], 9)
    try:
        control.down(profile, echo=lambda *_: None)
    finally:
        shutil.rmtree(profile.sandbox.state_dir, ignore_errors=True)
    assert not [p for p in children if pid_alive(p)]


@pytest.mark.sandbox
def test_up_refuses_a_busy_port(tmp_path: Path) -> None:
    import socket

    path = write_sandbox_profile(tmp_path)
    profile = config.load(str(path))
    with socket.socket() as s:
        s.bind(("127.0.0.1", profile.sandbox.ports.front))
        s.listen()
        result = playbook("sandbox", "up", "--env", str(path))
    assert result.returncode == 3
    assert (f"port(s) already in use on 127.0.0.1: front {profile.sandbox.ports.front}"
            in result.stderr)


@pytest.mark.unit
def test_not_a_sandbox_profile() -> None:
    result = playbook("sandbox", "up", "--env", "staging")
    assert result.returncode == 3
    assert "has no `sandbox` section" in result.stderr
