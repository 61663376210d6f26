"""The Prometheus and Alertmanager probes against bad answers: each gives one clear sentence,
never a traceback; an empty result is "no data", never 0."""

from __future__ import annotations

import json
import math
import socket
from collections.abc import Callable

import httpx
import pytest

from playbook import config
from playbook.control import alertmanager as am_control
from playbook.probes import alertmanager as am_probe
from playbook.probes.http import http_client
from playbook.probes.prometheus import Prometheus, active_alerts

pytestmark = pytest.mark.unit

URL = "http://prom.test"


def prom(handler: Callable[[httpx.Request], httpx.Response], **cfg: object) -> Prometheus:
    client = httpx.Client(transport=httpx.MockTransport(handler), timeout=1.0)
    return Prometheus(config.Prometheus(url=URL, **cfg), client=client)  # type: ignore[arg-type]


def vector(*samples: tuple[dict, str]) -> httpx.Response:
    return httpx.Response(200, json={"status": "success", "data": {
        "resultType": "vector", "result": [{"metric": m, "value": [1.0, v]} for m, v in samples]}})


def test_query_samples_and_request() -> None:
    seen = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return vector(({"instance": "a:1", "pod": "p"}, "1"), ({"instance": "b:1"}, "NaN"))

    p = prom(handler, bearer_token="s3cret")
    obs = p.query('up{job="x"}')
    assert obs.problem() is None and obs.samples[0].value == 1.0
    assert math.isnan(obs.samples[1].value)
    assert obs.samples[0].describe() == "a:1 (pod p)"
    assert seen[0].url.path == "/api/v1/query"
    assert seen[0].url.params["query"] == 'up{job="x"}'
    assert seen[0].headers["authorization"] == "Bearer s3cret"


def test_empty_result_is_no_data_not_zero() -> None:
    obs = prom(lambda r: vector()).query("security_dashboard_db_connections_active")
    assert obs.no_data and obs.samples == []
    assert obs.problem() == ("no data for security_dashboard_db_connections_active (Prometheus "
                             "http://prom.test/api/v1/query returned an empty result: is the "
                             "job scraped and the metric exposed?)")


@pytest.mark.parametrize("response, expected", [
    (httpx.Response(401, text="Unauthorized"),
     "HTTP 401 Unauthorized - the request was refused; check prometheus.bearer_token"),
    (httpx.Response(403, text="forbidden"), "HTTP 403 Forbidden - the request was refused"),
    (httpx.Response(429, headers={"retry-after": "30"}, text="slow down"),
     "HTTP 429 Too Many Requests - throttled (Retry-After: 30 s)"),
    (httpx.Response(200, headers={"content-type": "text/html"},
                    text="<html><body>Sign in</body></html>"),
     "answered an HTML page (HTTP 200, text/html) instead of the API's JSON"),
    (httpx.Response(200, headers={"content-type": "text/plain"}, text="up 1"),
     "answered HTTP 200 with a body that is not JSON (text/plain): up 1"),
    (httpx.Response(400, json={"status": "error", "errorType": "bad_data",
                               "error": "parse error at char 3"}),
     "HTTP 400, API error bad_data: parse error at char 3"),
    (httpx.Response(503, text="Service Unavailable"), "HTTP 503 Service Unavailable"),
    (httpx.Response(302, headers={"location": "https://sso.test/login"}),
     "HTTP 302 redirect to https://sso.test/login - a login page or proxy"),
    (httpx.Response(200, json={"data": []}), "not the Prometheus API's envelope"),
])
def test_bad_answers_give_a_sentence(response: httpx.Response, expected: str) -> None:
    obs = prom(lambda r: response).query("up")
    problem = obs.problem()
    assert problem is not None and expected in problem, problem
    assert problem.startswith("Prometheus query up failed: Prometheus GET http://prom.test/")
    assert "\n" not in problem


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_prometheus() -> None:
    port = _free_port()
    with Prometheus(config.Prometheus(url=f"http://127.0.0.1:{port}", timeout=1.0),
                    http_client(1.0)) as p:
        problem = p.query("up").problem()
    assert problem is not None
    assert f"Prometheus GET http://127.0.0.1:{port}/api/v1/query" in problem
    assert "unreachable: connection refused - nothing is listening there" in problem


def test_active_alerts_filter() -> None:
    body = {"status": "success", "data": {"alerts": [
        {"labels": {"alertname": "HighErrorRate", "severity": "P1"}, "state": "firing"},
        {"labels": {"alertname": "HighErrorRate", "severity": "P0"}, "state": "pending"}]}}
    obs = prom(lambda r: httpx.Response(200, json=body)).alerts()
    assert len(active_alerts(obs, "HighErrorRate")) == 2
    assert active_alerts(obs, "HighErrorRate", "firing")[0]["labels"]["severity"] == "P1"
    assert active_alerts(obs, "HighErrorRate", labels={"severity": "P0"})[0]["state"] == \
        "pending"


