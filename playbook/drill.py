"""Game-day drills: a fault, what must happen, how fast - measured on a timeline.

A drill runs: steady state holds? -> journal + inject -> wait for detection (alert pending,
firing; notification delivered) -> apply the runbook action -> wait for recovery -> revert ->
scorecard. Each wait has a deadline; a missed deadline fails the drill naming the stage
("detection: BackendDown did not fire within 60 s"). The fault is reverted whatever happens.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playbook.control.context import Context
from playbook.faults.base import Fault, FaultRefused, Journal, injected


class DrillFailed(AssertionError):
    def __init__(self, stage: str, message: str) -> None:
        super().__init__(f"{stage}: {message}")
        self.stage = stage


class DrillAborted(DrillFailed):
    pass


@dataclass
class Expect:
    """What a drill expects of detection, notification and recovery, with deadlines (s)."""

    alert: str | None = None  # alert name that must fire ("A|B": either)
    severity: str | None = None  # its severity label
    detect_within: float = 60.0
    receiver: str | None = None  # "pagerduty" | "slack": who must be told
    notify_within: float = 90.0
    no_page_for: float = 0.0  # a self-healing fault: no notification may arrive in this window
    notification_contains: str | None = None  # no alert: what the page carries, e.g.
    # "{probe_id}" (formatted with the fault's fields)
    recover_within: float = 60.0
    respond_within: float = 300.0  # playbook response time: injection to mitigation (or page)


@dataclass
class Watchers:
    """How a drill observes the world; built from the profile's probes."""

    # alert names ("A|B") -> ("inactive" | "pending" | "firing", the name seen in that state)
    alert_state: Callable[[str], tuple[str, str]]
    notifications: Callable[[str, str, float], list[dict[str, Any]]]
    # (receiver, alert name, since epoch) -> notifications that arrived
    healthy: Callable[[], str | None]  # None when the service is healthy, else why not
    user_errors: Callable[[], bool]  # one user-facing request: True if it failed
    # names of the alerts pending or firing now (a pending one may still fire: rate windows lag)
    active: Callable[[], list[str]] = lambda: []
    # (alert name, severity) -> the fastest detection the monitoring allows: scrape interval
    # + evaluation interval + the rule's `for` (+ the route's group_wait for the page)
    floor: Callable[[str, str], dict[str, float]] = lambda name, severity: {}


@dataclass
class Timeline:
    drill: str
    start: float = field(default_factory=time.time)
    events: list[dict[str, Any]] = field(default_factory=list)

    def mark(self, stage: str, detail: str = "") -> float:
        t = time.time()
        self.events.append({"stage": stage, "at": t, "t": round(t - self.start, 3),
                            "detail": detail})
        return t

    def at(self, stage: str) -> float | None:
        for e in self.events:
            if e["stage"] == stage:
                return e["at"]
        return None

    def between(self, a: str, b: str) -> float | None:
        ta, tb = self.at(a), self.at(b)
        return round(tb - ta, 3) if ta is not None and tb is not None else None


@dataclass
class Drill:
    name: str
    fault: Fault
    expect: Expect
    mitigate: Callable[[Context], str] | None = None  # the runbook action; returns what it did
    blast_error_budget: float = 1.0  # fraction of failing user requests tolerated ...
    blast_limit: float = 180.0  # ... for at most this long before aborting
    settle: float = 0.0  # wait this long for a steady state (e.g. after the previous drill)


class Timing:
    """A profile's game-day deadlines, divided by its time_scale (the sandbox runs its alert
    rules 60 times faster than production, and so do its drills)."""

    def __init__(self, g: Any) -> None:  # config.GameDay
        self.g = g
        self.scale = g.time_scale

    def __call__(self, seconds: float) -> float:
        return seconds / self.scale

    def expect(self, severity: str | None = None, **kw: Any) -> Expect:
        respond = {"P0": 300.0, "P1": 900.0}.get(severity or "", 3600.0)  # playbook 1.1
        base = dict(detect_within=self(self.g.detect_within),
                    notify_within=self(self.g.notify_within),
                    recover_within=self(self.g.recover_within),
                    respond_within=respond / self.g.response_scale, severity=severity)
        return Expect(**{**base, **kw})

    def drill(self, name: str, fault: Fault, expect: Expect,
              mitigate: Callable[[Context], str] | None = None) -> Drill:
        return Drill(name, fault, expect, mitigate,
                     blast_error_budget=self.g.blast_error_budget,
                     blast_limit=self.g.blast_limit_seconds,
                     settle=self(self.g.recover_within))


