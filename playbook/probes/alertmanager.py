"""Alertmanager observations (API v2) and the read-back of a notification sink. Read-only:
posting the synthetic alert that proves the alert path is playbook.control.alertmanager's."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import httpx
import yaml

from playbook import config
from playbook.probes import api
from playbook.probes.api import ApiObservation
from playbook.probes.prometheus import parse_duration


def receiver_kind(body: Any) -> str:
    """Which integration a delivered payload came from, by its shape."""
    if isinstance(body, dict):
        if "routing_key" in body and "event_action" in body:
            return "pagerduty"
        if "attachments" in body or ("text" in body and "channel" in body):
            return "slack"
        if "alerts" in body and "receiver" in body:
            return "webhook"
    return "unknown"


class Alertmanager:
    def __init__(self, cfg: config.Alertmanager, client: httpx.Client) -> None:
        """`client`: playbook.clients builds it (timeouts, User-Agent); the bearer token of
        the profile's section is added here."""
        self.cfg = cfg
        self.url = cfg.url.rstrip("/")
        self.sink_url = cfg.sink_url.rstrip("/") if cfg.sink_url else None
        self.client = client
        if cfg.bearer_token:
            client.headers["authorization"] = f"Bearer {cfg.bearer_token}"

    def __enter__(self) -> Alertmanager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()

    def _req(self, method: str, path: str, expect_json: bool = True,
             **kwargs: Any) -> ApiObservation:
        return api.request(self.client, "Alertmanager", "alertmanager.bearer_token", method,
                           self.url + path, expect_json=expect_json, **kwargs)

    def ready(self) -> ApiObservation:
        return self._req("GET", "/-/ready", expect_json=False)

    def status(self) -> ApiObservation:
        """GET /api/v2/status: cluster, version, the loaded config (body['config']['original'])."""
        return self._req("GET", "/api/v2/status")

    def alerts(self, filters: list[str] | None = None) -> ApiObservation:
        """GET /api/v2/alerts, e.g. filters=['probe_id="abc"']; each with status.state and
        the receivers it routes to."""
        return self._req("GET", "/api/v2/alerts", params={"filter": filters or []})

    def received(self, contains: str = "", path: str = "",
                 since: float = 0.0) -> ApiObservation:
        """What the sink received (its GET /received); needs alertmanager.sink_url."""
        if not self.sink_url:
            return ApiObservation("the notification sink", "GET", "(none)",
                                  error="alertmanager.sink_url is not set in the profile")
        params = {k: v for k, v in (("contains", contains), ("path", path),
                                    ("since", f"{since:.3f}" if since else "")) if v}
        return api.request(self.client, "the notification sink", "alertmanager.bearer_token",
                           "GET", self.sink_url + "/received", params=params)


@dataclass(frozen=True)
class Delivery:
    """The first notification a sink received that contains `contains`."""

    contains: str
    notification: dict[str, Any] | None  # with received_at (unix s), path, body
    waited: float  # seconds
    last: ApiObservation | None
    polls: int


def wait_for_notification(am: Alertmanager, contains: str, timeout: float, path: str = "",
                          since: float = 0.0, poll: float = 0.1) -> Delivery:
    """Poll the sink until a notification containing `contains` arrives (bounded)."""
    start = time.monotonic()
    deadline = start + timeout
    last, polls = None, 0
    while True:
        last = am.received(contains=contains, path=path, since=since)
        polls += 1
        items = (last.body or {}).get("received", []) if last.ok else []
        if items:
            return Delivery(contains, items[0], time.monotonic() - start, last, polls)
        if not last.ok and "sink_url is not set" in (last.error or ""):
            return Delivery(contains, None, time.monotonic() - start, last, polls)
        if time.monotonic() + poll > deadline:
            return Delivery(contains, None, time.monotonic() - start, last, polls)
        time.sleep(poll)


_MATCHER = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"?(.*?)"?\s*$')


def _matches(route: dict[str, Any], labels: dict[str, str]) -> bool:
    conds = [(k, "=", v) for k, v in (route.get("match") or {}).items()]
    conds += [(k, "=~", v) for k, v in (route.get("match_re") or {}).items()]
    for text in route.get("matchers") or []:
        m = _MATCHER.match(text)
        if m:
            conds.append((m.group(1), m.group(2), m.group(3)))
    for name, op, value in conds:
        got = labels.get(name, "")
        ok = {"=": got == value, "!=": got != value,
              "=~": re.fullmatch(value, got) is not None,
              "!~": re.fullmatch(value, got) is None}[op]
        if not ok:
            return False
    return True


def route_timing(am: Alertmanager, labels: dict[str, str]) -> dict[str, Any] | str:
    """Receiver, group_wait and group_interval (seconds) of the route an alert with these labels
    takes in the running Alertmanager's config (first matching route, inherited timings), or the
    problem reading them."""
    obs = am.status()
    if not obs.ok:
        return obs.problem() or ""
    route = (yaml.safe_load(((obs.body or {}).get("config") or {}).get("original", "")) or {}
             ).get("route", {})
    timing = {"receiver": route.get("receiver"), "group_wait": route.get("group_wait", "30s"),
              "group_interval": route.get("group_interval", "5m")}
    while True:
        child = next((r for r in route.get("routes") or [] if _matches(r, labels)), None)
        if child is None:
            break
        route = child
        timing.update({k: route[k] for k in ("receiver", "group_wait", "group_interval")
                       if k in route})
    return {**timing, "group_wait": parse_duration(timing["group_wait"]),
            "group_interval": parse_duration(timing["group_interval"])}
