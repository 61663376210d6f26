"""Reading a security incident out of the backend's logs (playbook "Security Incidents (P0)"):

    kubectl logs -l app=security-dashboard-backend --since=1h |
      grep -E '(failed|unauthorized|breach|attack)' > security-events.log
    grep 'authentication_failed' security-events.log | tail -10

Pure functions over log lines: which lines are suspicious, the densest burst of them, and the
source addresses of the structured events (the backend logs failed logins as JSON lines
{"time", "event": "authentication_failed", "user", "source", "reason"}).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the kubernetes client is slow to import; only the type is needed here
    from playbook.probes.kube import LogLine

from playbook.probes.http import USER_AGENT


@dataclass(frozen=True)
class Burst:
    count: int  # suspicious lines within the window
    start: dt.datetime | None
    end: dt.datetime | None
    window_seconds: float


def suspicious(lines: list[LogLine], pattern: str) -> list[LogLine]:
    """The playbook's `grep -E pattern` (case-sensitive, like grep), less the events the
    suite's own probes of the admin endpoints caused (their user agent is the suite's)."""
    rx = re.compile(pattern)
    return [line for line in lines if rx.search(line.text)
            and (event(line) or {}).get("agent") != USER_AGENT]


def densest(lines: list[LogLine], window_seconds: float) -> Burst:
    """The most lines within any `window_seconds` (a sliding window over their timestamps);
    lines without a timestamp cannot be placed and are left out."""
    times = sorted(line.time for line in lines if line.time is not None)
    best, best_at, lo = 0, 0, 0
    for hi, t in enumerate(times):
        while (t - times[lo]).total_seconds() > window_seconds:
            lo += 1
        if hi - lo + 1 > best:
            best, best_at = hi - lo + 1, lo
    if not best:
        return Burst(0, None, None, window_seconds)
    return Burst(best, times[best_at], times[best_at + best - 1], window_seconds)


def event(line: LogLine) -> dict[str, Any] | None:
    """The structured event of a JSON line, else None."""
    text = line.text.strip()
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) and "event" in data else None


def sources(lines: list[LogLine], kind: str = "authentication_failed") -> Counter[str]:
    """Source address -> number of events of this kind."""
    found: Counter[str] = Counter()
    for line in lines:
        ev = event(line)
        if ev and ev.get("event") == kind and ev.get("source"):
            found[str(ev["source"])] += 1
    return found


def render(lines: list[LogLine]) -> str:
    """security-events.log: one line per event, `<time> <pod> <text>`."""
    return "".join(f"{line.time.isoformat() if line.time else '-'} {line.pod} {line.text}\n"
                   for line in lines)
