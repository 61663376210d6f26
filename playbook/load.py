"""Synthetic load: Locust as a library, with k6-style thresholds (`playbook load`).

Replaces the playbook's `k6 run security-dashboard-production-load-test.js --vus 10
--duration 5m` (6.2) with the Locust journeys in loadtests/locustfile.py and keeps what k6 users
rely on: thresholds that decide pass or fail, an early abort, exit codes and reports.

Thresholds (profile `load.profiles.<name>.thresholds`), k6's syntax:

    http_req_duration: ["p(95)<2000", "p(99)<3000"]     # ms; p(N), avg, med, min, max
    http_req_failed: ["rate<0.01"]                      # failed requests / requests
    checks: ["rate>0.99"]                               # passed checks / checks
    http_reqs: ["rate>5"]                               # requests per second (also count)
    "http_req_duration{name:/api/health}": ["p(95)<500"]  # one endpoint (a request name)

Operators: <, <=, >, >=, ==. A metric, aggregation or endpoint the runner does not know is an
error before the run starts (exit 2), never a silent pass; a threshold with no data at the end
(no requests to that endpoint) fails. Latencies are Locust's, which rounds response times above
100 ms to 2 significant digits.

During the run every threshold is evaluated each second once `abort_grace_seconds` have passed
(k6's delayAbortEval); with `abort_on_fail` the first breach stops the run (k6's abortOnFail).
Lower bounds on http_reqs (rate>, count>) are only judged at the end: they depend on the whole
run. Statistics are cumulative since the start, as in k6.

Exit codes: 0 every threshold passed; 1 a threshold failed; 2 the run could not be made (bad
profile or threshold, target unreachable at start, workers did not connect).

`--workers N` runs Locust's distributed mode on this machine: this process is the master (bound
to 127.0.0.1 only) and N worker processes (`python -m playbook.load --worker`) generate the
load; thresholds are evaluated on the master's aggregated statistics.

Reports: reports/load/<run>/ holds locust_stats.csv (+ history, failures, exceptions),
report.html (Locust's) and summary.json (every threshold with its limit and value, totals).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import importlib.util
import json
import logging
import operator
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

# Locust monkey-patches the standard library with gevent when imported; nothing above
# imports ssl, so the patching is complete.
import gevent
import locust
import locust.stats
from locust.env import Environment
from locust.html import get_html_report
from locust.runners import STATE_STOPPED, MasterRunner, Runner
from locust.stats import StatsEntry
from locust.util.load_locustfile import is_user_class

from playbook import config as profiles
from playbook import paths

ROOT = paths.ROOT
EXIT_PASSED, EXIT_FAILED, EXIT_ERROR = 0, 1, 2
WORKER_CONNECT_SECONDS = 30.0


class LoadError(Exception):
    """The run cannot be made. One sentence; `playbook load` exits 2 with it."""


# --- thresholds -----------------------------------------------------------------------------

# metric -> aggregations it accepts and the unit of its value
METRICS: dict[str, tuple[str, ...]] = {
    "http_req_duration": ("p(N)", "avg", "med", "min", "max"),
    "http_req_failed": ("rate",),
    "checks": ("rate",),
    "http_reqs": ("rate", "count"),
}
_KEY = re.compile(r"^\s*(?P<metric>[a-z_]+)\s*(?:\{\s*name\s*:\s*(?P<name>[^}]*?)\s*\})?\s*$")
_EXPR = re.compile(r"^\s*(?P<agg>p\(\s*(?P<pct>\d+(?:\.\d+)?)\s*\)|avg|med|min|max|rate|count)"
                   r"\s*(?P<op><=|>=|==|<|>)\s*(?P<limit>-?\d+(?:\.\d+)?)\s*$")
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq}


@dataclass(frozen=True)
class Threshold:
    key: str  # as written: "http_req_duration{name:/api/health}"
    expr: str  # as written: "p(95)<2000"
    metric: str
    endpoint: str | None  # None: every request
    agg: str  # "p(95)", "avg", "rate", ...
    op: str
    limit: float

    @property
    def percentile(self) -> float | None:
        return float(self.agg[2:-1]) / 100 if self.agg.startswith("p(") else None

    @property
    def judged_at_end_only(self) -> bool:
        # A lower bound on the request count or rate can only be judged on the whole run.
        return self.metric == "http_reqs" and self.op in (">", ">=", "==")


def parse_thresholds(spec: dict[str, list[str]], endpoints: tuple[str, ...] | None,
                     where: str = "thresholds") -> list[Threshold]:
    """Parse k6-style thresholds; anything unknown raises LoadError naming it."""
    out = []
    for key, exprs in spec.items():
        m = _KEY.match(key)
        if not m:
            raise LoadError(f"{where}: {key!r} is not a threshold key; write a metric "
                            f"({', '.join(METRICS)}) optionally followed by {{name:/api/...}}")
        metric, endpoint = m.group("metric"), m.group("name")
        if metric not in METRICS:
            raise LoadError(f"{where}: unknown metric {metric!r} in {key!r} "
                            f"(known: {', '.join(METRICS)})")
        if endpoint is not None:
            if endpoints is None:
                raise LoadError(f"{where}: {key!r} selects an endpoint, but the locustfile "
                                "declares no ENDPOINTS to check it against")
            if endpoint not in endpoints:
                raise LoadError(f"{where}: unknown endpoint {endpoint!r} in {key!r} "
                                f"(the locustfile's requests: {', '.join(endpoints)})")
        if not exprs:
            raise LoadError(f"{where}: {key!r} has no threshold expressions")
        for expr in exprs:
            e = _EXPR.match(str(expr))
            if not e:
                raise LoadError(f"{where}: {key}: {expr!r} is not a threshold expression "
                                "(like \"p(95)<2000\", \"rate<0.01\", \"count>100\")")
            agg = e.group("agg").replace(" ", "")
            kind = "p(N)" if agg.startswith("p(") else agg
            if kind not in METRICS[metric]:
                raise LoadError(f"{where}: {key}: {agg!r} does not apply to {metric} "
                                f"(use {', '.join(METRICS[metric])})")
            if e.group("pct") is not None and not 0 < float(e.group("pct")) <= 100:
                raise LoadError(f"{where}: {key}: percentile {agg} is outside 0-100")
            out.append(Threshold(key.strip(), str(expr).strip(), metric, endpoint, agg,
                                 e.group("op"), float(e.group("limit"))))
    return out


@dataclass
class Outcome:
    threshold: Threshold
    value: float | None  # None: no data
    samples: int  # requests (or checks) the value is computed over
    passed: bool
    message: str

    def as_dict(self) -> dict[str, Any]:
        t = self.threshold
        return {"metric": t.key, "threshold": t.expr, "endpoint": t.endpoint, "aggregation": t.agg,
                "operator": t.op, "limit": t.limit, "value": self.value, "unit": _unit(t),
                "samples": self.samples, "passed": self.passed, "message": self.message}


def _unit(t: Threshold) -> str:
    if t.metric == "http_req_duration":
        return "ms"
    if t.metric == "http_reqs":
        return "req/s" if t.agg == "rate" else "requests"
    return "ratio"


def _fmt(t: Threshold, v: float) -> str:
    if t.metric == "http_req_duration":
        return f"{v:.0f} ms"
    if t.metric in ("http_req_failed", "checks"):
        return f"{v:.2%}"
    return f"{v:.2f} req/s" if t.agg == "rate" else f"{v:.0f} requests"


def _fmt_limit(t: Threshold) -> str:
    if t.metric in ("http_req_failed", "checks"):
        return f"{t.limit:.2%}"
    return _fmt(t, t.limit) if t.metric != "http_req_duration" else f"{t.limit:g} ms"


class Measure:
    """Reads threshold values from Locust's statistics (the master's, in distributed mode)."""

    def __init__(self, env: Environment, elapsed: float) -> None:
        self.env, self.elapsed = env, max(elapsed, 1e-9)

    def entry(self, endpoint: str | None) -> StatsEntry:
        stats = self.env.stats
        if endpoint is None:
            return stats.total
        matching = [e for (name, _), e in stats.entries.items() if name == endpoint]
        if len(matching) == 1:
            return matching[0]
        merged = StatsEntry(stats, endpoint, "", use_response_times_cache=False)
        for e in matching:
            merged.extend(e)
        return merged

    def checks(self, endpoint: str | None) -> tuple[int, int]:
        counts: dict[str, list[int]] = getattr(self.env, "checks", None) or {}
        rows = [counts.get(endpoint, [0, 0])] if endpoint else list(counts.values())
        return sum(r[0] for r in rows), sum(r[1] for r in rows)

    def value(self, t: Threshold) -> tuple[float | None, int]:
        if t.metric == "checks":
            passed, failed = self.checks(t.endpoint)
            n = passed + failed
            return (passed / n if n else None), n
        e = self.entry(t.endpoint)
        n = e.num_requests
        if t.metric == "http_reqs":
            return (n / self.elapsed if t.agg == "rate" else float(n)), n
        if n == 0:
            return None, 0
        if t.metric == "http_req_failed":
            return e.num_failures / n, n
        pct = t.percentile
        if pct is not None:
            return float(e.get_response_time_percentile(pct)), n
        return float({"avg": e.avg_response_time, "med": e.median_response_time,
                      "min": e.min_response_time or 0, "max": e.max_response_time}[t.agg]), n

    def judge(self, t: Threshold) -> Outcome:
        value, n = self.value(t)
        where = f"requests to {t.endpoint}" if t.endpoint else "requests"
        if value is None:
            what = "checks" if t.metric == "checks" else where
            return Outcome(t, None, 0, False, f"{t.key} {t.expr}: no data - no {what} were "
                           "made during the run")
        ok = _OPS[t.op](value, t.limit)
        if t.metric == "checks":
            seen = f"{_fmt(t, value)} of {n} checks on {t.endpoint or 'all endpoints'} passed"
        elif t.metric == "http_req_failed":
            seen = f"{_fmt(t, value)} of {n} {where} failed"
        elif t.metric == "http_reqs":
            seen = (f"{n} {where} in {self.elapsed:.1f} s = {_fmt(t, value)}" if t.agg == "rate"
                    else f"{n} {where}")
        else:
            seen = f"{t.agg} was {_fmt(t, value)} over {n} {where}"
        verdict = "passed" if ok else "FAILED"
        return Outcome(t, value, n, ok,
                       f"{t.key} {t.expr} {verdict}: {seen} (limit {t.op} {_fmt_limit(t)})")


# --- the locustfile ---------------------------------------------------------------------------


@dataclass
class Scenario:
    path: Path
    module: ModuleType
    user_classes: list[type]
    endpoints: tuple[str, ...] | None


def load_locustfile(path: str | Path) -> Scenario:
    p = Path(path)
    if not p.is_absolute():
        p = ROOT / p
    if not p.is_file():
        raise LoadError(f"locustfile {p} not found (load.locustfile in the profile)")
    name = "locustfile_" + re.sub(r"\W", "_", p.stem)
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(p):
        module = sys.modules[name]
    else:
        spec = importlib.util.spec_from_file_location(name, p)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as e:
            raise LoadError(f"locustfile {p} cannot be loaded: {type(e).__name__}: {e}") from None
    users = [v for v in vars(module).values() if is_user_class(v)]
    if not users:
        raise LoadError(f"locustfile {p} defines no User class")
    endpoints = getattr(module, "ENDPOINTS", None)
    return Scenario(p, module, users, tuple(endpoints) if endpoints is not None else None)


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Result:
    exit_code: int
    summary: dict[str, Any]
    run_dir: Path | None
    outcomes: list[Outcome] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _preflight(profile: profiles.Profile) -> None:
    """The target must answer HTTP at all before load starts: a dead target is exit 2."""
    from playbook.clients import Clients
    from playbook.probes import http as http_probe

    service = profile.service
    url = service.url(service.endpoints.health)
    with Clients(profile) as clients:
        obs = http_probe.get(clients.http, url)
    if obs.status is None:
        raise LoadError(f"the target is unreachable, no load was started: "
                        f"{obs.problem(expect_status=200)}")


def _plan(lp: profiles.LoadProfile) -> list[tuple[float, int, float]]:
    """(start second, users, spawn rate) steps; stages ramp linearly like k6's."""
    if not lp.stages:
        return [(0.0, lp.users, lp.spawn_rate)]
    steps, t, current = [], 0.0, 0
    for st in lp.stages:
        rate = abs(st.users - current) / st.duration if st.duration > 0 else float(st.users or 1)
        steps.append((t, st.users, max(rate, 0.01)))
        t, current = t + st.duration, st.users
    return steps


