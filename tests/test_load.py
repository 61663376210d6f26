"""`playbook load` and the pytest load gate against a real sandbox.

Runs are short (a few seconds) and made in subprocesses, as a user makes them: Locust patches
the interpreter with gevent, which must not happen in this test process.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from playbook.sandbox.launch import LIGHT, Sandbox, free_port_block, start_sandbox, stop_sandbox
from tests.conftest import ROOT, run_suite

STOP_TIMEOUT = 3
SMOKE: dict[str, Any] = {
    "users": 6, "spawn_rate": 6, "run_time": 3, "abort_grace_seconds": 1.5,
    "thresholds": {
        "http_req_duration": ["p(95)<2000", "p(99)<3000"],
        "http_req_failed": ["rate<0.01"],
        "checks": ["rate>0.99"],
        "http_reqs": ["rate>2"],
        "http_req_duration{name:/api/health}": ["p(95)<400"],
        "http_req_duration{name:/api/ready}": ["p(95)<1000"],
    },
}
LOAD = {
    "progress_every": 1, "stop_timeout": STOP_TIMEOUT,
    "profiles": {
        "smoke": SMOKE,
        # long enough that only an early abort can end it quickly
        "long": {**SMOKE, "run_time": 30, "thresholds": {"http_req_failed": ["rate<0.05"]}},
        "bounded": {"users": 10, "spawn_rate": 10, "run_time": 2, "abort_on_fail": False,
                    "thresholds": {"http_req_duration": ["p(95)<100"]}},
        "ramp": {"stages": [{"duration": 2, "users": 4}, {"duration": 2, "users": 8},
                            {"duration": 1.5, "users": 0}],
                 "thresholds": {"http_req_failed": ["rate<0.01"]}},
    },
}


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """One sandbox for the module; tests that slow it down restore its chaos file."""
    sandbox = start_sandbox(tmp_path_factory.mktemp("load-sandbox"), without=LIGHT, load=LOAD)
    try:
        yield sandbox
    finally:
        stop_sandbox(sandbox)


@contextlib.contextmanager
def chaos(sandbox: Sandbox, **faults: Any) -> Iterator[None]:
    """Merge faults into the sandbox's chaos.json (never dropping other keys); restore after."""
    path = sandbox.dir / "chaos.json"
    before = path.read_text() if path.exists() else None
    current = json.loads(before) if before else {}
    path.write_text(json.dumps({**current, **faults}))
    time.sleep(0.5)  # the replicas re-read the file every 0.2 s
    try:
        yield
    finally:
        if before is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(before)
        time.sleep(0.5)


@dataclass
class LoadRun:
    code: int
    output: str
    wall: float
    summary: dict[str, Any]

    def threshold(self, key: str, expr: str) -> dict[str, Any]:
        for t in self.summary["thresholds"]:
            if t["metric"] == key and t["threshold"] == expr:
                return t
        raise AssertionError(f"no threshold {key} {expr} in the summary")


def playbook_load(profile: Path | str, tmp: Path, *args: str, timeout: float = 90) -> LoadRun:
    argv = [sys.executable, "-m", "playbook.cli", "--env", str(profile), "load", *args]
    t0 = time.monotonic()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PLAYBOOK_REPORTS": str(tmp / "reports")})
    wall = time.monotonic() - t0
    out = proc.stdout + proc.stderr
    summary: dict[str, Any] = {}
    for line in out.splitlines():
        if line.startswith("load: reports in "):
            summary = json.loads((Path(line[17:].strip()) / "summary.json").read_text())
    return LoadRun(proc.returncode, out, wall, summary)


def variant(sandbox: Sandbox, tmp: Path, **changes: Any) -> Path:
    """The sandbox's profile with `load.profiles.smoke` or `service` changed."""
    raw = yaml.safe_load(sandbox.path.read_text())
    if "thresholds" in changes:
        raw["load"]["profiles"]["smoke"]["thresholds"] = changes["thresholds"]
    if "base_url" in changes:
        raw["service"]["base_url"] = changes["base_url"]
    path = tmp / "variant.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


