"""Sandboxes for the suite's own tests and benchmarks: the bundled local profile copied with
every port moved to a free block and a private state directory, started and stopped.

    path = write_sandbox_profile(tmp_dir, without=("monitoring",), service={"timeout": 1})
    sb = start_sandbox(tmp_dir, without=LIGHT)     # write, load, `playbook sandbox up`
    ... sb.profile, sb.path, sb.dir, sb.pods() ...
    stop_sandbox(sb)                                # down, and the state directory removed
    local_aws_env(sb.path)                          # the dummy AWS keys its moto accepts

The bundled `local` profile's own ports (18080, 18090 ...) are never used: several runs share
the machine.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from playbook import config
from playbook.sandbox import control

LOCAL = config.BUNDLED / "local.yaml"


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_block(n: int) -> int:
    """The first of n consecutive free ports on 127.0.0.1."""
    # Below the kernel's ephemeral range (32768-60999): a port picked here cannot be taken
    # meanwhile by the source port of some outgoing connection. Each xdist worker has a range
    # of its own: two sandboxes starting at once on two workers cannot pick the same ports.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    span = 12600 // max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    low = 20000 + index * span
    for _ in range(200):
        base = random.randrange(low, low + span - n)
        if all(_free(base + i) for i in range(n)):
            return base
    raise RuntimeError("no block of free ports found")


def _rewrite(value: Any, mapping: dict[int, int]) -> Any:
    if isinstance(value, dict):
        return {k: _rewrite(v, mapping) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite(v, mapping) for v in value]
    if isinstance(value, str):
        for old, new in mapping.items():
            value = value.replace(f"127.0.0.1:{old}", f"127.0.0.1:{new}")
        return value
    return value


def _rebase(value: Any, old: str, new: str) -> Any:
    if isinstance(value, dict):
        return {k: _rebase(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_rebase(v, old, new) for v in value]
    if isinstance(value, str) and value.startswith(old):
        return new + value[len(old):]
    return value


# Optional sandbox components: the ports that start them and the profile sections that use them.
COMPONENTS = {"monitoring": (("prometheus", "alertmanager", "sink"), ("prometheus",
                                                                     "alertmanager")),
              "aws": (("aws",), ("aws",)), "kubernetes": (("kube",), ("kubernetes",))}


LIGHT = ("monitoring", "aws", "kubernetes")  # front, pods, PostgreSQL and Redis only


def write_sandbox_profile(directory: Path, without: tuple[str, ...] = (),
                          **overrides: Any) -> Path:
    """local.yaml with every sandbox port moved to a free one and a private state dir.

    URLs anywhere in the profile that point at a sandbox port follow it. `overrides` are merged
    into the top-level sections (e.g. service={"timeout": 1})."""
    raw = yaml.safe_load(LOCAL.read_text())
    for component in without:  # a lighter sandbox for tests that do not need it
        port_names, sections = COMPONENTS[component]
        for name in port_names:
            raw["sandbox"]["ports"].pop(name, None)
        for section in sections:
            raw.pop(section, None)
    ports = raw["sandbox"]["ports"]
    base = free_port_block(len(ports) + 40)
    mapping: dict[int, int] = {}
    names = [k for k in ports if k != "replica_base"]
    for i, name in enumerate(names):
        mapping[ports[name]] = base + i
        ports[name] = base + i
    ports["replica_base"] = base + len(names) + 5
    raw = _rewrite(raw, mapping)
    # The state dir must be reachable by the `postgres` user when we are root: not under
    # pytest's 0700 tmp directories.
    state = Path(tempfile.mkdtemp(prefix="playbook-sandbox-"))
    state.chmod(0o755)
    old_state = raw["sandbox"].get("state_dir", ".sandbox").rstrip("/") + "/"
    raw["sandbox"]["state_dir"] = str(state)
    # Paths into the state dir (e.g. kubernetes.kubeconfig) follow it.
    raw = _rebase(raw, old_state, str(state) + "/")
    for section, values in overrides.items():
        if isinstance(values, dict) and isinstance(raw.get(section), dict):
            raw[section].update(values)
        else:
            raw[section] = values
    path = directory / "sandbox-profile.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@dataclass
class Sandbox:
    """A started sandbox: its profile (file and loaded) and the state its `up` returned."""

    path: Path
    profile: config.Profile
    state: dict[str, Any]

    @property
    def dir(self) -> Path:
        assert self.profile.sandbox is not None
        return Path(self.profile.sandbox.state_dir)

    def refresh(self) -> dict[str, Any]:
        self.state = control.read_state(self.profile) or {}
        return self.state

    def pods(self) -> list[dict[str, Any]]:
        return self.refresh().get("pods", [])

    def pid(self, component: str) -> int:
        return self.refresh()["components"][component]["pid"]


def start_sandbox(tmp: Path, without: tuple[str, ...] = (), **overrides: Any) -> Sandbox:
    """A sandbox of its own: a profile in `tmp` (write_sandbox_profile), started."""
    path = write_sandbox_profile(tmp, without, **overrides)
    profile = config.load(str(path))
    state = control.up(profile, echo=lambda *_: None)
    return Sandbox(path, profile, state)


def stop_sandbox(sb: Sandbox) -> None:
    try:
        control.down(sb.profile, echo=lambda *_: None)
    finally:
        shutil.rmtree(sb.dir, ignore_errors=True)


def local_aws_env(profile_path: Path | str) -> dict[str, str]:
    """Dummy AWS keys when the profile's AWS endpoint is on loopback (the sandbox's moto or a
    fake) and the environment has none - what a user exports by hand for the sandbox."""
    try:
        profile = config.load(str(profile_path))
    except config.ProfileError:
        return {}
    return config.local_aws_credentials(profile.aws, os.environ)
