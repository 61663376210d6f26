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
(no requests to that endpoint) fails (playbook/loadthresholds.py parses and judges them).
Latencies are Locust's, which rounds response times above 100 ms to 2 significant digits.

During the run every threshold is evaluated each second once `abort_grace_seconds` have passed
(k6's delayAbortEval); with `abort_on_fail` the first breach stops the run (k6's abortOnFail).
Lower bounds on http_reqs (rate>, count>) are only judged at the end: they depend on the whole
run. Statistics are cumulative since the start, as in k6.

Exit codes: 0 every threshold passed; 1 a threshold failed; 2 the run could not be made (bad
profile or threshold, target unreachable at start, workers did not connect).

`--workers N` runs Locust's distributed mode on this machine: this process is the master (bound
to 127.0.0.1 only) and N worker processes (`python -m playbook.load --worker`) generate the
load; thresholds are evaluated on the master's aggregated statistics.

The stages are the locustfile's LoadTestShape (playbook.loadclient.PlanShape), fed the run's
load plan (plan.json, also exported as PLAYBOOK_LOAD_PLAN to the workers); the same shape runs
under a plain `locust -f` and in deploy/.

`--find-capacity` steps users up (the profile's `load.capacity`) and judges the load profile's
thresholds on each step alone, until one breaks or a bound (users, steps, seconds) is reached;
the knee is the step with the highest req/s where every threshold passed.

Reports: reports/load/<run>/ holds locust_stats.csv (+ history, failures, exceptions),
report.html (Locust's, with its charts: the stats history runs), load.svg (p50/p95, req/s and
failures over time - or, for --find-capacity, over users - with the thresholds drawn),
plan.json and summary.json (every threshold with its limit and value, totals, the steps).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import importlib.util
import json
import logging
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
from locust.runners import STATE_STOPPED, STATE_STOPPING, MasterRunner, Runner
from locust.shape import LoadTestShape
from locust.stats import StatsEntry
from locust.util.load_locustfile import is_shape_class, is_user_class

from playbook import config as profiles
from playbook import loadchart, paths
from playbook.loadchart import COLORS, Mark
from playbook.loadplan import PLAN_VARIABLE, Plan, PlanShape
from playbook.loadthresholds import (
    LoadError,
    Measure,
    Outcome,
    Snapshot,
    Threshold,
    parse_thresholds,
)

ROOT = paths.ROOT
EXIT_PASSED, EXIT_FAILED, EXIT_ERROR = 0, 1, 2
WORKER_CONNECT_SECONDS = 30.0

# --- the locustfile ---------------------------------------------------------------------------


@dataclass
class Scenario:
    path: Path
    module: ModuleType
    user_classes: list[type]
    endpoints: tuple[str, ...] | None
    shapes: list[type[LoadTestShape]]

    def shape(self, plan: Plan) -> LoadTestShape:
        """The locustfile's LoadTestShape, following `plan` (the run's stages)."""
        if len(self.shapes) != 1:
            raise LoadError(f"locustfile {self.path} must define one LoadTestShape (`class "
                            f"Ramp(PlanShape)` from playbook.loadclient), it defines "
                            f"{len(self.shapes)}")
        shape = self.shapes[0]()
        if not isinstance(shape, PlanShape):
            raise LoadError(f"locustfile {self.path}: its shape {type(shape).__name__} does "
                            "not follow the load profile; derive it from "
                            "playbook.loadclient.PlanShape")
        shape.plan = plan
        return shape


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
    shapes = [v for v in vars(module).values() if is_shape_class(v)]
    return Scenario(p, module, users, tuple(endpoints) if endpoints is not None else None,
                    shapes)


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
    from playbook.probes import http as http_probe

    service = profile.service
    url = service.url(service.endpoints.health)
    # the service's client, with the TLS settings the load itself runs with
    verify: bool | str = (profile.load.ca_file or True) if profile.load and \
        profile.load.tls_verify else False
    with http_probe.http_client(service.timeout, verify=verify) as client:
        obs = http_probe.get(client, url)
    if obs.status is None:
        raise LoadError(f"the target is unreachable, no load was started: "
                        f"{obs.problem(expect_status=200)}")


@dataclass(frozen=True)
class External:
    """Workers started elsewhere (Kubernetes: deploy/): wait for `count` of them on bind:port."""

    count: int
    bind: str = "127.0.0.1"
    port: int = 5557
    wait_seconds: float = 120.0


def run(profile: profiles.Profile, profile_name: str = "smoke", workers: int = 0,
        reports: Path | None = None, echo: Callable[[str], None] | None = None,
        external: External | None = None, find_capacity: bool = False) -> Result:
    """Run one load profile and judge its thresholds (or, with find_capacity, step users up
    until one breaks). Never raises for a run that cannot be made: that is
    Result(exit_code=2) with the sentence in summary["error"]."""
    echo = echo or (lambda line: print(line, flush=True))
    try:
        setup = _prepare(profile, profile_name, workers, reports, external, find_capacity)
        if find_capacity:
            return _find_capacity(setup, echo)
        return _run(setup, echo)
    except LoadError as e:
        echo(f"load: {e}")
        return Result(EXIT_ERROR, {"profile": profile_name, "error": str(e), "passed": False,
                                   "exit_code": EXIT_ERROR}, None)


@dataclass
class Setup:
    """A run that can be made: checked inputs, its report directory and its plan."""

    profile: profiles.Profile
    section: profiles.Load
    name: str
    lp: profiles.LoadProfile
    scenario: Scenario
    thresholds: list[Threshold]
    workers: int
    external: External | None
    run_id: str
    run_dir: Path
    started: dt.datetime
    plan: Plan


def _prepare(profile: profiles.Profile, name: str, workers: int, reports: Path | None,
             external: External | None, find_capacity: bool) -> Setup:
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
    if find_capacity:
        _check_capacity(section.capacity)
    scenario = load_locustfile(section.locustfile)
    thresholds = parse_thresholds(lp.thresholds, scenario.endpoints,
                                  f"load.profiles.{name}.thresholds")
    if find_capacity and not thresholds:
        raise LoadError(f"--find-capacity needs thresholds: load profile {name!r} has none")
    _preflight(profile)

    started = dt.datetime.now(dt.UTC)
    kind = "capacity" if find_capacity else name
    run_id = f"{started:%Y%m%dT%H%M%SZ}-{kind}-{os.getpid()}"
    run_dir = paths.load_run(run_id, reports)
    run_dir.mkdir(parents=True, exist_ok=True)
    # The plan (stages, client settings) for the locustfile's shape and init listener, and for
    # the workers this process starts (they inherit the variable).
    plan = Plan.from_profile(profile, name)
    (run_dir / "plan.json").write_text(plan.to_json())
    os.environ[PLAN_VARIABLE] = str(run_dir / "plan.json")
    return Setup(profile, section, name, lp, scenario, thresholds, workers, external, run_id,
                 run_dir, started, plan)


def _check_capacity(c: profiles.LoadCapacity) -> None:
    if not (1 <= c.start_users <= c.max_users and c.step_users >= 1 and c.max_steps >= 1
            and c.step_seconds >= 1 and c.max_seconds >= c.step_seconds
            and c.max_users <= 10000 and c.max_steps <= 200):
        raise LoadError("load.capacity: need 1 <= start_users <= max_users <= 10000, "
                        "step_users >= 1, 1 <= max_steps <= 200, step_seconds >= 1 and "
                        "max_seconds >= step_seconds")


@dataclass
class Swarm:
    """One run's Locust: the environment and runner (master or local), the worker processes
    this process started, and the greenlets that keep the CSV files and the history."""

    env: Environment
    runner: Runner
    distributed: int
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    seen_by_master: dict[str, int] = field(default_factory=dict)
    csv_writer: Any = None
    greenlets: list[gevent.Greenlet] = field(default_factory=list)


def _swarm(setup: Setup, bound: float, echo: Callable[[str], None], shape: bool) -> Swarm:
    """Create the environment and runner, start and wait for workers. Bounded by `bound`."""
    profile, section, workers, external = setup.profile, setup.section, setup.workers, \
        setup.external
    env = Environment(user_classes=setup.scenario.user_classes, host=profile.service.base_url,
                      events=locust.events, stop_timeout=section.stop_timeout,
                      locustfile=str(setup.scenario.path),
                      shape_class=setup.scenario.shape(setup.plan) if shape else None)
    env.playbook_runner = True  # the locustfile's standalone summary stays quiet
    distributed = workers or (external.count if external else 0)
    connect_wait = external.wait_seconds if external else WORKER_CONNECT_SECONDS
    bind = external.bind if external else "127.0.0.1"  # local workers: loopback only
    port = external.port if external else _free_port()
    if distributed:
        try:
            runner: Runner = env.create_master_runner(bind, port)
        except Exception as e:  # the port is taken: zmq says so
            raise LoadError(f"the Locust master cannot listen on {bind}:{port}: {e}") from None
    else:
        runner = env.create_local_runner()
    swarm = Swarm(env, runner, distributed)
    if distributed:
        def count_reports(client_id: str, data: dict[str, Any]) -> None:
            swarm.seen_by_master[client_id] = (swarm.seen_by_master.get(client_id, 0)
                                               + data["stats_total"]["num_requests"])

        env.events.worker_report.add_listener(count_reports)
    env.events.init.fire(environment=env, runner=runner, web_ui=None)
    if not hasattr(env, "checks"):
        env.checks = {}
    swarm.csv_writer = locust.stats.StatsCSVFileWriter(
        env, locust.stats.PERCENTILES_TO_REPORT, str(setup.run_dir / "locust"),
        full_history=False)
    # Locust's stats history (the HTML report's charts and our picture): a point a second for
    # runs up to 10 minutes, ~600 points for longer ones.
    locust.stats.HISTORY_STATS_INTERVAL_SEC = max(1, round(bound / 600))
    swarm.greenlets = [gevent.spawn(swarm.csv_writer.stats_writer),
                       gevent.spawn(locust.stats.stats_history, runner)]
    if distributed:
        deadline = bound + connect_wait + 10  # a worker outlives no master: it exits on its own
        for i in range(workers):
            swarm.procs.append(subprocess.Popen(
                [sys.executable, "-m", "playbook.load", "--worker", "--master-port", str(port),
                 "--locustfile", str(setup.scenario.path), "--deadline", str(deadline),
                 "--report", str(setup.run_dir / f"worker-{i}.json")],
                cwd=ROOT, stdin=subprocess.DEVNULL))
        assert isinstance(runner, MasterRunner)
        if external:
            echo(f"load: waiting for {distributed} Locust workers on {bind}:{port} "
                 f"(up to {connect_wait:g} s)")
        limit = time.monotonic() + connect_wait
        while runner.worker_count < distributed:
            if time.monotonic() > limit or any(p.poll() is not None for p in swarm.procs):
                _end(swarm, section.stop_timeout)
                raise LoadError(f"only {runner.worker_count} of {distributed} Locust "
                                f"workers connected to the master on {bind}:{port} within "
                                f"{connect_wait:g} s")
            gevent.sleep(0.1)
    return swarm


def _end(swarm: Swarm, stop_timeout: float) -> None:
    try:
        _stop(swarm.env, swarm.runner, swarm.procs, stop_timeout)
    finally:
        for g in swarm.greenlets:
            g.kill(block=False)


def _run(setup: Setup, echo: Callable[[str], None]) -> Result:
    section, lp, name, thresholds = setup.section, setup.lp, setup.name, setup.thresholds
    duration = lp.duration()
    # The stop and the reports; workers (ours or elsewhere) may take a while to connect.
    bound = duration + section.stop_timeout + 10
    swarm = _swarm(setup, bound, echo, shape=True)
    env, runner = swarm.env, swarm.runner
    aborted: str | None = None
    t0 = time.monotonic()
    try:
        echo(f"load: profile {name} against {setup.profile.service.base_url}: "
             f"{_describe(lp)}, {len(thresholds)} thresholds"
             + (f", {swarm.distributed} workers" if swarm.distributed else ""))
        t0 = time.monotonic()  # the load phase starts now (workers are connected)
        aborted = _drive(env, runner, lp, thresholds, section.progress_every, name, echo)
    finally:
        elapsed = time.monotonic() - t0
        _end(swarm, section.stop_timeout)
    measure = Measure(env, elapsed)
    outcomes = [measure.judge(t) for t in thresholds]
    passed = all(o.passed for o in outcomes) and aborted is None
    code = EXIT_PASSED if passed else EXIT_FAILED

    summary = _summary(setup, swarm, measure, elapsed, bound)
    summary.update({"aborted": aborted is not None, "abort_reason": aborted, "passed": passed,
                    "exit_code": code, "thresholds": [o.as_dict() for o in outcomes]})
    title = (f"playbook load {name} against {setup.profile.service.base_url}: "
             f"{'PASSED' if passed else 'FAILED'}")
    _write_reports(setup, swarm, summary, title, echo)
    for o in outcomes:
        echo(f"  {'ok  ' if o.passed else 'FAIL'} {o.message}")
    t = summary["totals"]
    echo(f"load: {'PASSED' if passed else 'FAILED'} - {t['requests']} requests, "
         f"{t['failures']} failed, {t['rps']:.1f} req/s, p95 {t['p95_ms']} ms, "
         f"{elapsed:.1f} s" + (f"; aborted: {aborted}" if aborted else ""))
    echo(f"load: reports in {setup.run_dir}")
    return Result(code, summary, setup.run_dir, outcomes)


def _summary(setup: Setup, swarm: Swarm, measure: Measure, elapsed: float, bound: float
             ) -> dict[str, Any]:
    env, run_dir = swarm.env, setup.run_dir
    worker_reports = []
    for i, _ in enumerate(swarm.procs):
        f = run_dir / f"worker-{i}.json"
        worker_reports.append(json.loads(f.read_text()) if f.is_file() else
                              {"worker": i, "error": "the worker wrote no report"})
    passed_checks, failed_checks = measure.checks(None)
    # Errors in the locustfile's own code (not failed requests): Locust logs them; say so.
    errors = [{"count": e["count"], "message": e["msg"]}
              for e in swarm.runner.exceptions.values()]
    return {
        "run": setup.run_id, "profile": setup.name, "environment": setup.profile.name,
        "target": setup.profile.service.base_url, "locustfile": str(setup.scenario.path),
        "client": setup.plan.client, "workers": swarm.distributed,
        "started": setup.started.isoformat(timespec="seconds"),
        "planned_seconds": setup.lp.duration(), "bound_seconds": bound,
        "duration_seconds": round(elapsed, 3), "load_profile": asdict(setup.lp),
        "totals": _totals(env.stats.total, elapsed, passed_checks, failed_checks),
        "endpoints": {
            n: _totals(measure.entry(n), elapsed, *measure.checks(n))
            for n in sorted({k[0] for k in env.stats.entries})},
        "worker_reports": worker_reports,
        "requests_seen_by_master_per_worker": swarm.seen_by_master,
        "user_errors": errors,
    }


def _describe(lp: profiles.LoadProfile) -> str:
    if lp.stages:
        return "stages " + ", ".join(f"{s.users} users/{s.duration:g}s" for s in lp.stages)
    return f"{lp.users} users for {lp.run_time:g} s"


def _drive(env: Environment, runner: Runner, lp: profiles.LoadProfile,
           thresholds: list[Threshold], progress_every: float, name: str,
           echo: Callable[[str], None]) -> str | None:
    """Start the shape (the profile's stages), print progress, judge thresholds; return the
    abort reason."""
    duration = lp.duration()
    t0 = time.monotonic()
    runner.start_shape()
    next_progress, next_eval = t0 + progress_every, t0 + lp.abort_grace_seconds
    while True:
        now = time.monotonic()
        elapsed = now - t0
        if elapsed >= duration or runner.state in (STATE_STOPPING, STATE_STOPPED):
            return None
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


# --- the capacity finder ----------------------------------------------------------------------


def _find_capacity(setup: Setup, echo: Callable[[str], None]) -> Result:
    """Step users up (start_users, +step_users every step_seconds) until a threshold of the
    load profile breaks in a step, or max_users, max_steps or max_seconds is reached. The knee
    is the step with the highest req/s in which every threshold passed."""
    c, section = setup.section.capacity, setup.section
    bound = min(c.max_seconds, c.max_steps * c.step_seconds) + section.stop_timeout + 10
    swarm = _swarm(setup, bound, echo, shape=False)
    env, runner = swarm.env, swarm.runner
    steps: list[dict[str, Any]] = []
    stopped = ""
    t0 = time.monotonic()
    echo(f"load: finding the capacity of {setup.profile.service.base_url} with load profile "
         f"{setup.name}'s {len(setup.thresholds)} thresholds: {c.start_users} users, "
         f"+{c.step_users} every {c.step_seconds:g} s, up to {c.max_users} users, "
         f"{c.max_steps} steps, {c.max_seconds:g} s")
    try:
        users = c.start_users
        for number in range(1, c.max_steps + 1):
            if time.monotonic() - t0 + c.step_seconds > c.max_seconds:
                stopped = f"max_seconds ({c.max_seconds:g} s) reached"
                break
            step_t = time.monotonic() - t0
            rate = max(float(c.step_users), users / 2.0)  # each step is reached in ~1-2 s
            runner.start(users, rate)
            settle = min(c.step_seconds / 3, max(1.0, (users - (steps[-1]["users"] if steps
                                                                  else 0)) / rate))
            gevent.sleep(settle)  # measure once the step's users are running
            before, w0 = Snapshot(env), time.monotonic()
            gevent.sleep(max(0.0, c.step_seconds - settle))
            window = time.monotonic() - w0
            measure = Measure(env, window, since=before)
            outcomes = [measure.judge(t) for t in setup.thresholds]
            e = measure.entry(None)
            step = {"step": number, "users": users, "started_second": round(step_t, 1),
                    "window_seconds": round(window, 2), "requests": e.num_requests,
                    "rps": round(e.num_requests / window, 2),
                    "p50_ms": e.get_response_time_percentile(0.5) if e.num_requests else None,
                    "p95_ms": e.get_response_time_percentile(0.95) if e.num_requests else None,
                    "failure_rate": e.num_failures / e.num_requests if e.num_requests else None,
                    "passed": all(o.passed for o in outcomes),
                    "thresholds": [o.as_dict() for o in outcomes]}
            steps.append(step)
            broken = [o.message for o in outcomes if not o.passed]
            echo(f"load capacity step {number}: {users:>4} users  {step['rps']:8.1f} req/s  "
                 f"p95 {step['p95_ms']} ms  "
                 + ("ok" if not broken else f"BROKEN: {broken[0]}"))
            if broken:
                stopped = f"step {number} ({users} users) broke {broken[0]}"
                break
            if users >= c.max_users:
                stopped = f"max_users ({c.max_users}) reached with every threshold passing"
                break
            users = min(users + c.step_users, c.max_users)
        else:
            stopped = f"max_steps ({c.max_steps}) reached with every threshold passing"
    finally:
        elapsed = time.monotonic() - t0
        _end(swarm, section.stop_timeout)
    passing = [s for s in steps if s["passed"]]
    knee = max(passing, key=lambda s: s["rps"]) if passing else None
    code = EXIT_PASSED if knee else EXIT_FAILED
    measure = Measure(env, elapsed)
    summary = _summary(setup, swarm, measure, elapsed, bound)
    summary.update({"mode": "capacity", "passed": knee is not None, "exit_code": code,
                    "aborted": False, "abort_reason": None, "capacity": {
                        "knee": knee, "steps": steps, "stopped_because": stopped,
                        "bounds": asdict(c)},
                    # the knee's thresholds, for the picture's lines
                    "thresholds": (knee or (steps[0] if steps else {})).get("thresholds", [])})
    if knee:
        verdict = (f"capacity {knee['rps']:.1f} req/s at {knee['users']} users "
                   f"(step {knee['step']}, p95 {knee['p95_ms']} ms)")
    else:
        verdict = "no capacity: the first step already broke a threshold" if steps else \
            "no capacity measured: no step ran"
    picture = [Mark(float(knee["users"]), f"knee {knee['rps']:.0f} req/s", COLORS["knee"])
               ] if knee else []
    picture += [Mark(float(s["users"]), "broke", COLORS["broken"]) for s in steps
                if not s["passed"]]
    _write_reports(setup, swarm, summary, f"playbook load --find-capacity: {verdict}", echo,
                   picture, capacity_steps=steps)
    echo(f"load: {verdict}; stopped: {stopped}")
    echo(f"load: reports in {setup.run_dir}")
    return Result(code, summary, setup.run_dir, [])


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


def _write_reports(setup: Setup, swarm: Swarm, summary: dict[str, Any], title: str,
                   echo: Callable[[str], None], marks: list[Mark] | None = None,
                   capacity_steps: list[dict[str, Any]] | None = None) -> None:
    """Locust's CSV tables and HTML report (with its charts), the picture, summary.json."""
    env, writer, run_dir = swarm.env, swarm.csv_writer, setup.run_dir
    # The periodic CSV writer runs once a second and misses the end: write the final tables.
    writer.close_files()
    for suffix, fill in (("stats", writer.requests_csv), ("failures", writer.failures_csv),
                         ("exceptions", writer.exceptions_csv)):
        with open(run_dir / f"locust_{suffix}.csv", "w", newline="") as f:
            fill(csv.writer(f))
    html = run_dir / "report.html"
    html.write_text(get_html_report(env, show_download_link=False), encoding="utf-8")
    history = env.stats.history
    picture = (loadchart.svg(loadchart.capacity_points(capacity_steps), summary["thresholds"],
                             title, marks or [], x_unit="users") if capacity_steps is not None
               else loadchart.svg(loadchart.points(history), summary["thresholds"], title,
                                  marks or []))
    (run_dir / "load.svg").write_text(picture, encoding="utf-8")
    names = ["report.html", "load.svg", "summary.json", "plan.json", "locust_stats.csv",
             "locust_stats_history.csv", "locust_failures.csv", "locust_exceptions.csv"]
    summary["history_points"] = len(history)
    summary["files"] = {n: str(run_dir / n) for n in names}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    errors = summary["user_errors"]
    if errors:
        echo(f"load: the locustfile raised {sum(e['count'] for e in errors)} errors "
             f"(first: {errors[0]['message']}); see report.html")


# --- a worker process (`--workers N`) -----------------------------------------------------------


def _worker_main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING)
    scenario = load_locustfile(args.locustfile)  # its init listener reads PLAYBOOK_LOAD_PLAN
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
    p.add_argument("--deadline", type=float, required=True, help="exit after this many seconds")
    p.add_argument("--report", required=True, help="where to write this worker's own counts")
    args = p.parse_args(argv)
    return _worker_main(args)


if __name__ == "__main__":
    sys.exit(main())