# --- the runner ------------------------------------------------------------------------------


@pytest.mark.sandbox
def test_smoke_passes_on_healthy_sandbox(sb: Sandbox, tmp_path: Path) -> None:
    run = playbook_load(sb.path, tmp_path, "--profile", "smoke")
    assert run.code == 0, run.output
    s = run.summary
    assert s["passed"] and not s["aborted"]
    assert s["totals"]["requests"] > 10 and s["totals"]["failures"] == 0
    assert s["totals"]["check_pass_rate"] == 1.0
    assert {t["metric"] for t in s["thresholds"]} >= {"http_req_duration", "checks",
                                                     "http_req_duration{name:/api/health}"}
    # every threshold with its limit and value
    assert all(t["value"] is not None and t["limit"] is not None for t in s["thresholds"])
    assert set(s["endpoints"]) == {"/api/health", "/api/ready", "/api/status",
                                   "/api/vulnerabilities", "/api/assets", "/api/alerts"}
    run_dir = Path(s["files"]["summary.json"]).parent
    for name in ("report.html", "locust_stats.csv", "locust_failures.csv"):
        assert (run_dir / name).stat().st_size > 0, name
    stats_csv = (run_dir / "locust_stats.csv").read_text()
    assert "Aggregated" in stats_csv and str(s["totals"]["requests"]) in stats_csv
    assert "load smoke" in run.output and "rps" in run.output and "p95" in run.output


@pytest.mark.sandbox
def test_slow_sandbox_fails_the_latency_threshold(sb: Sandbox, tmp_path: Path) -> None:
    with chaos(sb, latency_seconds=0.5):
        run = playbook_load(sb.path, tmp_path, "--profile", "smoke")
    assert run.code == 1, run.output
    t = run.threshold("http_req_duration{name:/api/health}", "p(95)<400")
    assert not t["passed"] and t["value"] >= 400 and t["limit"] == 400
    assert "http_req_duration{name:/api/health} p(95)<400 FAILED" in run.output
    assert run.threshold("http_req_failed", "rate<0.01")["passed"]  # slow, not erroring


@pytest.mark.sandbox
def test_erroring_sandbox_aborts_early(sb: Sandbox, tmp_path: Path) -> None:
    with chaos(sb, error_rate=0.5):
        run = playbook_load(sb.path, tmp_path, "--profile", "long")
    assert run.code == 1, run.output
    s = run.summary
    assert s["aborted"] and s["duration_seconds"] < 10, s["duration_seconds"]
    assert "breached" in s["abort_reason"] and "http_req_failed rate<0.05" in s["abort_reason"]
    assert "ABORTED" in run.output
    t = run.threshold("http_req_failed", "rate<0.05")
    assert not t["passed"] and 0.2 < t["value"] < 0.8
    assert run.wall < 25, run.wall


@pytest.mark.sandbox
def test_workers_aggregate_on_the_master(sb: Sandbox, tmp_path: Path) -> None:
    run = playbook_load(sb.path, tmp_path, "--profile", "smoke", "--workers", "2")
    assert run.code == 0, run.output
    s = run.summary
    workers = s["worker_reports"]
    assert len(workers) == 2 and all(w.get("requests", 0) > 0 for w in workers), workers
    assert s["totals"]["requests"] == sum(w["requests"] for w in workers)
    assert s["totals"]["failures"] == sum(w["failures"] for w in workers)
    assert sum(s["requests_seen_by_master_per_worker"].values()) == s["totals"]["requests"]
    # checks travel with the stats: two per request
    assert s["totals"]["checks_passed"] + s["totals"]["checks_failed"] == \
        2 * s["totals"]["requests"]


