"""`playbook load` and the pytest load gate against a real sandbox.

Runs are short (a few seconds) and made in subprocesses, as a user makes them: Locust patches
the interpreter with gevent, which must not happen in this test process.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
import yaml

from playbook.sandbox.launch import LIGHT, Sandbox, free_port_block, start_sandbox, stop_sandbox
from tests.conftest import ROOT, run_suite

pytestmark = pytest.mark.sandbox

STOP_TIMEOUT = 3
SMOKE: dict[str, Any] = {
    "users": 6, "spawn_rate": 6, "run_time": 5, "abort_grace_seconds": 1.5,
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
        # ~2 req/s a user: a few steps up, the request rate breaks the limit
        "knee": {"users": 1, "run_time": 1,
                 "thresholds": {"http_req_failed": ["rate<0.05"], "http_reqs": ["rate<30"]}},
    },
    "capacity": {"start_users": 2, "step_users": 8, "step_seconds": 3, "max_users": 34,
                 "max_steps": 5, "max_seconds": 20},
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


def variant(sandbox: Sandbox, tmp: Path, load: dict[str, Any] | None = None,
            **changes: Any) -> Path:
    """The sandbox's profile with `load.profiles.smoke`, `service` or `load` keys changed."""
    raw = yaml.safe_load(sandbox.path.read_text())
    if "thresholds" in changes:
        raw["load"]["profiles"]["smoke"]["thresholds"] = changes["thresholds"]
    if "base_url" in changes:
        raw["service"]["base_url"] = changes["base_url"]
    raw["load"].update(load or {})
    path = tmp / "variant.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


# --- the runner ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke(sb: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> LoadRun:
    """One smoke run on the healthy sandbox, read by several tests."""
    return playbook_load(sb.path, tmp_path_factory.mktemp("smoke"), "--profile", "smoke")


def test_smoke_passes_on_healthy_sandbox(smoke: LoadRun) -> None:
    run = smoke
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
    for name in ("report.html", "load.svg", "plan.json", "locust_stats.csv",
                 "locust_failures.csv"):
        assert (run_dir / name).stat().st_size > 0, name
    assert s["client"] == "playbook" and s["history_points"] >= 2
    stats_csv = (run_dir / "locust_stats.csv").read_text()
    assert "Aggregated" in stats_csv and str(s["totals"]["requests"]) in stats_csv
    assert "load smoke" in run.output and "rps" in run.output and "p95" in run.output


# Counts the strongly coloured pixels of each chart canvas while the report draws them
# (Chromium's virtual time budget is 8 s: chromium() in tests/test_report.py).
CHART_PROBE = """<script>
(function () {
  var most = [];
  function sample() {
    document.querySelectorAll("canvas").forEach(function (c, k) {
      var n = 0, d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      for (var i = 0; i < d.length; i += 4) {
        var hi = Math.max(d[i], d[i + 1], d[i + 2]), lo = Math.min(d[i], d[i + 1], d[i + 2]);
        if (d[i + 3] > 128 && hi - lo > 80) n++;
      }
      most[k] = Math.max(most[k] || 0, n);
    });
  }
  var timer = setInterval(sample, 250);  // the charts animate in: keep the most drawn
  setTimeout(function () {
    clearInterval(timer);
    sample();
    var pre = document.createElement("pre");
    pre.id = "chart-pixels";
    pre.textContent = JSON.stringify(most);
    document.body.appendChild(pre);
  }, 6000);
})();
</script>"""
_ARGS = re.compile(r"window\.templateArgs = (\{.*?\});?\s*\n")