@dataclass(frozen=True)
class External:
    """Workers started elsewhere (Kubernetes: deploy/): wait for `count` of them on bind:port."""

    count: int
    bind: str = "127.0.0.1"
    port: int = 5557
    wait_seconds: float = 120.0


def run(profile: profiles.Profile, profile_name: str = "smoke", workers: int = 0,
        reports: Path | None = None, echo: Callable[[str], None] | None = None,
        external: External | None = None) -> Result:
    """Run one load profile and judge its thresholds. Never raises for a run that cannot be
    made: that is Result(exit_code=2) with the sentence in summary["error"]."""
    echo = echo or (lambda line: print(line, flush=True))
    try:
        return _run(profile, profile_name, workers, reports, echo, external)
    except LoadError as e:
        echo(f"load: {e}")
        return Result(EXIT_ERROR, {"profile": profile_name, "error": str(e), "passed": False,
                                   "exit_code": EXIT_ERROR}, None)


def _run(profile: profiles.Profile, name: str, workers: int, reports: Path | None,
         echo: Callable[[str], None], external: External | None) -> Result:
    section = profile.load
    if section is None:
        raise LoadError(f"profile {profile.name} ({profile.source}) has no `load` section")
    lp = section.profiles.get(name)
    if lp is None:
        raise LoadError(f"profile {profile.name} has no load profile {name!r} "
                        f"(known: {', '.join(section.profiles) or 'none'})")
    if lp.users < 0 or lp.duration() <= 0 or any(s.duration < 0 for s in lp.stages):
        raise LoadError(f"load profile {name!r}: users must be >= 0 and the run must last > 0 s")
    if workers < 0 or workers > 64:
        raise LoadError(f"--workers {workers}: use 0 (one process) to 64")
    if external is not None and (workers or not 1 <= external.count <= 1000):
        raise LoadError("--expect-workers N (1-1000) waits for workers started elsewhere; "
                        "it does not combine with --workers")
    scenario = load_locustfile(section.locustfile)
    thresholds = parse_thresholds(lp.thresholds, scenario.endpoints,
                                  f"load.profiles.{name}.thresholds")
    _preflight(profile)

    started = dt.datetime.now(dt.UTC)
    run_id = f"{started:%Y%m%dT%H%M%SZ}-{name}-{os.getpid()}"
    run_dir = paths.load_run(run_id, reports)
    run_dir.mkdir(parents=True, exist_ok=True)

    for user in scenario.user_classes:  # the profile's timeout, for every request
        user.network_timeout = user.connection_timeout = profile.service.timeout
    env = Environment(user_classes=scenario.user_classes, host=profile.service.base_url,
                      events=locust.events, stop_timeout=section.stop_timeout,
                      locustfile=str(scenario.path))
    env.playbook_runner = True  # the locustfile's standalone summary stays quiet
    procs: list[subprocess.Popen[bytes]] = []
    seen_by_master: dict[str, int] = {}
    duration = lp.duration()
    distributed = workers or (external.count if external else 0)
    connect_wait = external.wait_seconds if external else WORKER_CONNECT_SECONDS
    if distributed:
        bind = external.bind if external else "127.0.0.1"  # local workers: loopback only
        port = external.port if external else _free_port()
        try:
            runner: Runner = env.create_master_runner(bind, port)
        except Exception as e:  # the port is taken: zmq says so
            raise LoadError(f"the Locust master cannot listen on {bind}:{port}: {e}") from None

        def count_reports(client_id: str, data: dict[str, Any]) -> None:
            seen_by_master[client_id] = (seen_by_master.get(client_id, 0)
                                         + data["stats_total"]["num_requests"])

        env.events.worker_report.add_listener(count_reports)
    else:
        runner = env.create_local_runner()
    env.events.init.fire(environment=env, runner=runner, web_ui=None)
    if not hasattr(env, "checks"):
        env.checks = {}

    csv_writer = locust.stats.StatsCSVFileWriter(env, locust.stats.PERCENTILES_TO_REPORT,
                                                 str(run_dir / "locust"), full_history=False)
    csv_greenlet = gevent.spawn(csv_writer.stats_writer)
    # Workers may take a few seconds to start; the bound covers it, the stop and the reports.
    bound = duration + section.stop_timeout + 10 + (connect_wait if distributed else 0)
    aborted: str | None = None
    t0 = time.monotonic()
    try:
        if distributed:
            deadline = bound + 10  # a worker outlives no master: it exits on its own
            for i in range(workers):
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "playbook.load", "--worker", "--master-port",
                     str(port), "--locustfile", str(scenario.path), "--timeout",
                     str(profile.service.timeout), "--deadline", str(deadline),
                     "--report", str(run_dir / f"worker-{i}.json")],
                    cwd=ROOT, stdin=subprocess.DEVNULL))
            assert isinstance(runner, MasterRunner)
            if external:
                echo(f"load: waiting for {distributed} Locust workers on {bind}:{port} "
                     f"(up to {connect_wait:g} s)")
            limit = time.monotonic() + connect_wait
            while runner.worker_count < distributed:
                if time.monotonic() > limit or any(p.poll() is not None for p in procs):
                    raise LoadError(f"only {runner.worker_count} of {distributed} Locust "
                                    f"workers connected to the master on {bind}:{port} within "
                                    f"{connect_wait:g} s")
                gevent.sleep(0.1)
        echo(f"load: profile {name} against {profile.service.base_url}: "
             f"{_describe(lp)}, {len(thresholds)} thresholds"
             + (f", {distributed} workers" if distributed else ""))
        t0 = time.monotonic()  # the load phase starts now (workers are connected)
        aborted = _drive(env, runner, lp, thresholds, section.progress_every, name, echo)
    finally:
        elapsed = time.monotonic() - t0
        _stop(env, runner, procs, section.stop_timeout)
        gevent.kill(csv_greenlet)
    measure = Measure(env, elapsed)
    outcomes = [measure.judge(t) for t in thresholds]
    passed = all(o.passed for o in outcomes) and aborted is None
    code = EXIT_PASSED if passed else EXIT_FAILED

    files = _write_reports(env, csv_writer, run_dir)
    worker_reports = []
    for i, _ in enumerate(procs):
        f = run_dir / f"worker-{i}.json"
        worker_reports.append(json.loads(f.read_text()) if f.is_file() else
                              {"worker": i, "error": "the worker wrote no report"})
    total = env.stats.total
    passed_checks, failed_checks = measure.checks(None)
    summary = {
        "run": run_id, "profile": name, "environment": profile.name,
        "target": profile.service.base_url, "locustfile": str(scenario.path),
        "workers": distributed, "started": started.isoformat(timespec="seconds"),
        "planned_seconds": duration, "bound_seconds": bound,
        "duration_seconds": round(elapsed, 3), "aborted": aborted is not None,
        "abort_reason": aborted, "passed": passed, "exit_code": code,
        "load_profile": asdict(lp),
        "totals": _totals(total, elapsed, passed_checks, failed_checks),
        "endpoints": {
            n: _totals(measure.entry(n), elapsed, *measure.checks(n))
            for n in sorted({k[0] for k in env.stats.entries})},
        "thresholds": [o.as_dict() for o in outcomes],
        "worker_reports": worker_reports,
        "requests_seen_by_master_per_worker": seen_by_master,
        "files": files,
    }
    # Errors in the locustfile's own code (not failed requests): Locust logs them; say so.
    errors = [{"count": e["count"], "message": e["msg"]} for e in runner.exceptions.values()]
    summary["user_errors"] = errors
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if errors:
        echo(f"load: the locustfile raised {sum(e['count'] for e in errors)} errors "
             f"(first: {errors[0]['message']}); see report.html")
    for o in outcomes:
        echo(f"  {'ok  ' if o.passed else 'FAIL'} {o.message}")
    t = summary["totals"]
    echo(f"load: {'PASSED' if passed else 'FAILED'} - {t['requests']} requests, "
         f"{t['failures']} failed, {t['rps']:.1f} req/s, p95 {t['p95_ms']} ms, "
         f"{elapsed:.1f} s" + (f"; aborted: {aborted}" if aborted else ""))
    echo(f"load: reports in {run_dir}")
    return Result(code, summary, run_dir, outcomes)