@pytest.mark.sandbox
def test_master_for_stock_workers_started_elsewhere(sb: Sandbox, tmp_path: Path) -> None:
    """deploy/: `playbook load --expect-workers` is the master for stock `locust --worker`s."""
    port = free_port_block(1)
    argv = [sys.executable, "-m", "playbook.cli", "--env", str(sb.path), "load", "--profile",
            "smoke", "--expect-workers", "1", "--master-port", str(port)]
    env = {**os.environ, "PLAYBOOK_REPORTS": str(tmp_path / "reports")}
    master = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env=env)
    worker = subprocess.Popen([str(Path(sys.executable).parent / "locust"), "-f",
                               "loadtests/locustfile.py", "--worker", "--master-host",
                               "127.0.0.1", "--master-port", str(port)], cwd=ROOT,
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


@pytest.mark.unit
def test_deploy_configmap_carries_the_locustfile() -> None:
    cm = yaml.safe_load((ROOT / "deploy" / "locust-configmap.yaml").read_text())
    assert cm["data"]["locustfile.py"] == (ROOT / "loadtests" / "locustfile.py").read_text(), \
        "deploy/locust-configmap.yaml is stale: run .venv/bin/python deploy/make_configmap.py"
    docs = [d for f in ("locust-master.yaml", "locust-worker.yaml")
            for d in yaml.safe_load_all((ROOT / "deploy" / f).read_text())]
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["Deployment", "Deployment", "Service"]
    for d in docs:
        if d["kind"] == "Deployment":
            vols = d["spec"]["template"]["spec"]["volumes"]
            assert vols[0]["configMap"]["name"] == cm["metadata"]["name"]


@pytest.mark.sandbox
def test_stages_ramp_up_and_down(sb: Sandbox, tmp_path: Path) -> None:
    run = playbook_load(sb.path, tmp_path, "--profile", "ramp")
    assert run.code == 0, run.output
    s = run.summary
    assert s["planned_seconds"] == 5.5 and s["duration_seconds"] < 6.5
    history = (Path(s["files"]["summary.json"]).parent / "locust_stats_history.csv")
    rows = [line.split(",") for line in history.read_text().splitlines()[1:]]
    users = [int(r[1]) for r in rows if r[3] == "Aggregated"]
    peak = users.index(max(users))
    assert max(users) == 8 and users[-1] < 8 and peak > 0, users


@pytest.mark.sandbox
def test_locustfile_runs_standalone(sb: Sandbox, tmp_path: Path) -> None:
    """`locust -f loadtests/locustfile.py --host URL` works without the runner."""
    proc = subprocess.run([str(Path(sys.executable).parent / "locust"), "-f",
                           "loadtests/locustfile.py", "--host", sb.profile.service.base_url,
                           "--headless", "-u", "4", "-r", "4", "--run-time", "3s",
                           "--only-summary"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    for name in ("/api/health", "/api/ready", "/api/status"):
        assert f"GET      {name}" in out
    assert "checks: 100.00% passed" in out


@pytest.mark.sandbox
def test_run_never_outlives_its_bound(sb: Sandbox, tmp_path: Path) -> None:
    with chaos(sb, latency_seconds=0.5):  # requests are in flight when the time is up
        run = playbook_load(sb.path, tmp_path, "--profile", "bounded")
    s = run.summary
    assert s["planned_seconds"] == 2
    assert s["duration_seconds"] < 2 + 0.5, s["duration_seconds"]
    # whole process: interpreter and Locust start (~2-3 s here), run, stop, reports
    assert run.wall < 2 + STOP_TIMEOUT + 10, run.wall
    assert run.code == 1 and not s["aborted"]  # abort_on_fail is off: judged at the end


@pytest.mark.sandbox
@pytest.mark.parametrize("thresholds, sentence", [
    ({"http_req_duratoin": ["p(95)<2000"]}, "unknown metric 'http_req_duratoin'"),
    ({"http_req_duration{name:/api/nope}": ["p(95)<2000"]}, "unknown endpoint '/api/nope'"),
    ({"http_req_failed": ["p(95)<0.01"]}, "'p(95)' does not apply to http_req_failed"),
    ({"checks": ["rate>>1"]}, "is not a threshold expression"),
], ids=["metric", "endpoint", "aggregation", "expression"])
def test_bad_threshold_is_rejected_before_the_run(sb: Sandbox, tmp_path: Path,
                                                  thresholds: dict, sentence: str) -> None:
    run = playbook_load(variant(sb, tmp_path, thresholds=thresholds), tmp_path)
    assert run.code == 2, run.output
    assert sentence in run.output
    assert "load smoke" not in run.output and not run.summary  # no load was started


@pytest.mark.sandbox
def test_unknown_load_profile_is_rejected(sb: Sandbox, tmp_path: Path) -> None:
    run = playbook_load(sb.path, tmp_path, "--profile", "soak")
    assert run.code == 2
    assert "no load profile 'soak' (known: smoke, long, bounded, ramp)" in run.output


@pytest.mark.sandbox
def test_unreachable_target_exits_2_with_a_sentence(sb: Sandbox, tmp_path: Path) -> None:
    port = free_port_block(1)
    run = playbook_load(variant(sb, tmp_path, base_url=f"http://127.0.0.1:{port}"), tmp_path)
    assert run.code == 2, run.output
    assert "the target is unreachable, no load was started" in run.output
    assert f"127.0.0.1:{port}/api/health" in run.output
    assert "Traceback" not in run.output


# --- the pytest gate (loadtests/) ------------------------------------------------------------


@pytest.mark.sandbox
def test_gate_green_on_healthy_sandbox(sb: Sandbox, tmp_path: Path) -> None:
    res = run_suite(sb.path, "loadtests", tmp=tmp_path, extra=["--load-profile", "smoke"])
    assert res.returncode == 0, res.output
    assert res.verdict["verdict"] == "healthy"
    results = [json.loads(p.read_text()) for p in res.allure.glob("*-result.json")]
    (gate,) = [r for r in results if r["name"].startswith("synthetic load")]
    steps = [st["name"] for st in gate.get("steps", [])]
    assert len(steps) == len(SMOKE["thresholds"]) + 1  # p95 and p99 share a key
    assert any(st.startswith("http_req_duration{name:/api/health} p(95)<400 passed")
               for st in steps)
    labels = {(lb["name"], lb["value"]) for lb in gate["labels"]}
    assert ("severity", "critical") in labels and ("feature", "performance") in labels
    names = {a["name"] for a in gate.get("attachments", [])}
    assert {"report.html", "summary.json", "locust_stats.csv"} <= names


@pytest.mark.sandbox
def test_gate_red_names_the_threshold(sb: Sandbox, tmp_path: Path) -> None:
    with chaos(sb, latency_seconds=0.5):
        res = run_suite(sb.path, "loadtests", tmp=tmp_path, extra=["--load-profile", "smoke"])
    assert res.returncode == 1, res.output
    failure = res.failure("test_synthetic_load")
    assert failure is not None and failure["severity"] == "P1"
    msg = failure["message"]
    assert msg.startswith(f"synthetic load profile smoke against {sb.profile.service.base_url}")
    assert "http_req_duration{name:/api/health} p(95)<400 FAILED" in msg
    assert "limit < 400 ms" in msg and " ms over " in msg  # limit and value


@pytest.mark.sandbox
def test_gate_unreachable_target_is_a_sentence(sb: Sandbox, tmp_path: Path) -> None:
    port = free_port_block(1)
    res = run_suite(variant(sb, tmp_path, base_url=f"http://127.0.0.1:{port}"), "loadtests",
                    tmp=tmp_path)
    assert res.returncode == 1, res.output
    failure = res.failure("test_synthetic_load")
    assert failure is not None
    assert "could not run: the target is unreachable, no load was started" in \
        failure["message"]
