"""The PromQL the suite asks Prometheus: the playbook's "Critical Metrics Queries", scoped to the
backend's scrape job and the profile's rate window, and the exports of its evidence bundle
(5.1). The checks, the evidence bundle, the benchmarks and the suite's own tests share them.

The playbook's queries, as it writes them:

    rate(http_requests_total{status=~"5.."}[5m])                               # error rate
    histogram_quantile(0.95, rate(http_request_duration_seconds_bucket[5m]))   # P95
    up{job="security-dashboard-backend"}                                       # availability
    security_dashboard_db_connections_active                                   # DB connections
    process_resident_memory_bytes{job="security-dashboard-backend"}            # memory

The checks need one number each, so the error rate is the 5xx share of all requests (`or
vector(0)`: no 5xx at all is 0 %, while no request at all is still "no data"), the p95 is taken
over the replicas' buckets summed by `le`, and connections are summed over the replicas.
"""

from __future__ import annotations

from playbook import config

# The playbook's queries verbatim (PLAYBOOK.md "Critical Metrics Queries").
PLAYBOOK = {
    "error_rate": 'rate(http_requests_total{status=~"5.."}[5m])',
    "p95": "histogram_quantile(0.95, rate(http_request_duration_seconds_bucket[5m]))",
    "up": 'up{job="security-dashboard-backend"}',
    "db_connections": "security_dashboard_db_connections_active",
    "memory": 'process_resident_memory_bytes{job="security-dashboard-backend"}',
}


def _job(job: str) -> str:
    return f'job="{job}"'


def error_rate(job: str, window: str) -> str:
    """The share of the backend's requests answered 5xx over `window`."""
    j = _job(job)
    return (f'(sum(rate(http_requests_total{{{j},status=~"5.."}}[{window}])) or vector(0)) '
            f"/ sum(rate(http_requests_total{{{j}}}[{window}]))")


def p95(job: str, window: str) -> str:
    """The backend's 95th percentile response time (seconds) over `window`."""
    return ("histogram_quantile(0.95, sum by (le) "
            f"(rate(http_request_duration_seconds_bucket{{{_job(job)}}}[{window}])))")


def up(job: str) -> str:
    """1 per scrape target of the job that answered its last scrape, 0 per one that did not."""
    return f"up{{{_job(job)}}}"


def db_connections(job: str) -> str:
    """The database connections the backend holds, all replicas together."""
    return f"sum(security_dashboard_db_connections_active{{{_job(job)}}})"


def memory(job: str) -> str:
    """Each replica's resident memory (bytes)."""
    return f"process_resident_memory_bytes{{{_job(job)}}}"


def cpu(job: str, window: str) -> str:
    """Each replica's CPU (cores), for 5.1's `kubectl top pods`."""
    return f"rate(process_cpu_seconds_total{{{_job(job)}}}[{window}])"


def failed_logins(job: str, window: str) -> str:
    """Failed logins per second across the backend (the AuthFailureSpike alert's signal)."""
    return f"sum(rate(security_dashboard_auth_failures_total{{{_job(job)}}}[{window}]))"


def requests_rate(window: str) -> str:
    """5.1's export of every request series, as the playbook writes it."""
    return f"rate(http_requests_total[{window}])"


def errors_rate(window: str) -> str:
    """The playbook's error-rate query as it writes it (5xx series), for the evidence export."""
    return f'rate(http_requests_total{{status=~"5.."}}[{window}])'


def checks(cfg: config.Prometheus) -> dict[str, str]:
    """The metrics checks' queries, scoped to the profile's job and rate window."""
    job, window = cfg.job, cfg.rate_window
    return {"error_rate": error_rate(job, window), "p95": p95(job, window), "up": up(job),
            "db_connections": db_connections(job), "memory": memory(job)}


def evidence(cfg: config.Prometheus) -> dict[str, str]:
    """The evidence bundle's range exports (playbook 5.1): file name -> query."""
    return {"metrics-requests.json": requests_rate(cfg.rate_window),
            "metrics-errors.json": errors_rate(cfg.rate_window),
            "metrics-uptime.json": up(cfg.job)}
