"""Prometheus observations over its HTTP API: instant queries, rules, targets, alerts.

Never asserts, never writes. An empty query result is an observation of "no data" (never a
zero); NaN (e.g. a ratio with no traffic) is kept as NaN for the caller to judge.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import yaml

from playbook import config
from playbook.probes import api
from playbook.probes.api import ApiObservation

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")


def parse_duration(text: str) -> float:
    """A Prometheus/Alertmanager duration ("1h30m", "500ms") in seconds."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(int(n) * _UNITS[u] for n, u in parts)


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float

    def describe(self, *keys: str) -> str:
        """e.g. 127.0.0.1:8000 (pod backend-abc) from the instance and pod labels."""
        keys = keys or ("instance", "pod")
        parts = [self.labels[k] for k in keys[:1] if k in self.labels]
        extra = [f"{k} {self.labels[k]}" for k in keys[1:] if k in self.labels]
        return " ".join(parts + ([f"({', '.join(extra)})"] if extra else [])) or str(
            self.labels or "{}")


@dataclass(frozen=True)
class QueryObservation:
    query: str
    api: ApiObservation
    samples: list[Sample] = field(default_factory=list)

    @property
    def error(self) -> str | None:
        return self.api.error

    @property
    def no_data(self) -> bool:
        return self.api.ok and not self.samples

    def problem(self) -> str | None:
        """Unreachable/refused/malformed, or no data; None when there are samples."""
        if self.api.error:
            return f"Prometheus query {self.query} failed: {self.api.problem()}"
        if not self.samples:
            return (f"no data for {self.query} (Prometheus {self.api.url.split('?')[0]} "
                    "returned an empty result: is the job scraped and the metric exposed?)")
        return None


def _value(raw: Any) -> float:
    try:
        return float(raw)
    except (TypeError, ValueError):
        return math.nan


class Prometheus:
    def __init__(self, cfg: config.Prometheus, client: httpx.Client) -> None:
        """`client`: playbook.clients builds it (timeouts, User-Agent); the bearer token of
        the profile's section is added here."""
        self.cfg = cfg
        self.url = cfg.url.rstrip("/")
        self.client = client
        if cfg.bearer_token:
            client.headers["authorization"] = f"Bearer {cfg.bearer_token}"

    def __enter__(self) -> Prometheus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()

    def get(self, path: str, params: dict[str, Any] | None = None,
            expect_json: bool = True) -> ApiObservation:
        return api.request(self.client, "Prometheus", "prometheus.bearer_token", "GET",
                           self.url + path, expect_json=expect_json, params=params or None)

    def data(self, path: str, params: dict[str, Any] | None = None) -> ApiObservation:
        """GET an /api/v1 endpoint; body is its `data` on success."""
        obs = self.get(path, params)
        if obs.ok and not (isinstance(obs.body, dict) and obs.body.get("status") == "success"):
            return ApiObservation(obs.what, obs.method, obs.url, obs.status, obs.elapsed,
                                  obs.body, "answered JSON that is not the Prometheus API's "
                                  f"envelope ({str(obs.body)[:120]}) - is the url Prometheus?")
        if obs.ok:
            return ApiObservation(obs.what, obs.method, obs.url, obs.status, obs.elapsed,
                                  obs.body.get("data"), None, obs.warnings)
        return obs

    def query(self, promql: str) -> QueryObservation:
        """An instant query (GET /api/v1/query), evaluated now."""
        obs = self.data("/api/v1/query", {"query": promql, "timeout": f"{self.cfg.timeout:g}s"})
        if not obs.ok:
            return QueryObservation(promql, obs)
        data = obs.body if isinstance(obs.body, dict) else {}
        kind, result = data.get("resultType"), data.get("result")
        if kind == "scalar" and isinstance(result, list):
            samples = [Sample({}, _value(result[1]))]
        elif kind == "vector" and isinstance(result, list):
            samples = [Sample(r.get("metric", {}), _value(r.get("value", [0, None])[1]))
                       for r in result]
        else:
            bad = ApiObservation(obs.what, obs.method, obs.url, obs.status, obs.elapsed, data,
                                 f"expected an instant vector, got resultType {kind!r}")
            return QueryObservation(promql, bad)
        return QueryObservation(promql, obs, samples)

    def rules(self) -> ApiObservation:
        """GET /api/v1/rules: groups with their rules' health, lastError, duration (the `for`)."""
        return self.data("/api/v1/rules")

    def targets(self) -> ApiObservation:
        return self.data("/api/v1/targets", {"state": "active"})

    def alerts(self) -> ApiObservation:
        """GET /api/v1/alerts: active alerts (pending and firing) with their labels."""
        return self.data("/api/v1/alerts")

    def alertmanagers(self) -> ApiObservation:
        return self.data("/api/v1/alertmanagers")

    def runtime_config(self) -> ApiObservation:
        """GET /api/v1/status/config: the loaded configuration (YAML in body['yaml'])."""
        return self.data("/api/v1/status/config")

    def ready(self) -> ApiObservation:
        return self.get("/-/ready", expect_json=False)


def active_alerts(obs: ApiObservation, name: str, state: str | None = None,
                  labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The alerts of an alerts() observation with this name (and state and labels)."""
    found = []
    for alert in (obs.body or {}).get("alerts", []) if obs.ok else []:
        lab = alert.get("labels", {})
        if lab.get("alertname") != name or (state and alert.get("state") != state):
            continue
        if labels and any(lab.get(k) != v for k, v in labels.items()):
            continue
        found.append(alert)
    return found


@dataclass(frozen=True)
class AlertWait:
    name: str
    state: str
    seen_at: float | None  # time.time() when first seen in that state; None: not within timeout
    alert: dict[str, Any] | None
    last: ApiObservation | None
    polls: int


def wait_for_alert(prom: Prometheus, name: str, state: str = "firing",
                   labels: dict[str, str] | None = None, timeout: float = 30.0,
                   poll: float = 0.1) -> AlertWait:
    """Poll /api/v1/alerts until alert `name` is in `state` (bounded by timeout)."""
    deadline = time.monotonic() + timeout
    last, polls = None, 0
    while True:
        last = prom.alerts()
        polls += 1
        found = active_alerts(last, name, state, labels)
        if found:
            return AlertWait(name, state, time.time(), found[0], last, polls)
        if time.monotonic() + poll > deadline:
            return AlertWait(name, state, None, None, last, polls)
        time.sleep(poll)


def intervals(prom: Prometheus) -> dict[str, float] | str:
    """scrape_interval, scrape_timeout, evaluation_interval (seconds) of the loaded config, or
    the problem reading them."""
    obs = prom.runtime_config()
    if not obs.ok:
        return obs.problem() or ""
    glob = (yaml.safe_load((obs.body or {}).get("yaml", "")) or {}).get("global", {})
    return {k: parse_duration(glob.get(k, default)) for k, default in (
        ("scrape_interval", "1m"), ("scrape_timeout", "10s"), ("evaluation_interval", "1m"))}


def rule_for(prom: Prometheus, alertname: str, labels: dict[str, str] | None = None
             ) -> float | None:
    """The `for` (seconds) of a loaded alerting rule (with these labels), None if not loaded."""
    obs = prom.rules()
    for group in (obs.body or {}).get("groups", []) if obs.ok else []:
        for rule in group.get("rules", []):
            if rule.get("name") == alertname and rule.get("type") == "alerting" and all(
                    rule.get("labels", {}).get(k) == v for k, v in (labels or {}).items()):
                return float(rule.get("duration", 0))
    return None