def chart_pixels(report: Path, tmp: Path, history: list[Any] | None = None) -> list[int]:
    """The report in headless Chromium: coloured pixels per chart (optionally with its
    embedded history replaced, the control for an empty chart)."""
    from tests.test_report import chromium

    src = report.read_text()
    if history is not None:
        m = _ARGS.search(src)
        assert m, "no templateArgs in the report"
        src = src[:m.start(1)] + json.dumps({**json.loads(m.group(1)), "history": history}) + \
            src[m.end(1):]
    head, tail = src.rsplit("</body>", 1)
    page = tmp / f"probe-{len(list(tmp.iterdir()))}.html"
    page.write_text(head + CHART_PROBE + "</body>" + tail)
    found = re.findall(r'<pre id="chart-pixels">(.*?)</pre>', chromium("--dump-dom",
                                                                       page.as_uri()))
    assert found, "the probe did not run in Chromium"
    return json.loads(found[0])


def test_html_report_charts_are_drawn(smoke: LoadRun, tmp_path: Path) -> None:
    report = Path(smoke.summary["files"]["report.html"])
    args = json.loads(_ARGS.search(report.read_text()).group(1))  # type: ignore[union-attr]
    history = args["history"]
    assert len(history) >= 2 and any(h["current_rps"][1] > 0 for h in history), history
    assert any(h["user_count"][1] == SMOKE["users"] for h in history)
    drawn = chart_pixels(report, tmp_path)
    empty = chart_pixels(report, tmp_path, history=[])  # the bug this guards: no history
    assert len(drawn) == len(empty) == 3, (drawn, empty)  # requests/s, response times, users
    for name, d, e in zip(("requests/s", "response times", "users"), drawn, empty, strict=True):
        assert d > 2 * e and d - e > 300, f"the {name} chart is empty: {d} vs {e} pixels"


def test_picture_has_latency_throughput_failures_and_thresholds(smoke: LoadRun) -> None:
    svg = Path(smoke.summary["files"]["load.svg"]).read_text()
    root = ElementTree.fromstring(svg)  # well-formed
    texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    for panel in ("latency (ms)", "throughput (req/s)", "failures (% of requests)"):
        assert panel in texts
    assert {"p50", "p95", "req/s", "failed"} <= set(texts)
    lines = root.findall(".//{http://www.w3.org/2000/svg}polyline")
    assert len(lines) >= 4 and all(len(p.get("points", "").split()) >= 2 for p in lines)
    # every threshold is drawn as a line or listed as off scale, with its expression
    for t in smoke.summary["thresholds"]:
        assert any(t["threshold"] in text for text in texts), t["threshold"]
    assert "rate<0.01" in texts and "rate>2" in texts  # drawn on their panels
    assert f"playbook load smoke against {smoke.summary['target']}: PASSED" in texts


def test_fasthttp_behind_the_profile_switch(sb: Sandbox, tmp_path: Path) -> None:
    run = playbook_load(variant(sb, tmp_path, load={"client": "fasthttp", "tls_verify": False}),
                        tmp_path)
    assert run.code == 0, run.output
    assert run.summary["client"] == "fasthttp" and run.summary["totals"]["failures"] == 0
    assert run.summary["totals"]["check_pass_rate"] == 1.0
    plan = json.loads(Path(run.summary["files"]["plan.json"]).read_text())
    assert plan["client"] == "fasthttp" and plan["tls_verify"] is False  # what the users got


@pytest.mark.parametrize("load, sentence", [
    ({"client": "fast"}, "load.client: expected one of playbook, fasthttp, got 'fast'"),
    ({"capacity": {"start_users": 0}}, "load.capacity: need 1 <= start_users <= max_users"),
], ids=["client", "capacity"])
def test_bad_load_settings_are_one_sentence(sb: Sandbox, tmp_path: Path, load: dict[str, Any],
                                           sentence: str) -> None:
    run = playbook_load(variant(sb, tmp_path, load=load), tmp_path, "--find-capacity")
    assert run.code == 2, run.output
    assert sentence in run.output and "Traceback" not in run.output


