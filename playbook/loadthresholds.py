"""k6-style thresholds for `playbook load` (the syntax: playbook/load.py's docstring), judged on
Locust's statistics: for a whole run, or - `since` a Snapshot - for one window of it (a step
of the capacity finder)."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from locust.env import Environment
from locust.stats import StatsEntry


class LoadError(Exception):
    """The run cannot be made. One sentence; `playbook load` exits 2 with it."""


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


class Snapshot:
    """Locust's cumulative counters at one moment: a Measure `since` it judges a window (one
    step of the capacity finder) instead of the whole run."""

    def __init__(self, env: Environment) -> None:
        stats = env.stats
        self.entries = {key: _counters(e) for key, e in stats.entries.items()}
        self.total = _counters(stats.total)
        self.checks = {k: list(v) for k, v in (getattr(env, "checks", None) or {}).items()}


def _counters(e: StatsEntry) -> tuple[int, int, float, int, dict[int, int]]:
    return (e.num_requests, e.num_failures, e.total_response_time, e.total_content_length,
            dict(e.response_times))


def _since(e: StatsEntry, before: tuple[int, int, float, int, dict[int, int]] | None
           ) -> StatsEntry:
    if before is None:
        return e
    n, f, rt, cl, times = before
    d = StatsEntry(e.stats, e.name, e.method, use_response_times_cache=False)
    d.num_requests, d.num_failures = e.num_requests - n, e.num_failures - f
    d.total_response_time, d.total_content_length = e.total_response_time - rt, \
        e.total_content_length - cl
    for k, v in e.response_times.items():
        if v > times.get(k, 0):
            d.response_times[k] = v - times.get(k, 0)
    if d.response_times:  # Locust's rounded buckets: as precise as its percentiles
        d.min_response_time, d.max_response_time = min(d.response_times), max(d.response_times)
    return d


class Measure:
    """Reads threshold values from Locust's statistics (the master's, in distributed mode),
    for the whole run or, `since` a snapshot, for the window after it."""

    def __init__(self, env: Environment, elapsed: float, since: Snapshot | None = None) -> None:
        self.env, self.elapsed, self.since = env, max(elapsed, 1e-9), since

    def entry(self, endpoint: str | None) -> StatsEntry:
        stats, since = self.env.stats, self.since
        if endpoint is None:
            return _since(stats.total, since.total if since else None)
        matching = [_since(e, since.entries.get(key, (0, 0, 0.0, 0, {})) if since else None)
                    for key, e in stats.entries.items() if key[0] == endpoint]
        if len(matching) == 1:
            return matching[0]
        merged = StatsEntry(stats, endpoint, "", use_response_times_cache=False)
        for e in matching:
            merged.extend(e)
        return merged

    def checks(self, endpoint: str | None) -> tuple[int, int]:
        counts: dict[str, list[int]] = getattr(self.env, "checks", None) or {}
        before = self.since.checks if self.since else {}
        names = [endpoint] if endpoint else list(counts)
        rows = [(counts.get(n, [0, 0])[0] - before.get(n, [0, 0])[0],
                 counts.get(n, [0, 0])[1] - before.get(n, [0, 0])[1]) for n in names]
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
