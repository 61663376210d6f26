"""The journeys outside `playbook load`: a plain `locust -f`, the Locust master and workers of
deploy/ (stock image, the ConfigMap's files only), and the image pinned to the installed Locust.

Every run is a subprocess against a real sandbox, bounded by its plan and a timeout.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from playbook.sandbox.launch import LIGHT, Sandbox, free_port_block, start_sandbox, stop_sandbox
from tests.conftest import ROOT
from tests.test_load import LOAD, playbook_load

LOCUST = str(Path(sys.executable).parent / "locust")
DEPLOY = ROOT / "deploy"
# The ramp profile of tests/test_load.py as Locust's shape must run it: (users, spawn rate)
RAMP = [(4, 2.0), (8, 2.0), (0, 5.33)]


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    sandbox = start_sandbox(tmp_path_factory.mktemp("deploy-sandbox"), without=LIGHT, load=LOAD)
    try:
        yield sandbox
    finally:
        stop_sandbox(sandbox)


def shape_ticks(log: str) -> list[tuple[int, float]]:
    return [(int(u), float(r)) for u, r in
            re.findall(r"Shape test updating to (\d+) users at ([\d.]+) spawn rate", log)]


def history_users(csv_prefix: Path) -> list[int]:
    rows = (csv_prefix.parent / f"{csv_prefix.name}_stats_history.csv").read_text().splitlines()
    head = rows[0].split(",")
    users, name = head.index("User Count"), head.index("Name")
    return [int(r.split(",")[users]) for r in rows[1:] if r.split(",")[name] == "Aggregated"]


@pytest.mark.sandbox
def test_plain_locust_runs_the_profiles_ramp(sb: Sandbox, tmp_path: Path) -> None:
    """`locust -f loadtests/locustfile.py` with PLAYBOOK_ENV and PLAYBOOK_LOAD_PROFILE: the
    same stages as `playbook load --profile ramp`, the host from the profile."""
    env = {**os.environ, "PLAYBOOK_ENV": str(sb.path), "PLAYBOOK_LOAD_PROFILE": "ramp"}
    env.pop("PLAYBOOK_LOAD_PLAN", None)
    proc = subprocess.run([LOCUST, "-f", "loadtests/locustfile.py", "--headless",
                           "--csv", str(tmp_path / "plain"), "--only-summary"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert shape_ticks(out) == RAMP, out
    users = history_users(tmp_path / "plain")
    assert max(users) == 8 and users[-1] < 8, users
    for name in ("/api/health", "/api/ready", "/api/status"):
        assert f"GET      {name}" in out
    assert "checks: 100.00% passed" in out


@pytest.mark.unit
@pytest.mark.parametrize("variables, sentence", [
    ({"PLAYBOOK_ENV": "{tmp}/missing.yaml"}, "{tmp}/missing.yaml: profile file not found"),
    ({"PLAYBOOK_LOAD_PROFILE": "soak"}, "no load profile 'soak' for PLAYBOOK_LOAD_PROFILE"),
    ({"PLAYBOOK_LOAD_PLAN": "{tmp}/plan.json"}, "{tmp}/plan.json: not a load plan"),
    ({"PLAYBOOK_LOAD_PLAN": "{tmp}/none.json"}, "cannot read the load plan"),
], ids=["profile", "load-profile", "plan", "plan-file"])
def test_plain_locust_without_a_plan_is_one_sentence(tmp_path: Path, variables: dict[str, str],
                                                     sentence: str) -> None:
    (tmp_path / "plan.json").write_text('{"stages": "soon"}')
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAYBOOK_")}
    env.update({k: v.format(tmp=tmp_path) for k, v in variables.items()})
    proc = subprocess.run([LOCUST, "-f", "loadtests/locustfile.py", "--headless"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert sentence.format(tmp=tmp_path) in out
    assert "Traceback" not in out


@pytest.mark.sandbox
def test_deploy_bundle_runs_on_stock_locust(sb: Sandbox, tmp_path: Path) -> None:
    """deploy/'s master and worker as the stock image runs them: only the ConfigMap's files
    (the playbook package cannot be imported), the shape from its plan.json."""
    cm = yaml.safe_load((DEPLOY / "locust-configmap.yaml").read_text())
    bundle = tmp_path / "mnt-locust"
    bundle.mkdir()
    for name, text in cm["data"].items():
        (bundle / name).write_text(text)
    # the shipped plan with this test's ramp and target (the same format make_configmap writes)
    plan = json.loads(cm["data"]["plan.json"])
    # (a master dispatches a stage's users before its next tick: quick ramps keep stages apart)
    stages = [(2, 4, 4.0), (3, 8, 8.0), (1.5, 0, 16.0)]
    plan.update(host=sb.profile.service.base_url, timeout=2, stages=[
        {"duration": d, "users": u, "spawn_rate": r} for d, u, r in stages])
    (bundle / "plan.json").write_text(json.dumps(plan))
    shadow = tmp_path / "no-playbook" / "playbook"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        'raise ImportError("the stock Locust image has no playbook package")\n')
    env = {**os.environ, "PYTHONPATH": str(shadow.parent),
           "PLAYBOOK_LOAD_PLAN": str(bundle / "plan.json")}
    port = free_port_block(1)
    master = subprocess.Popen(
        [LOCUST, "-f", str(bundle / "locustfile.py"), "--master", "--headless",
         "--expect-workers", "1", "--master-bind-host", "127.0.0.1", "--master-bind-port",
         str(port), "--csv", str(tmp_path / "deploy")], cwd=bundle, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    worker = subprocess.Popen(
        [LOCUST, "-f", str(bundle / "locustfile.py"), "--worker", "--master-host",
         "127.0.0.1", "--master-port", str(port)], cwd=bundle, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = master.communicate(timeout=60)
        wout, _ = worker.communicate(timeout=20)  # the master's quit ends the worker too
    finally:
        for proc in (master, worker):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert master.returncode == 0, out + wout
    assert "ImportError" not in wout and "Traceback" not in out + wout, wout
    assert shape_ticks(out) == [(u, r) for _, u, r in stages], out
    users = history_users(tmp_path / "deploy")
    assert max(users) == 8 and users[-1] < 8, users
    stats = (tmp_path / "deploy_stats.csv").read_text()
    total = next(r.split(",") for r in stats.splitlines() if ",Aggregated," in r)
    assert int(total[2]) > 10 and int(total[3]) == 0, stats  # requests, none failed


@pytest.mark.sandbox
def test_master_for_stock_workers_started_elsewhere(sb: Sandbox, tmp_path: Path) -> None:
    """deploy/: `playbook load --expect-workers` is the master for stock `locust --worker`s."""
    port = free_port_block(1)
    argv = [sys.executable, "-m", "playbook.cli", "--env", str(sb.path), "load", "--profile",
            "smoke", "--expect-workers", "1", "--master-port", str(port)]
    env = {**os.environ, "PLAYBOOK_REPORTS": str(tmp_path / "reports")}
    master = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env=env)
    worker = subprocess.Popen([LOCUST, "-f", "loadtests/locustfile.py", "--worker",
                               "--master-host", "127.0.0.1", "--master-port", str(port)],
                              cwd=ROOT, env={**env, "PLAYBOOK_ENV": str(sb.path)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        out, _ = master.communicate(timeout=60)
        worker.wait(timeout=15)  # the master's quit ends the stock worker too
    finally:
        for proc in (master, worker):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert master.returncode == 0, out
    run_dir = next(line[17:].strip() for line in out.splitlines()
                   if line.startswith("load: reports in "))
    s = json.loads((Path(run_dir) / "summary.json").read_text())
    assert s["workers"] == 1 and s["totals"]["requests"] > 10
    assert sum(s["requests_seen_by_master_per_worker"].values()) == s["totals"]["requests"]
    assert s["totals"]["checks_passed"] == 2 * s["totals"]["requests"]


@pytest.mark.sandbox
def test_playbook_load_runs_the_same_ramp(sb: Sandbox, tmp_path: Path) -> None:
    run = playbook_load(sb.path, tmp_path, "--profile", "ramp")
    assert run.code == 0, run.output
    plan = json.loads(Path(run.summary["files"]["plan.json"]).read_text())
    assert [(s["users"], round(s["spawn_rate"], 2)) for s in plan["stages"]] == RAMP


# --- what deploy/ ships ---------------------------------------------------------------------


@pytest.mark.unit
def test_deploy_configmap_is_current() -> None:
    proc = subprocess.run([sys.executable, "deploy/make_configmap.py", "--check"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cm = yaml.safe_load((DEPLOY / "locust-configmap.yaml").read_text())
    assert cm["data"]["locustfile.py"] == (ROOT / "loadtests" / "locustfile.py").read_text()
    for name in ("loadclient", "loadwire", "loadplan"):
        assert cm["data"][f"{name}.py"] == (ROOT / "playbook" / f"{name}.py").read_text()
    plan = json.loads(cm["data"]["plan.json"])
    assert plan["source"] == "production load.profiles.gate" and plan["tls_verify"] is True
    docs = [d for f in ("locust-master.yaml", "locust-worker.yaml")
            for d in yaml.safe_load_all((DEPLOY / f).read_text())]
    assert sorted(d["kind"] for d in docs) == ["Deployment", "Deployment", "Service"]
    for d in docs:
        if d["kind"] == "Deployment":
            pod = d["spec"]["template"]["spec"]
            assert pod["volumes"][0]["configMap"]["name"] == cm["metadata"]["name"]
            (container,) = pod["containers"]
            assert {"name": "PLAYBOOK_LOAD_PLAN", "value": "/mnt/locust/plan.json"} in \
                container["env"]
            assert container["volumeMounts"][0]["mountPath"] == "/mnt/locust"


@pytest.mark.unit
def test_deploy_image_is_the_installed_locust() -> None:
    """pyproject pins Locust exactly; the install resolves that pin; the image is that tag."""
    pin = re.search(r'"locust==([0-9][^"]*)"', (ROOT / "pyproject.toml").read_text())
    assert pin, "pyproject.toml must pin locust exactly (locust==X.Y.Z): deploy/ runs X.Y.Z"
    installed = importlib.metadata.version("locust")
    assert installed == pin.group(1), f"Locust {installed} installed, {pin.group(1)} pinned: " \
        "run make install"
    images = [c["image"] for f in ("locust-master.yaml", "locust-worker.yaml")
              for d in yaml.safe_load_all((DEPLOY / f).read_text()) if d["kind"] == "Deployment"
              for c in d["spec"]["template"]["spec"]["containers"]]
    assert images == [f"locustio/locust:{installed}"] * 2, images