def test_capacity_finder_reports_the_knee(sb: Sandbox, tmp_path: Path) -> None:
    bounds = LOAD["capacity"]
    run = playbook_load(sb.path, tmp_path, "--profile", "knee", "--find-capacity")
    assert run.code == 0, run.output
    cap = run.summary["capacity"]
    steps, knee = cap["steps"], cap["knee"]
    users = [s["users"] for s in steps]
    assert users == list(range(bounds["start_users"], users[-1] + 1, bounds["step_users"]))
    assert len(steps) <= bounds["max_steps"] and users[-1] <= bounds["max_users"]
    # it stopped by itself at the first step that broke the request-rate limit
    assert not steps[-1]["passed"] and all(s["passed"] for s in steps[:-1]), steps
    assert cap["stopped_because"].startswith(f"step {len(steps)} ({users[-1]} users) broke "
                                             "http_reqs rate<30 FAILED"), cap
    assert steps[-1]["rps"] >= 30 > knee["rps"]
    assert knee == max(steps[:-1], key=lambda s: s["rps"])  # the highest passing req/s
    assert f"load: capacity {knee['rps']:.1f} req/s at {knee['users']} users" in run.output
    assert run.wall < bounds["max_seconds"] + 20, run.wall
    svg = Path(run.summary["files"]["load.svg"]).read_text()
    assert f"knee {knee['rps']:.0f} req/s" in svg and "rate&lt;30" in svg
    assert Path(run.summary["files"]["report.html"]).stat().st_size > 0


def test_slow_sandbox_fails_the_latency_threshold(sb: Sandbox, tmp_path: Path) -> None:
    with chaos(sb, latency_seconds=0.5):
        run = playbook_load(sb.path, tmp_path, "--profile", "smoke")
    assert run.code == 1, run.output
    t = run.threshold("http_req_duration{name:/api/health}", "p(95)<400")
    assert not t["passed"] and t["value"] >= 400 and t["limit"] == 400
    assert "http_req_duration{name:/api/health} p(95)<400 FAILED" in run.output
    assert run.threshold("http_req_failed", "rate<0.01")["passed"]  # slow, not erroring


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


def test_run_never_outlives_its_bound(sb: Sandbox, tmp_path: Path) -> None:
    with chaos(sb, latency_seconds=0.5):  # requests are in flight when the time is up
        run = playbook_load(sb.path, tmp_path, "--profile", "bounded")
    s = run.summary
    assert s["planned_seconds"] == 2
    assert s["duration_seconds"] < 2 + 0.5, s["duration_seconds"]
    # whole process: interpreter and Locust start (~2-3 s here), run, stop, reports
    assert run.wall < 2 + STOP_TIMEOUT + 10, run.wall
    assert run.code == 1 and not s["aborted"]  # abort_on_fail is off: judged at the end


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


def test_unknown_load_profile_is_rejected(sb: Sandbox, tmp_path: Path) -> None:
    run = playbook_load(sb.path, tmp_path, "--profile", "soak")
    assert run.code == 2
    assert "no load profile 'soak' (known: smoke, long, bounded, ramp, knee)" in run.output


def test_unreachable_target_exits_2_with_a_sentence(sb: Sandbox, tmp_path: Path) -> None:
    port = free_port_block(1)
    run = playbook_load(variant(sb, tmp_path, base_url=f"http://127.0.0.1:{port}"), tmp_path)
    assert run.code == 2, run.output
    assert "the target is unreachable, no load was started" in run.output
    assert f"127.0.0.1:{port}/api/health" in run.output
    assert "Traceback" not in run.output


# --- the pytest gate (loadtests/) ------------------------------------------------------------


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
    assert {"report.html", "load.svg", "summary.json", "locust_stats.csv"} <= names


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


def test_gate_unreachable_target_is_a_sentence(sb: Sandbox, tmp_path: Path) -> None:
    port = free_port_block(1)
    res = run_suite(variant(sb, tmp_path, base_url=f"http://127.0.0.1:{port}"), "loadtests",
                    tmp=tmp_path)
    assert res.returncode == 1, res.output
    failure = res.failure("test_synthetic_load")
    assert failure is not None
    assert "could not run: the target is unreachable, no load was started" in \
        failure["message"]