def _describe(lp: profiles.LoadProfile) -> str:
    if lp.stages:
        return "stages " + ", ".join(f"{s.users} users/{s.duration:g}s" for s in lp.stages)
    return f"{lp.users} users for {lp.run_time:g} s"


def _drive(env: Environment, runner: Runner, lp: profiles.LoadProfile,
           thresholds: list[Threshold], progress_every: float, name: str,
           echo: Callable[[str], None]) -> str | None:
    """Start, follow the plan, print progress, judge thresholds; return the abort reason."""
    plan, duration = _plan(lp), lp.duration()
    t0 = time.monotonic()
    step, next_progress, next_eval = 0, t0 + progress_every, t0 + lp.abort_grace_seconds
    while True:
        now = time.monotonic()
        elapsed = now - t0
        if elapsed >= duration:
            return None
        while step < len(plan) and plan[step][0] <= elapsed:
            _, users, rate = plan[step]
            runner.start(users, rate)
            step += 1
        if now >= next_progress:
            next_progress = now + progress_every
            echo(_progress_line(env, runner, name, elapsed, duration))
        if lp.abort_on_fail and now >= next_eval:
            next_eval = now + 1.0
            measure = Measure(env, elapsed)
            for t in thresholds:
                if t.judged_at_end_only:
                    continue
                o = measure.judge(t)
                if o.value is not None and not o.passed:
                    reason = (f"threshold {t.key} {t.expr} breached after {elapsed:.1f} s "
                              f"(abort_on_fail, grace {lp.abort_grace_seconds:g} s): "
                              f"{o.message}")
                    echo(f"load: ABORTED - {reason}")
                    return reason
        gevent.sleep(min(0.2, max(0.0, duration - elapsed)))