@dataclass
class Result:
    drill: str
    passed: bool
    failed_stage: str | None
    message: str
    timeline: Timeline
    metrics: dict[str, float | None]
    expect: Expect

    def to_dict(self) -> dict[str, Any]:
        return {"drill": self.drill, "passed": self.passed, "failed_stage": self.failed_stage,
                "message": self.message, "metrics": self.metrics,
                "expect": vars(self.expect), "timeline": self.timeline.events}


def wait_until(predicate: Callable[[], Any], timeout: float, stage: str, what: str,
               abort: threading.Event | None = None, period: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if abort is not None and abort.is_set():
            raise DrillAborted(stage, "aborted: user-facing errors exceeded the blast budget")
        if time.monotonic() >= deadline:
            raise DrillFailed(stage, f"{what} within {timeout:g} s")
        time.sleep(period)


class BlastGuard:
    """Probes user-facing traffic during a drill; sets `tripped` when errors stay above the
    budget for longer than the limit. Bounded: one request per period, stops with the drill."""

    def __init__(self, probe: Callable[[], bool], budget: float, limit: float,
                 period: float = 0.05, window: int = 40) -> None:
        # 20 user requests a second: the drill's own synthetic users (playbook: synthetic
        # transactions), so that error-rate alerts see real traffic, bounded by the drill.
        self.probe, self.budget, self.limit, self.period = probe, budget, limit, period
        self.window: list[bool] = []
        self.size = window
        self.tripped = threading.Event()
        self.stop = threading.Event()
        self.over_since: float | None = None
        self.thread = threading.Thread(target=self._run, daemon=True, name="blast-guard")

    def _run(self) -> None:
        while not self.stop.wait(self.period):
            self.window = ([*self.window, self.probe()])[-self.size:]
            rate = sum(self.window) / len(self.window)
            now = time.monotonic()
            if rate > self.budget:
                self.over_since = self.over_since or now
                if now - self.over_since > self.limit:
                    self.tripped.set()
                    return
            else:
                self.over_since = None

    def __enter__(self) -> BlastGuard:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


def run(drill: Drill, ctx: Context, journal: Journal, watch: Watchers) -> Result:
    """Run one drill end to end. Never leaves the fault injected."""
    tl = Timeline(drill.name)
    exp = drill.expect
    problem = _steady_state(watch, drill.settle)
    if problem:
        raise FaultRefused(f"steady state does not hold, nothing injected: {problem}")
    tl.mark("steady state", "checks green before injection")
    failed_stage, message = None, "passed"
    guard = BlastGuard(watch.user_errors, drill.blast_error_budget, drill.blast_limit)
    try:
        with guard, injected(drill.fault, ctx, journal, on_event=tl.mark):
            since = tl.at("injected") or time.time()
            if exp.alert:
                _detect(drill, watch, tl, guard.tripped)
            # "{probe_id}": a field of the fault, known once prepare() has run.
            marker = exp.alert or (exp.notification_contains or "").format(
                **drill.fault.params())
            if exp.receiver and marker:
                wait_until(lambda: watch.notifications(exp.receiver or "", marker, since),
                           exp.notify_within, "notification",
                           f"no {exp.receiver} notification for {marker} arrived",
                           guard.tripped)
                tl.mark("notification delivered", exp.receiver)
            if exp.no_page_for:
                _no_page(watch, since, exp.no_page_for, tl, guard.tripped)
            if drill.mitigate is not None:
                try:
                    did = drill.mitigate(ctx)
                except Exception as e:
                    raise DrillFailed("mitigation", f"the runbook action failed: "
                                                    f"{type(e).__name__}: {e}") from e
                tl.mark("mitigation applied", did)
            if drill.mitigate is not None or exp.no_page_for:
                wait_until(lambda: watch.healthy() is None, exp.recover_within, "recovery",
                           "the service did not recover (checks green)", guard.tripped)
                tl.mark("recovered")
    except DrillFailed as e:
        failed_stage, message = e.stage, str(e)
    if tl.at("recovered") is None and failed_stage is None:
        # Recovery counted after the revert (drills whose mitigation is the revert itself).
        try:
            wait_until(lambda: watch.healthy() is None, exp.recover_within, "recovery",
                       "the service did not recover after the fault was reverted")
            tl.mark("recovered", "after revert")
        except DrillFailed as e:
            failed_stage, message = e.stage, str(e)
    floors: dict[str, float] = {}
    if exp.alert:
        fired = next((e["detail"].split(" ")[0] for e in tl.events
                      if e["stage"] == "alert firing"), exp.alert.split("|")[0])
        floors = watch.floor(fired, exp.severity or "")
    metrics = {
        "detect_floor": floors.get("detect"),
        "notify_floor": floors.get("notify"),
        "time_to_detect": tl.between("injected", "alert firing"),
        "time_to_notify": tl.between("injected", "notification delivered"),
        "time_to_mitigate": tl.between("injected", "mitigation applied"),
        "time_to_recover": tl.between("injected", "recovered"),
    }
    responded = metrics["time_to_mitigate"] or metrics["time_to_notify"]
    if failed_stage is None and responded is not None and responded > exp.respond_within:
        failed_stage = "response time"
        message = (f"response time: the response came {responded:.1f} s after the fault, "
                   f"above the playbook's {exp.respond_within:g} s for {exp.severity}")
    return Result(drill.name, failed_stage is None, failed_stage, message, tl, metrics, exp)


def _steady_state(watch: Watchers, settle: float) -> str | None:
    """None once the service is healthy and no alert fires (waiting up to `settle` s for the
    previous drill's alerts to resolve), else what is wrong."""
    deadline = time.monotonic() + settle
    while True:
        problem = watch.healthy()
        if problem is None:
            active = watch.active()
            problem = (f"alert(s) pending or firing: {', '.join(sorted(set(active)))}"
                       if active else None)
        if problem is None or time.monotonic() >= deadline:
            return problem
        time.sleep(0.5)


def _detect(drill: Drill, watch: Watchers, tl: Timeline, abort: threading.Event) -> None:
    exp = drill.expect
    assert exp.alert is not None
    seen_pending = False

    def firing() -> str | None:
        nonlocal seen_pending
        state, name = watch.alert_state(exp.alert or "")
        if state == "pending" and not seen_pending:
            seen_pending = True
            tl.mark("alert pending", name)
        return name if state == "firing" else None

    name = wait_until(firing, exp.detect_within, "detection", f"{exp.alert} did not fire",
                      abort, period=0.1)
    if not seen_pending:
        tl.mark("alert pending", f"{name} (pending and firing seen together)")
    tl.mark("alert firing", f"{name} severity {exp.severity}")


def _no_page(watch: Watchers, since: float, window: float, tl: Timeline,
             abort: threading.Event) -> None:
    deadline = time.monotonic() + window
    while time.monotonic() < deadline:
        for receiver in ("pagerduty", "slack"):
            got = watch.notifications(receiver, "", since)
            if got:
                raise DrillFailed("false alarm", f"a {receiver} notification went out for a "
                                  f"self-healing fault: {_headline(got[0])}")
        if abort.is_set():
            raise DrillAborted("false alarm", "aborted: user-facing errors over budget")
        time.sleep(0.25)
    tl.mark("no page", f"no notification within {window:g} s")


def _headline(notification: dict[str, Any]) -> str:
    body = notification.get("body") or {}
    if isinstance(body, dict):
        summary = (body.get("payload") or {}).get("summary")
        titles = [a.get("title") for a in body.get("attachments") or [] if a.get("title")]
        if summary or titles:
            return str(summary or titles[0])
    return json.dumps(notification)[:300]


# --- scorecard ------------------------------------------------------------------------------


def scorecard(results: list[Result], out: Path, started: float) -> dict[str, Path]:
    """JSON, Markdown and an SVG timeline chart under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    data = {"started": started, "wall_seconds": round(time.time() - started, 1),
            "passed": all(r.passed for r in results),
            "drills": [r.to_dict() for r in results]}
    paths = {"json": out / "scorecard.json", "md": out / "scorecard.md",
             "svg": out / "timeline.svg"}
    paths["json"].write_text(json.dumps(data, indent=2, default=str) + "\n")
    paths["md"].write_text(_markdown(results, data))
    paths["svg"].write_text(_svg(results))
    return paths


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f} s"


def _markdown(results: list[Result], data: dict[str, Any]) -> str:
    lines = ["# Game-day scorecard", "",
             f"{sum(r.passed for r in results)}/{len(results)} drills passed; wall time "
             f"{data['wall_seconds']} s", "",
             "| drill | result | detect (floor) | notify (floor) | mitigate | recover | note |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        m = r.metrics
        lines.append(f"| {r.drill} | {'PASS' if r.passed else 'FAIL'} | "
                     f"{_fmt(m['time_to_detect'])} ({_fmt(m['detect_floor'])}) | "
                     f"{_fmt(m['time_to_notify'])} ({_fmt(m['notify_floor'])}) | "
                     f"{_fmt(m['time_to_mitigate'])} | {_fmt(m['time_to_recover'])} | "
                     f"{'' if r.passed else r.message} |")
    for r in results:
        lines += ["", f"## {r.drill}", ""]
        lines += [f"- {e['t']:7.2f} s  {e['stage']}" + (f" - {e['detail']}" if e["detail"]
                                                       else "") for e in r.timeline.events]
    return "\n".join(lines) + "\n"


COLOURS = {"injected": "#d9534f", "alert pending": "#f0ad4e", "alert firing": "#e65100",
           "notification delivered": "#00acc1", "mitigation applied": "#3949ab",
           "recovered": "#43a047", "reverted": "#777777", "no page": "#9ccc65"}


def _since_injection(r: Result) -> list[tuple[str, float]]:
    """(stage, seconds since the fault was injected) for the stages from injection on."""
    t0 = r.timeline.at("injected")
    if t0 is None:
        return []
    return [(e["stage"], e["at"] - t0) for e in r.timeline.events if e["at"] >= t0]


def _svg(results: list[Result]) -> str:
    width, row, left = 900, 46, 190
    longest = max([t for r in results for _, t in _since_injection(r)] + [1.0])
    scale = (width - left - 30) / longest
    h = row * len(results) + 70
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" '
             'font-family="sans-serif" font-size="11">',
             f'<rect width="{width}" height="{h}" fill="white"/>',
             '<text x="10" y="18" font-size="14" font-weight="bold">Game-day timeline '
             f'(seconds since injection, 0 to {longest:.0f} s)</text>']
    for i, r in enumerate(results):
        y = 40 + i * row
        colour = "#2e7d32" if r.passed else "#c62828"
        mark = "" if r.passed else " (FAIL)"
        parts.append(f'<text x="10" y="{y + 16}" fill="{colour}">{_esc(r.drill + mark)}</text>')
        points = _since_injection(r)
        end = max([t for _, t in points] + [0])
        parts.append(f'<rect x="{left}" y="{y + 6}" width="{max(end * scale, 1):.1f}" '
                     f'height="14" fill="#eeeeee"/>')
        for stage, t in points:
            x = left + t * scale
            c = COLOURS.get(stage, "#333")
            parts.append(f'<line x1="{x:.1f}" y1="{y + 2}" x2="{x:.1f}" y2="{y + 24}" '
                         f'stroke="{c}" stroke-width="3"><title>{_esc(stage)} at {t:.1f} s'
                         '</title></line>')
    x, ly = 10, h - 14
    for stage, c in COLOURS.items():
        parts.append(f'<rect x="{x}" y="{ly - 9}" width="10" height="10" fill="{c}"/>'
                     f'<text x="{x + 14}" y="{ly}">{_esc(stage)}</text>')
        x += 24 + 6 * len(stage)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