def test_alertmanager_post_and_sink_readback() -> None:
    posted = []

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/api/v2/alerts" and req.method == "POST":
            posted.append(json.loads(req.content))
            return httpx.Response(200)
        if req.url.host == "sink.test":
            return httpx.Response(200, json={"count": 1, "received": [
                {"received_at": 1.0, "path": "/pagerduty/x/v2/enqueue",
                 "body": {"routing_key": "k", "event_action": "trigger"}}]})
        return httpx.Response(404, text="not found")

    cfg = config.Alertmanager(url="http://am.test", sink_url="http://sink.test")
    am = am_probe.Alertmanager(cfg, client=httpx.Client(transport=httpx.MockTransport(handler)))
    alert = am_control.synthetic_alert("abc", "P0")
    assert am_control.post_alerts(am, [alert]).ok
    assert posted[0][0]["labels"] == {"alertname": "PlaybookSyntheticAlert", "severity": "P0",
                                      "probe_id": "abc", "synthetic": "true",
                                      "incident_type": "infrastructure"}
    got = am_probe.wait_for_notification(am, "abc", timeout=1)
    assert got.notification is not None
    assert am_probe.receiver_kind(got.notification["body"]) == "pagerduty"
    assert am_probe.receiver_kind({"channel": "#incidents", "attachments": []}) == "slack"
    bad = am.status()
    assert bad.problem() == ("Alertmanager GET http://am.test/api/v2/status: HTTP 404 Not Found"
                             " - body: not found")


def test_alertmanager_without_sink() -> None:
    am = am_probe.Alertmanager(config.Alertmanager(url="http://am.test"),
                               client=httpx.Client(transport=httpx.MockTransport(
                                   lambda r: httpx.Response(200, json=[]))))
    got = am_probe.wait_for_notification(am, "abc", timeout=5)
    assert got.notification is None and got.polls == 1
    assert got.last is not None and "alertmanager.sink_url is not set" in (got.last.problem()
                                                                            or "")


def test_unreachable_alertmanager_and_sink() -> None:
    port = _free_port()
    cfg = config.Alertmanager(url=f"http://127.0.0.1:{port}", timeout=1.0,
                              sink_url=f"http://127.0.0.1:{port}")
    with am_probe.Alertmanager(cfg, http_client(1.0)) as am:
        assert am.ready().problem() == (
            f"Alertmanager GET http://127.0.0.1:{port}/-/ready: unreachable: connection refused"
            " - nothing is listening there (service down or wrong URL?)")
        got = am_probe.wait_for_notification(am, "x", timeout=0.2)
    assert got.notification is None and got.last is not None
    assert (got.last.problem() or "").startswith(
        f"the notification sink GET http://127.0.0.1:{port}/received?contains=x: unreachable")


def test_floor_parts_from_the_apis() -> None:
    """What a game day reads to know its floor: intervals, a rule's `for`, a route's timing."""
    from pathlib import Path

    import yaml

    from playbook.probes import prometheus as prom_probe

    original = (Path(__file__).resolve().parent.parent / "monitoring" / "alertmanager.yml"
                ).read_text()

    def am_handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"config": {"original": original}})

    am = am_probe.Alertmanager(config.Alertmanager(url="http://am.test"),
                               client=httpx.Client(transport=httpx.MockTransport(am_handler)))
    p0 = am_probe.route_timing(am, {"alertname": "BackendDown", "severity": "P0"})
    assert p0 == {"receiver": "pagerduty-critical", "group_wait": 10.0, "group_interval": 300.0}
    p1 = am_probe.route_timing(am, {"alertname": "HighErrorRate", "severity": "P1"})
    assert p1 == {"receiver": "slack-incidents", "group_wait": 30.0, "group_interval": 300.0}
    p3 = am_probe.route_timing(am, {"severity": "P3"})
    assert isinstance(p3, dict) and p3["receiver"] == "slack-platform-alerts"

    def prom_handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/api/v1/status/config":
            return httpx.Response(200, json={"status": "success", "data": {"yaml": yaml.safe_dump(
                {"global": {"scrape_interval": "15s", "evaluation_interval": "30s"}})}})
        return httpx.Response(200, json={"status": "success", "data": {"groups": [{"rules": [
            {"name": "BackendDown", "type": "alerting", "duration": 60,
             "labels": {"severity": "P0"}}]}]}})

    p = prom(prom_handler)
    assert prom_probe.intervals(p) == {"scrape_interval": 15.0, "scrape_timeout": 10.0,
                                       "evaluation_interval": 30.0}
    assert prom_probe.rule_for(p, "BackendDown") == 60.0
    assert prom_probe.rule_for(p, "BackendDown", {"severity": "P1"}) is None
    assert prom_probe.parse_duration("1h30m") == 5400
