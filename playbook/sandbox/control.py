"""`playbook sandbox up | down | status`: start the supervisor detached, stop it, report."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from playbook import config, paths
from playbook.sandbox.state import STATE_FILE, pid_alive, read_json


class SandboxError(Exception):
    pass


def state_dir(profile: config.Profile) -> Path:
    if profile.sandbox is None:
        raise SandboxError(f"profile {profile.name} ({profile.source}) has no `sandbox` section:"
                           " only a sandbox profile such as `local` can be started here")
    return paths.sandbox_state(profile)


def read_state(profile: config.Profile) -> dict[str, Any] | None:
    return read_json(state_dir(profile) / STATE_FILE)


def ports(profile: config.Profile) -> dict[str, int]:
    assert profile.sandbox is not None
    p = profile.sandbox.ports
    out = {name: port for name, port in vars(p).items()
           if port is not None and name != "replica_base"}
    out.update({f"replica-{i}": p.replica_base + i for i in range(profile.sandbox.replicas)})
    for name, port in (read_state(profile) or {}).get("components", {}).items():
        if isinstance(port, dict) and port.get("port"):
            out[name] = port["port"]
    return out


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def running(profile: config.Profile) -> bool:
    state = read_state(profile)
    return bool(state and pid_alive(state.get("supervisor_pid")))


def up(profile: config.Profile, timeout: float = 150.0, echo: Any = print) -> dict[str, Any]:
    """Start the sandbox unless it is already running; return its state."""
    sdir = state_dir(profile)
    state = read_state(profile)
    if state and pid_alive(state.get("supervisor_pid")) and state.get("ready"):
        echo(f"sandbox already running (supervisor pid {state['supervisor_pid']})")
        return state
    if state and pid_alive(state.get("supervisor_pid")):
        down(profile, echo=lambda *_: None)
    busy = [f"{name} {port}" for name, port in ports(profile).items() if port_in_use(port)]
    if busy:
        raise SandboxError("cannot start the sandbox: port(s) already in use on 127.0.0.1: "
                           + ", ".join(busy) + " (another sandbox? `playbook sandbox down`)")
    sdir.mkdir(parents=True, exist_ok=True)
    for stale in (STATE_FILE, "error.txt"):
        (sdir / stale).unlink(missing_ok=True)
    started = time.monotonic()
    log = open(sdir / "supervisor.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [sys.executable, "-m", "playbook.sandbox.supervisor", str(Path(profile.source).resolve())],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True, cwd=os.getcwd(),
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    log.close()
    deadline = started + timeout
    while time.monotonic() < deadline:
        state = read_state(profile)
        if state and state.get("ready"):
            echo(f"sandbox up in {time.monotonic() - started:.1f} s (cold start)")
            return state
        if proc.poll() is not None:
            err = (sdir / "error.txt")
            reason = err.read_text() if err.exists() else f"exit code {proc.returncode}"
            tail = _tail(sdir / "supervisor.log")
            down(profile, echo=lambda *_: None)
            raise SandboxError(f"sandbox failed to start: {reason}\n{tail}")
        time.sleep(0.1)
    down(profile, echo=lambda *_: None)
    raise SandboxError(f"sandbox not ready within {timeout:.0f} s; see {sdir / 'logs'}")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _all_pids(state: dict[str, Any]) -> list[int]:
    pids = [c.get("pid") for c in state.get("components", {}).values() if isinstance(c, dict)]
    pids += [p.get("pid") for p in state.get("pods", [])]
    pids += state.get("terminating", [])  # deleted pods still shutting down
    return [p for p in pids if p]


def down(profile: config.Profile, timeout: float = 15.0, echo: Any = print) -> None:
    """Stop everything the sandbox started; leave no process and no port behind."""
    state = read_state(profile)
    if not state:
        echo("sandbox not running")
        return
    sup = state.get("supervisor_pid")
    if pid_alive(sup):
        os.kill(sup, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_alive(sup):
        time.sleep(0.05)
    # Whatever survived (the supervisor was SIGKILLed, a child hung): kill it for good.
    leftovers = [p for p in [sup, *_all_pids(state)] if pid_alive(p)]
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for pid in leftovers:
        while pid_alive(pid) and time.monotonic() < deadline + 5:
            time.sleep(0.05)
    busy = [f"{name} {port}" for name, port in ports(profile).items() if port_in_use(port)]
    (state_dir(profile) / STATE_FILE).unlink(missing_ok=True)
    if busy:
        raise SandboxError("sandbox stopped but port(s) still bound: " + ", ".join(busy))
    echo("sandbox down" + (f" (killed {len(leftovers)} leftover process(es))" if leftovers
                           else ""))


def status(profile: config.Profile) -> dict[str, Any]:
    state = read_state(profile) or {}
    alive = pid_alive(state.get("supervisor_pid"))
    comps = {name: {**info, "up": pid_alive(info.get("pid"))}
             for name, info in state.get("components", {}).items()} if alive else {}
    return {"running": alive, "ready": bool(alive and state.get("ready")),
            "state_dir": str(state_dir(profile)), "cold_start_seconds":
            state.get("cold_start_seconds"), "components": comps,
            "pods": state.get("pods", []) if alive else []}
