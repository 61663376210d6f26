"""Faults through the Kubernetes API (and Chaos Mesh's resources where an agent is needed),
exactly as on staging: delete pods, scale to zero, a bad deploy, HTTP errors and latency,
maintenance mode, a network partition. Each records what revert() needs in prepare(), before
it is journaled; every write is playbook.control.kube's."""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass, field
from typing import Any

from playbook.control import kube as control
from playbook.control.context import Context
from playbook.faults.base import Fault, FaultRefused


def _limit(ctx: Context, share: float, what: str) -> None:
    limit = ctx.profile.gameday.max_pod_percent if ctx.profile.gameday else 50.0
    if share * 100 > limit + 1e-9:
        raise FaultRefused(f"{what} affects {share:.0%} of the pods, above the profile's "
                           f"blast-radius limit gameday.max_pod_percent = {limit:g} %")


@dataclass
class PodsDeleted(Fault):
    """Delete backend pods: one (count=1), a percentage, or all (percent=100)."""

    kind = "kube-pods-deleted"
    count: int = 1
    percent: float = 0.0
    names: list[str] = field(default_factory=list)

    @property
    def description(self) -> str:
        return f"{len(self.names)} backend pod(s) deleted: {', '.join(self.names)}"

    def prepare(self, ctx: Context) -> None:
        obs = ctx.kube.pods()
        if obs.error:
            raise RuntimeError(obs.error)
        pods = [p.name for p in obs.pods]
        n = math.ceil(len(pods) * self.percent / 100) if self.percent else self.count
        self.names = random.sample(pods, min(n, len(pods)))
        self.total = len(pods)

    def check_allowed(self, ctx: Context) -> None:
        _limit(ctx, len(self.names) / max(1, getattr(self, "total", len(self.names))),
               "deleting pods")

    def params(self) -> dict[str, Any]:
        return {"count": self.count, "percent": self.percent, "names": self.names}

    def inject(self, ctx: Context) -> None:
        for name in self.names:
            control.delete_pod(ctx.kube, name)

    def revert(self, ctx: Context) -> None:
        """Deleted pods are replaced by the controller: nothing to undo but to let it heal."""


@dataclass
class ScaledToZero(Fault):
    """Scale the backend's Deployment to zero replicas: a complete outage."""

    kind = "kube-scaled-to-zero"
    previous: int = 0

    @property
    def description(self) -> str:
        return f"deployment scaled from {self.previous} to 0 replicas"

    def prepare(self, ctx: Context) -> None:
        self.previous = self.previous or control.replicas(ctx.kube)

    def check_allowed(self, ctx: Context) -> None:
        _limit(ctx, 1.0, "scaling to zero")

    def inject(self, ctx: Context) -> None:
        control.scale(ctx.kube, 0)

    def revert(self, ctx: Context) -> None:
        if self.previous and control.replicas(ctx.kube) < self.previous:
            control.scale(ctx.kube, self.previous)


@dataclass
class BadDeploy(Fault):
    """Roll out an image that fails: tag `bad-5xx` answers 500, `bad-slow` is slow,
    `bad-crash` crash-loops. Revert restores the image that was deployed before."""

    kind = "kube-bad-deploy"
    tag: str = "bad-5xx"
    previous_image: str = ""

    @property
    def description(self) -> str:
        return f"bad deploy: image tag {self.tag} (was {self.previous_image})"

    def prepare(self, ctx: Context) -> None:
        self.previous_image = self.previous_image or control.image(ctx.kube)

    def check_allowed(self, ctx: Context) -> None:
        _limit(ctx, 1.0, "a deploy to every pod")

    def inject(self, ctx: Context) -> None:
        repo = self.previous_image.rsplit(":", 1)[0]
        version = self.previous_image.rsplit(":", 1)[-1]
        control.set_image(ctx.kube, f"{repo}:{version}-{self.tag}")

    def revert(self, ctx: Context) -> None:
        if control.image(ctx.kube) != self.previous_image:
            control.set_image(ctx.kube, self.previous_image)


@dataclass
class HttpChaos(Fault):
    """Chaos Mesh HTTPChaos on the backend: abort with an error status and/or add latency to
    a share of the pods' responses."""

    kind = "kube-http-chaos"
    percent: float = 100.0
    status: int | None = 500
    delay: str | None = None  # e.g. "3s"
    name: str = ""

    @property
    def description(self) -> str:
        parts = [f"HTTP {self.status}" if self.status else "", f"+{self.delay}" if self.delay
                 else ""]
        return f"HTTPChaos {self.name}: {' and '.join(p for p in parts if p)} on " \
               f"{self.percent:g} % of the backend"

    def prepare(self, ctx: Context) -> None:
        self.name = self.name or f"gameday-http-{uuid.uuid4().hex[:6]}"

    def check_allowed(self, ctx: Context) -> None:
        _limit(ctx, self.percent / 100, "the HTTP fault")

    def inject(self, ctx: Context) -> None:
        spec: dict[str, Any] = {
            "mode": "all" if self.percent >= 100 else "fixed-percent",
            "selector": control.backend_selector(ctx.kube),
            "target": "Response" if self.status else "Request", "port": 8000, "path": "*"}
        if self.percent < 100:
            spec["value"] = str(int(self.percent))
        if self.status:
            spec["replace"] = {"code": self.status}
        if self.delay:
            spec["delay"] = self.delay
        control.create_chaos(ctx.kube, "HTTPChaos", self.name, spec)

    def revert(self, ctx: Context) -> None:
        control.delete_chaos(ctx.kube, "HTTPChaos", self.name)


@dataclass
class Maintenance(Fault):
    """Maintenance mode switched on through the configmap (playbook 4.3)."""

    kind = "kube-maintenance"
    previous: str = "false"

    @property
    def description(self) -> str:
        return "maintenance mode on (MAINTENANCE_MODE=true)"

    def prepare(self, ctx: Context) -> None:
        self.previous = control.maintenance_mode(ctx.kube) or "false"

    def inject(self, ctx: Context) -> None:
        control.set_maintenance_mode(ctx.kube, "true")

    def revert(self, ctx: Context) -> None:
        if control.maintenance_mode(ctx.kube) != self.previous:
            control.set_maintenance_mode(ctx.kube, self.previous)


@dataclass
class NetworkPartition(Fault):
    """Chaos Mesh NetworkChaos: the backend's pods lose their route to the database (or any
    host:port), while the database itself stays up - a network partition, not an outage."""

    kind = "kube-network-partition"
    dependency: str = "database"
    targets: list[str] = field(default_factory=list)
    name: str = ""

    @property
    def description(self) -> str:
        return f"NetworkChaos {self.name}: backend partitioned from {', '.join(self.targets)}"

    def prepare(self, ctx: Context) -> None:
        self.name = self.name or f"gameday-partition-{uuid.uuid4().hex[:6]}"
        if not self.targets:
            if self.dependency != "database" or ctx.profile.database is None:
                raise FaultRefused(f"no address known for {self.dependency!r}: pass targets")
            from urllib.parse import urlsplit

            url = urlsplit(ctx.profile.database.url)
            self.targets = [f"{url.hostname}:{url.port or 5432}"]

    def inject(self, ctx: Context) -> None:
        control.create_chaos(ctx.kube, "NetworkChaos", self.name, {
            "action": "partition", "mode": "all", "direction": "to",
            "selector": control.backend_selector(ctx.kube), "externalTargets": self.targets})

    def revert(self, ctx: Context) -> None:
        control.delete_chaos(ctx.kube, "NetworkChaos", self.name)
