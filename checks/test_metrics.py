"""Playbook "Critical Metrics Queries" (and 1.3 severity classification) through Prometheus's
HTTP API: 5xx rate, p95 response time, up of the backend, database connections, memory. The
queries are playbook/queries.py's.

Thresholds: service.slo (5xx, p95) and the profile's `prometheus` section (limits, the job, the
rate window). A query that returns nothing fails with "no data for <query>", never as 0.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from playbook import queries
from playbook import severity as sev
from playbook.config import Profile
from playbook.config import Prometheus as PromConfig
from playbook.plugin import attach_json
from playbook.probes.prometheus import Prometheus, Sample
from playbook.severity import CheckFailed

pytestmark = pytest.mark.requires("prometheus")


def instant(prometheus: Prometheus, query: str, severity: str) -> list[Sample]:
    """Samples of an instant query, or the failure: Prometheus unavailable (at most P1: the
    monitoring is blind, the service may be fine) or no data (the check's own severity)."""
    obs = prometheus.query(query)
    attach_json(f"query: {query}", {"url": obs.api.url, "status": obs.api.status,
                                    "error": obs.error, "warnings": obs.api.warnings,
                                    "samples": [[s.labels, s.value] for s in obs.samples]})
    if obs.error:
        raise CheckFailed(obs.problem() or "", sev.unobserved(severity))
    if obs.no_data:
        raise AssertionError(obs.problem())
    return obs.samples


def _ratio(samples: list[Sample], query: str, what: str, window: str) -> float:
    value = samples[0].value
    if math.isnan(value):
        raise AssertionError(f"no data for {query}: {what} is NaN - the backend served no "
                             f"request in the last {window}")
    return value


@pytest.mark.severity("P1")
@pytest.mark.incident_type("service outage")
def test_error_rate(profile: Profile, prometheus: Prometheus) -> None:
    """5xx share of all requests: > 10 % is P1, > 50 % is P0 (playbook 1.3)."""
    cfg, slo = profile.prometheus, profile.service.slo
    assert cfg is not None
    query = queries.checks(cfg)["error_rate"]
    rate = _ratio(instant(prometheus, query, "P1"), query, "the 5xx ratio", cfg.rate_window)
    level = sev.error_rate(rate, slo)
    if level:
        limit = slo.error_rate_p0 if level == "P0" else slo.error_rate_p1
        raise CheckFailed(
            f"{rate:.1%} of {cfg.job} requests answered 5xx over the last {cfg.rate_window}, "
            f"above the {level} threshold of {limit:.0%} - query {query} at {prometheus.url}",
            level)


@pytest.mark.severity("P1")
@pytest.mark.incident_type("performance")
def test_p95_latency(profile: Profile, prometheus: Prometheus) -> None:
    """p95 response time above service.slo.p95_seconds (2 s) is P1 (playbook 1.3)."""
    cfg, slo = profile.prometheus, profile.service.slo
    assert cfg is not None
    query = queries.checks(cfg)["p95"]
    p95 = _ratio(instant(prometheus, query, "P1"), query, "the p95", cfg.rate_window)
    level = sev.latency(p95, slo)
    if level:
        raise CheckFailed(
            f"p95 response time of {cfg.job} is {p95:.2f} s over the last {cfg.rate_window}, "
            f"above the SLO of {slo.p95_seconds:g} s - query {query} at {prometheus.url}", level)


@pytest.mark.severity("P0")
@pytest.mark.incident_type("service outage")
def test_backend_up(profile: Profile, prometheus: Prometheus) -> None:
    """up{job=...}: every target down is P0 (complete unavailability); some down is P2 (the
    others still serve: limited impact). No target at all is "no data" (P0)."""
    cfg = profile.prometheus
    assert cfg is not None
    query = queries.checks(cfg)["up"]
    samples = instant(prometheus, query, "P0")
    down = [s for s in samples if s.value != 1]
    level = sev.scrape_targets_up(len(samples) - len(down), len(samples))
    if not level:
        return
    names = ", ".join(s.describe() for s in down)
    where = f"query {query} at {prometheus.url}"
    if len(down) == len(samples):
        raise CheckFailed(f"all {len(samples)} scrape targets of job {cfg.job} are down "
                          f"(up == 0): {names} - {where}", level)
    raise CheckFailed(f"{len(down)} of {len(samples)} scrape targets of job {cfg.job} are down "
                      f"(up == 0): {names} - {where}", level)


def _db(cfg: PromConfig) -> dict[str, Any]:
    return {"query": queries.checks(cfg)["db_connections"], "limit": cfg.db_connections_limit,
            "ratio": cfg.db_connections_warn_ratio, "unit": "connections",
            "subject": f"{cfg.job} (all replicas)", "what": "database connections in use"}


def _memory(cfg: PromConfig) -> dict[str, Any]:
    return {"query": queries.checks(cfg)["memory"], "limit": cfg.memory_limit_bytes,
            "ratio": cfg.memory_warn_ratio, "unit": "bytes", "subject": "replica",
            "what": "resident memory"}


def _fmt(value: float, unit: str) -> str:
    return f"{value / 2**20:.1f} MiB" if unit == "bytes" else f"{value:.0f}"


@pytest.mark.parametrize("resource", [
    pytest.param(_db, marks=[pytest.mark.severity("P2"),
                             pytest.mark.incident_type("infrastructure")], id="db_connections"),
    pytest.param(_memory, marks=[pytest.mark.severity("P2"),
                                 pytest.mark.incident_type("performance")], id="memory"),
])
def test_below_limit(resource: Any, profile: Profile, prometheus: Prometheus) -> None:
    """Database connections (sum over replicas) and each replica's memory stay below
    `warn_ratio` of their limit; near the limit, connections fail or replicas get OOM-killed."""
    cfg = profile.prometheus
    assert cfg is not None
    r = resource(cfg)
    samples = instant(prometheus, r["query"], "P2")
    threshold = r["limit"] * r["ratio"]
    over = [s for s in samples if s.value >= threshold]
    if over:
        worst = max(over, key=lambda s: s.value)
        who = r["subject"] if not worst.labels.get("instance") else \
            f"{r['subject']} {worst.describe()}"
        more = f" (and {len(over) - 1} more)" if len(over) > 1 else ""
        raise AssertionError(
            f"{who}{more}: {r['what']} {_fmt(worst.value, r['unit'])}, at or above "
            f"{r['ratio']:.0%} of the limit of {_fmt(r['limit'], r['unit'])} "
            f"({_fmt(threshold, r['unit'])}) - query {r['query']} at {prometheus.url}")
