"""Clients(profile): one client per system, in the spirit of testinfra's `host`.

    clients = Clients(profile)
    clients.http            httpx.Client for the service (service.timeout)
    clients.kube            playbook.probes.kube.Kube (kubeconfig/context or in-cluster)
    clients.aws             playbook.probes.aws.AwsClients (boto3's credential chain)
    clients.db              playbook.probes.database.Database (${DATABASE_URL})
    clients.prometheus      playbook.probes.prometheus.Prometheus (bearer token)
    clients.alertmanager    playbook.probes.alertmanager.Alertmanager (bearer token)
    clients.github          httpx.Client for the GitHub REST API (github.token)
    clients.notify          httpx.Client for Slack and PagerDuty (notify.timeout)
    clients.close()         closes whatever was built, once

Each is built on first use (the kubernetes client and boto3 are slow to import) and then
shared, with the profile's timeouts, its credentials (from the environment and the usual
chains, never from the profile's text) and the suite's User-Agent. A client whose profile
section is missing raises SectionMissing: one sentence, and the section's name for the code
that turns it into a skip (the plugin's fixtures) or a refusal (game-day faults).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import httpx

from playbook import config
from playbook.probes.http import http_client

if TYPE_CHECKING:  # the kubernetes client and boto3 are slow to import: only when used
    from playbook.probes.alertmanager import Alertmanager
    from playbook.probes.aws import AwsClients
    from playbook.probes.database import Database
    from playbook.probes.kube import Kube
    from playbook.probes.prometheus import Prometheus

GITHUB_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}


class SectionMissing(LookupError):
    """The profile has no section for this system. `section` names it (e.g. "kubernetes")."""

    def __init__(self, profile: str, section: str) -> None:
        super().__init__(f"profile {profile} has no `{section}` section")
        self.profile = profile
        self.section = section


def github_client(cfg: config.Github) -> httpx.Client:
    """The GitHub REST API: github.token as a bearer token (none when it is empty), the API's
    media type and version, github.timeout."""
    return http_client(cfg.timeout, bearer_token=cfg.token or None, headers=GITHUB_HEADERS)


class Clients:
    """The clients of one profile, built lazily, cached, closed once by close()."""

    def __init__(self, profile: config.Profile, *, http_timeout: float | None = None) -> None:
        """`http_timeout` overrides service.timeout for `http` (a drill's synthetic users
        must never stall it)."""
        self.profile = profile
        self._http_timeout = http_timeout
        self._closers: list[Any] = []

    def __enter__(self) -> Clients:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def section(self, name: str) -> Any:
        """The profile's section `name`, or SectionMissing."""
        value = getattr(self.profile, name, None)
        if value is None:
            raise SectionMissing(self.profile.name, name)
        return value

    def _closing(self, client: Any) -> Any:
        self._closers.append(client)
        return client

    @functools.cached_property
    def http(self) -> httpx.Client:
        """The service's HTTP client: redirects are not followed (a health endpoint that
        redirects to a login page is a finding, not a pass)."""
        seconds = self._http_timeout or self.profile.service.timeout
        return self._closing(http_client(seconds))

    @functools.cached_property
    def kube(self) -> Kube:
        from playbook.probes.kube import Kube

        return self._closing(Kube(self.section("kubernetes")))

    @functools.cached_property
    def aws(self) -> AwsClients:
        from playbook.probes.aws import AwsClients

        return AwsClients(self.section("aws"))

    @functools.cached_property
    def db(self) -> Database:
        from playbook.probes.database import Database

        return self._closing(Database(self.section("database")))

    @functools.cached_property
    def prometheus(self) -> Prometheus:
        from playbook.probes.prometheus import Prometheus

        cfg = self.section("prometheus")
        return self._closing(Prometheus(cfg, http_client(cfg.timeout)))

    @functools.cached_property
    def alertmanager(self) -> Alertmanager:
        from playbook.probes.alertmanager import Alertmanager

        cfg = self.section("alertmanager")
        return self._closing(Alertmanager(cfg, http_client(cfg.timeout)))

    @functools.cached_property
    def github(self) -> httpx.Client:
        return self._closing(github_client(self.section("github")))

    @functools.cached_property
    def notify(self) -> httpx.Client:
        """Slack's webhook and PagerDuty's Events API, with notify.timeout (the playbook's
        defaults when the profile has no `notify` section: a dry run needs none)."""
        cfg = self.profile.notify or config.Notify()
        return self._closing(http_client(cfg.timeout))

    def close(self) -> None:
        """Close every client built so far, each once."""
        closers, self._closers = self._closers, []
        for client in reversed(closers):
            client.close()