def _progress_line(env: Environment, runner: Runner, name: str, elapsed: float,
                   duration: float) -> str:
    total = env.stats.total
    fails = total.num_failures / total.num_requests if total.num_requests else 0.0
    passed, failed = Measure(env, elapsed).checks(None)
    checks = f"{passed / (passed + failed):.1%}" if passed + failed else "-"
    p95 = total.get_response_time_percentile(0.95) if total.num_requests else 0
    return (f"load {name} {elapsed:5.0f}s/{duration:g}s  users {runner.user_count:>3}  "
            f"rps {total.current_rps:6.1f}  p95 {p95:>5} ms  failed {fails:.1%} "
            f"({total.num_failures}/{total.num_requests})  checks {checks}")


def _stop(env: Environment, runner: Runner, procs: list[subprocess.Popen[bytes]],
          stop_timeout: float) -> None:
    """Stop users, collect the workers' last statistics, end every process we started."""
    if isinstance(runner, MasterRunner):
        from locust.rpc import Message

        # quit, not stop: each worker kills its users, sends a final report, exits.
        runner.stop(send_stop_to_client=False)
        for client in list(runner.clients.all):
            runner.server.send_to_client(Message("quit", None, client.id))
        limit = time.monotonic() + stop_timeout
        while time.monotonic() < limit:
            # ours: until the processes exit; others' (--expect-workers): until they said quit
            if not any(p.poll() is None for p in procs) and (procs or not runner.clients):
                break
            gevent.sleep(0.1)
        gevent.sleep(0.3)  # let the master's receive loop take the last reports in
        runner.greenlet.kill(block=True)
    else:
        runner.quit()
    for p in procs:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=2)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=2)
    if isinstance(runner, MasterRunner) and runner.state != STATE_STOPPED:
        runner.update_state(STATE_STOPPED)


