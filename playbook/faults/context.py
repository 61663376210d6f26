"""What faults and runbook actions act through on a game day: the profile's control planes,
one client per system (playbook.clients), built on first use and shared by every fault."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from playbook import config, paths
from playbook import severity as sev
from playbook.clients import Clients, SectionMissing
from playbook.drill import Watchers
from playbook.faults.base import FaultRefused, Journal, revert_pending
from playbook.probes import http as http_probe

if TYPE_CHECKING:  # the kubernetes client and boto3 are slow to import: only when used
    from playbook.probes.alertmanager import Alertmanager
    from playbook.probes.aws import AwsClients
    from playbook.probes.kube import Kube
    from playbook.probes.prometheus import Prometheus


def _resolved(body: Any) -> bool:
    """A PagerDuty `resolve` event or a Slack message about resolved alerts."""
    if not isinstance(body, dict):
        return False
    if body.get("event_action") == "resolve":
        return True
    text = " ".join(str(a.get("title", "")) + str(a.get("text", ""))
                    for a in body.get("attachments", []) or []) + str(body.get("text", ""))
    return "RESOLVED" in text and "FIRING" not in text


class GameDay:
    """The game day's context (playbook.control.Context): the profile, the production guard's
    switch, and the control planes through playbook.clients - built on first use, shared by
    every fault and action of the day, closed by close()."""

    def __init__(self, profile: config.Profile, allow_production: bool = False) -> None:
        self.profile = profile
        self.allow_production = allow_production
        # Short timeouts: a drill's synthetic users and health polls must never stall it.
        self.clients = Clients(profile, http_timeout=1.0)

    def _client(self, name: str) -> Any:
        try:
            return getattr(self.clients, name)
        except SectionMissing as e:
            raise FaultRefused(f"{e}: this fault has no control plane to act through") \
                from None

    @property
    def kube(self) -> Kube:
        return self._client("kube")

    @property
    def aws(self) -> AwsClients:
        return self._client("aws")

    @property
    def prometheus(self) -> Prometheus:
        return self._client("prometheus")

    @property
    def alertmanager(self) -> Alertmanager:
        return self._client("alertmanager")

    @property
    def http(self) -> httpx.Client:
        return self.clients.http

    def watchers(self) -> Watchers:
        """How drills see the world: alerts in Prometheus, deliveries at the receivers' sink,
        the service's health (health, ready, status, deployment availability), user errors."""
        from playbook.probes.prometheus import active_alerts

        service = self.profile.service

        def alert_state(names: str) -> tuple[str, str]:
            obs = self.prometheus.alerts()
            seen = [(a.get("state", ""), n) for n in names.split("|")
                    for a in active_alerts(obs, n)]
            for state in ("firing", "pending"):
                for got, name in seen:
                    if got == state:
                        return state, name
            return "inactive", names

        def notifications(receiver: str, contains: str, since: float) -> list[dict[str, Any]]:
            """Pages and messages that announce a problem (not 'resolved' ones)."""
            got: list[dict[str, Any]] = []
            for name in contains.split("|") if contains else [""]:
                obs = self.alertmanager.received(contains=name, path=f"/{receiver}",
                                                 since=since)
                got += (obs.body or {}).get("received", []) if obs.ok else []
            return [n for n in got if not _resolved(n.get("body"))]

        def active() -> list[str]:
            obs = self.prometheus.alerts()
            return [a.get("labels", {}).get("alertname", "?")
                    for a in (obs.body or {}).get("alerts", [])] if obs.ok else []

        def healthy() -> str | None:
            for path, expect in ((service.endpoints.health, {"status": "ok"}),
                                 (service.endpoints.ready, {"status": "ok"}),
                                 (service.endpoints.status, {"status": "operational"})):
                problem = http_probe.get(self.http, service.url(path)).problem(
                    expect_json=expect)
                if problem:
                    return problem
            if self.profile.kubernetes is not None:
                dep = self.kube.deployment()
                if dep.error or sev.replicas_available(dep.available, dep.desired):
                    return dep.error or (f"deployment {dep.name}: {dep.available} of "
                                         f"{dep.desired} desired replicas available")
            return None

        def user_errors() -> bool:
            return http_probe.get(self.http, service.url(service.endpoints.status)).status != 200

        def floor(alert: str, severity: str) -> dict[str, float]:
            from playbook.probes.alertmanager import route_timing
            from playbook.probes.prometheus import intervals, rule_for

            iv = intervals(self.prometheus)
            wait = rule_for(self.prometheus, alert, {"severity": severity} if severity else None)
            if isinstance(iv, str) or wait is None:
                return {}
            detect = iv["scrape_interval"] + iv["evaluation_interval"] + wait
            route = route_timing(self.alertmanager, {"alertname": alert, "severity": severity})
            group_wait = 0.0 if isinstance(route, str) else float(route["group_wait"])
            return {"detect": detect, "notify": detect + group_wait}

        return Watchers(alert_state, notifications, healthy, user_errors, active, floor)

    def close(self) -> None:
        self.clients.close()

    @staticmethod
    def revert_journal(profile: config.Profile, allow_production: bool = False,
                       path: Path | None = None) -> int:
        """`playbook gameday revert`: exit code 0 when nothing is left injected."""
        path = path or paths.gameday_journal()
        try:
            journal = Journal.open(path)
        except ValueError as e:
            print(f"playbook: {e}")
            return 1
        pending = journal.pending()
        if not pending:
            print(f"nothing to revert ({path})")
            return 0
        print(f"{len(pending)} fault(s) still injected according to {path}")
        from playbook.faults.registry import REGISTRY  # every fault kind (slow imports)

        ctx = GameDay(profile, allow_production=True)  # reverting is always allowed
        try:
            failures = revert_pending(ctx, journal, REGISTRY)
        finally:
            ctx.close()
        return 1 if failures else 0
