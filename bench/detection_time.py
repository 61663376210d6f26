"""Time from a backend outage to the alert firing and to the page arriving, against the floor
the monitoring's intervals set.

    .venv/bin/python bench/detection_time.py [--trials 5] [--profile PATH]

Without --profile it starts its own sandbox on free ports (playbook.sandbox.launch) and stops
it at the end; with --profile it uses a running sandbox. Each trial freezes every backend replica
(SIGSTOP: the supervisor would restart killed ones at once, so their scrapes fail only by
timing out, as a hung pod's would), then polls Prometheus's /api/v1/alerts and the sink every
20 ms, and resumes the replicas (SIGCONT) once the page arrived or the trial timed out.

The floor is read from the running system over its APIs, as a game day would: the scrape and
evaluation intervals (Prometheus /api/v1/status/config), the rule's `for` (/api/v1/rules), the
P0 route's group_wait (Alertmanager /api/v2/status).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playbook import config, queries  # noqa: E402
from playbook.clients import Clients  # noqa: E402
from playbook.probes import alertmanager as am_probe  # noqa: E402
from playbook.probes import prometheus as prom_probe  # noqa: E402
from playbook.probes.alertmanager import Alertmanager  # noqa: E402
from playbook.probes.prometheus import Prometheus, active_alerts  # noqa: E402
from playbook.sandbox import control  # noqa: E402
from playbook.sandbox.launch import start_sandbox, stop_sandbox  # noqa: E402

ALERT = "BackendDown"
POLL = 0.02


def floor_parts(prom: Prometheus, am: Alertmanager) -> dict[str, float]:
    """The intervals that bound detection, read from the running system's APIs."""
    parts = prom_probe.intervals(prom)
    route = am_probe.route_timing(am, {"alertname": ALERT, "severity": "P0"})
    duration = prom_probe.rule_for(prom, ALERT)
    if isinstance(parts, str) or isinstance(route, str) or duration is None:
        raise SystemExit(f"cannot read the floor: {parts} / {route} / for={duration}")
    return {**parts, "for": duration, "group_wait": route["group_wait"]}


def healthy(prom: Prometheus, profile: config.Profile, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        up = prom.query(f"min({queries.up(profile.prometheus.job)})").samples
        st = control.read_state(profile) or {}
        if (up and up[0].value == 1 and not active_alerts(prom.alerts(), ALERT)
                and all(p["ready"] for p in st.get("pods", []))):
            return
        time.sleep(0.2)
    raise SystemExit("the sandbox did not get healthy again within 60 s")


def trial(prom: Prometheus, am: Alertmanager, profile: config.Profile,
          timeout: float = 30) -> dict[str, Any]:
    pids = [p["pid"] for p in (control.read_state(profile) or {}).get("pods", []) if p["pid"]]
    out: dict[str, Any] = {"replicas": len(pids)}
    t0 = time.time()
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and "notified" not in out:
            alerts = prom.alerts()
            if "pending" not in out and active_alerts(alerts, ALERT):
                out["pending"] = time.time() - t0
            if "firing" not in out and active_alerts(alerts, ALERT, "firing"):
                out["firing"] = time.time() - t0
                out.setdefault("pending", out["firing"])
            got = am.received(contains=ALERT, path="/pagerduty/", since=t0)
            items = [n for n in (got.body or {}).get("received", [])
                     if n["body"].get("event_action") == "trigger"] if got.ok else []
            if items:
                out["notified"] = items[0]["received_at"] - t0
            time.sleep(POLL)
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--profile", help="a running sandbox's profile (default: start one)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    sb = None
    if args.profile:
        profile = config.load(args.profile)
    else:
        sb = start_sandbox(Path(tempfile.mkdtemp(prefix="bench-detect-")))
        profile = sb.profile
    assert profile.prometheus and profile.alertmanager
    results = []
    try:
        with Clients(profile) as clients:
            prom, am = clients.prometheus, clients.alertmanager
            parts = floor_parts(prom, am)
            for i in range(args.trials):
                healthy(prom, profile)
                r = trial(prom, am, profile)
                results.append(r)
                print(f"trial {i + 1}: " + ", ".join(
                    f"{k} {v:.2f} s" if isinstance(v, float) else f"{k} {v}"
                    for k, v in r.items()), flush=True)
    finally:
        if sb is not None:
            stop_sandbox(sb)
    floor = parts["scrape_interval"] + parts["evaluation_interval"] + parts["for"] + \
        parts["group_wait"]
    summary: dict[str, Any] = {"floor_parts": parts, "floor_seconds": floor,
                               "trials": results}
    print(f"\nfloor = scrape {parts['scrape_interval']:g} + evaluation "
          f"{parts['evaluation_interval']:g} + for {parts['for']:g} + group_wait "
          f"{parts['group_wait']:g} = {floor:g} s (scrape_timeout {parts['scrape_timeout']:g} s)")
    print("| stage | median | min | max | median / floor |\n|---|---|---|---|---|")
    for stage in ("pending", "firing", "notified"):
        vals = [r[stage] for r in results if stage in r]
        if not vals:
            print(f"| {stage} | - | - | - | never within 30 s |")
            continue
        med = statistics.median(vals)
        summary[stage] = {"median": med, "min": min(vals), "max": max(vals), "n": len(vals)}
        print(f"| {stage} | {med:.2f} s | {min(vals):.2f} s | {max(vals):.2f} s | "
              f"{med / floor:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