def _totals(e: StatsEntry, elapsed: float, checks_passed: int, checks_failed: int
            ) -> dict[str, Any]:
    n = e.num_requests
    checks = checks_passed + checks_failed
    return {"requests": n, "failures": e.num_failures,
            "failure_rate": e.num_failures / n if n else None,
            "rps": n / elapsed if elapsed > 0 else 0.0,
            "avg_ms": round(e.avg_response_time, 1) if n else None,
            "p50_ms": e.get_response_time_percentile(0.5) if n else None,
            "p95_ms": e.get_response_time_percentile(0.95) if n else None,
            "p99_ms": e.get_response_time_percentile(0.99) if n else None,
            "max_ms": e.max_response_time if n else None,
            "checks_passed": checks_passed, "checks_failed": checks_failed,
            "check_pass_rate": checks_passed / checks if checks else None}


def _write_reports(env: Environment, writer: locust.stats.StatsCSVFileWriter,
                   run_dir: Path) -> dict[str, str]:
    # The periodic CSV writer runs once a second and misses the end: write the final tables.
    writer.close_files()
    for suffix, fill in (("stats", writer.requests_csv), ("failures", writer.failures_csv),
                         ("exceptions", writer.exceptions_csv)):
        with open(run_dir / f"locust_{suffix}.csv", "w", newline="") as f:
            fill(csv.writer(f))
    html = run_dir / "report.html"
    html.write_text(get_html_report(env, show_download_link=False), encoding="utf-8")
    names = ["report.html", "summary.json", "locust_stats.csv", "locust_stats_history.csv",
             "locust_failures.csv", "locust_exceptions.csv"]
    return {n: str(run_dir / n) for n in names}


