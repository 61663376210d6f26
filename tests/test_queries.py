"""The PromQL the suite shares (playbook/queries.py): the playbook's "Critical Metrics
Queries" stay recognisable in the scoped queries the checks ask."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from playbook import config, queries

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
JOB, WINDOW = "security-dashboard-backend", "5m"


def test_verbatim_where_the_playbook_already_scopes() -> None:
    assert queries.up(JOB) == queries.PLAYBOOK["up"]
    assert queries.memory(JOB) == queries.PLAYBOOK["memory"]
    assert queries.errors_rate(WINDOW) == queries.PLAYBOOK["error_rate"]


def test_scoped_queries_keep_the_playbooks_metrics_matchers_and_window() -> None:
    rate = queries.error_rate(JOB, WINDOW)
    assert f'http_requests_total{{job="{JOB}",status=~"5.."}}[{WINDOW}]' in rate
    assert rate.endswith(f'/ sum(rate(http_requests_total{{job="{JOB}"}}[{WINDOW}]))')
    p95 = queries.p95(JOB, WINDOW)
    assert p95.startswith("histogram_quantile(0.95, ")
    assert f'rate(http_request_duration_seconds_bucket{{job="{JOB}"}}[{WINDOW}])' in p95
    assert queries.db_connections(JOB) == (
        f'sum({queries.PLAYBOOK["db_connections"]}{{job="{JOB}"}})')


def test_the_checks_and_the_evidence_follow_the_profile() -> None:
    cfg = config.Prometheus(url="http://prom.test", job="other", rate_window="10s")
    assert set(queries.checks(cfg)) == {"error_rate", "p95", "up", "db_connections", "memory"}
    assert all('job="other"' in q for q in queries.checks(cfg).values())
    assert queries.evidence(cfg) == {
        "metrics-requests.json": "rate(http_requests_total[10s])",
        "metrics-errors.json": 'rate(http_requests_total{status=~"5.."}[10s])',
        "metrics-uptime.json": 'up{job="other"}'}


def test_the_copy_is_the_playbooks() -> None:
    """queries.PLAYBOOK is PLAYBOOK.md's "Critical Metrics Queries" block (when it is beside
    the project)."""
    found = next((p for p in (ROOT / "PLAYBOOK.md", ROOT.parent / "shared" / "PLAYBOOK.md",
                              ROOT.parent.parent / "shared" / "PLAYBOOK.md")
                  if p.is_file()), None)
    if found is None:
        pytest.skip("PLAYBOOK.md is not beside the project; the embedded copy is used")
    block = re.search(r"### Critical Metrics Queries\s+```promql\n(.*?)```", found.read_text(),
                      re.S)
    assert block is not None
    lines = [line for line in block.group(1).splitlines() if line and not line.startswith("#")]
    assert lines == list(queries.PLAYBOOK.values())