# --- a worker process (`--workers N`) -----------------------------------------------------------


def _worker_main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING)
    scenario = load_locustfile(args.locustfile)
    for user in scenario.user_classes:
        user.network_timeout = user.connection_timeout = args.timeout
    env = Environment(user_classes=scenario.user_classes, events=locust.events)
    counted = {"requests": 0, "failures": 0}

    def count(exception: BaseException | None = None, **_: Any) -> None:
        counted["requests"] += 1
        if exception is not None:
            counted["failures"] += 1

    env.events.request.add_listener(count)
    runner = env.create_worker_runner("127.0.0.1", args.master_port)
    env.events.init.fire(environment=env, runner=runner, web_ui=None)
    runner.greenlet.join(timeout=args.deadline)
    Path(args.report).write_text(json.dumps({"worker": args.report.rsplit("-", 1)[-1][:-5],
                                             "pid": os.getpid(), **counted}) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m playbook.load",
                                description="a Locust worker for `playbook load --workers N`")
    p.add_argument("--worker", action="store_true", required=True)
    p.add_argument("--master-port", type=int, required=True)
    p.add_argument("--locustfile", required=True)
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--deadline", type=float, required=True, help="exit after this many seconds")
    p.add_argument("--report", required=True, help="where to write this worker's own counts")
    args = p.parse_args(argv)
    return _worker_main(args)


if __name__ == "__main__":
    sys.exit(main())
