"""Faults through the Kubernetes API (and Chaos Mesh's resources where an agent is needed),
exactly as on staging: delete pods, scale to zero, a bad deploy, HTTP errors and latency,
maintenance mode. Each records what revert() needs in prepare(), before it is journaled."""

from __future__ import annotations

import math
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client as k8s

from playbook.faults.base import Fault, FaultRefused

CHAOS = ("chaos-mesh.org", "v1alpha1", "httpchaos")
NETCHAOS = ("chaos-mesh.org", "v1alpha1", "networkchaos")
ARGO = ("argoproj.io", "v1alpha1", "rollouts")


def do(kube: Any, what: str, fn: Any) -> Any:
    """One write or read through the probe's client; its sentence becomes the exception."""
    result, error = kube.call(what, fn)
    if error:
        raise RuntimeError(error)
    return result


def _not_found(kube: Any, what: str, fn: Any) -> bool:
    """Run a delete; True when it was already gone (a revert run twice)."""
    _, error = kube.call(what, fn)
    if error and "not found (404" in error:
        return True
    if error:
        raise RuntimeError(error)
    return False


def current_image(ctx: Any) -> str:
    """The backend's image as the Rollout (or else the Deployment) specifies it."""
    s = ctx.kube.section
    if s.rollout:
        obs = ctx.kube.rollout()
        if obs.error:
            raise RuntimeError(obs.error)
        return obs.image
    dep = do(ctx.kube, f"read deployment {s.deployment}", lambda api, t: k8s.AppsV1Api(
        api).read_namespaced_deployment(s.deployment, s.namespace, _request_timeout=t))
    return dep.spec.template.spec.containers[0].image


def set_image(ctx: Any, image: str) -> None:
    s = ctx.kube.section
    container = {"name": "backend", "image": image}
    body = {"spec": {"template": {"spec": {"containers": [container]}}}}
    if s.rollout:
        do(ctx.kube, f"set the image of rollout {s.rollout}", lambda api, t: k8s.CustomObjectsApi(
            api).patch_namespaced_custom_object(*ARGO[:2], s.namespace, ARGO[2], s.rollout,
                                                body, _request_timeout=t))
    else:
        do(ctx.kube, f"set the image of deployment {s.deployment}", lambda api, t: k8s.AppsV1Api(
            api).patch_namespaced_deployment(s.deployment, s.namespace, body,
                                             _request_timeout=t))


def replicas(ctx: Any) -> int:
    s = ctx.kube.section
    scale = do(ctx.kube, f"read the scale of deployment {s.deployment}", lambda api, t:
               k8s.AppsV1Api(api).read_namespaced_deployment_scale(s.deployment, s.namespace,
                                                                   _request_timeout=t))
    return int(scale.spec.replicas or 0)


def set_replicas(ctx: Any, n: int) -> None:
    s = ctx.kube.section
    do(ctx.kube, f"scale deployment {s.deployment} to {n}", lambda api, t: k8s.AppsV1Api(
        api).patch_namespaced_deployment_scale(s.deployment, s.namespace,
                                               {"spec": {"replicas": n}}, _request_timeout=t))


def _limit(ctx: Any, share: float, what: str) -> None:
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

    def prepare(self, ctx: Any) -> None:
        obs = ctx.kube.pods()
        if obs.error:
            raise RuntimeError(obs.error)
        pods = [p.name for p in obs.pods]
        n = math.ceil(len(pods) * self.percent / 100) if self.percent else self.count
        self.names = random.sample(pods, min(n, len(pods)))
        self.total = len(pods)

    def check_allowed(self, ctx: Any) -> None:
        _limit(ctx, len(self.names) / max(1, getattr(self, "total", len(self.names))),
               "deleting pods")

    def params(self) -> dict[str, Any]:
        return {"count": self.count, "percent": self.percent, "names": self.names}

    def inject(self, ctx: Any) -> None:
        s = ctx.kube.section
        for name in self.names:
            _not_found(ctx.kube, f"delete pod {name}", lambda api, t, n=name: k8s.CoreV1Api(
                api).delete_namespaced_pod(n, s.namespace, _request_timeout=t))

    def revert(self, ctx: Any) -> None:
        """Deleted pods are replaced by the controller: nothing to undo but to let it heal."""


@dataclass
class ScaledToZero(Fault):
    """Scale the backend's Deployment to zero replicas: a complete outage."""

    kind = "kube-scaled-to-zero"
    previous: int = 0

    @property
    def description(self) -> str:
        return f"deployment scaled from {self.previous} to 0 replicas"

    def prepare(self, ctx: Any) -> None:
        self.previous = self.previous or replicas(ctx)

    def check_allowed(self, ctx: Any) -> None:
        _limit(ctx, 1.0, "scaling to zero")

    def inject(self, ctx: Any) -> None:
        set_replicas(ctx, 0)

    def revert(self, ctx: Any) -> None:
        if self.previous and replicas(ctx) < self.previous:
            set_replicas(ctx, self.previous)


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

    def prepare(self, ctx: Any) -> None:
        self.previous_image = self.previous_image or current_image(ctx)

    def check_allowed(self, ctx: Any) -> None:
        _limit(ctx, 1.0, "a deploy to every pod")

    def inject(self, ctx: Any) -> None:
        repo = self.previous_image.rsplit(":", 1)[0]
        version = self.previous_image.rsplit(":", 1)[-1]
        set_image(ctx, f"{repo}:{version}-{self.tag}")

    def revert(self, ctx: Any) -> None:
        if current_image(ctx) != self.previous_image:
            set_image(ctx, self.previous_image)


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

    def prepare(self, ctx: Any) -> None:
        self.name = self.name or f"gameday-http-{uuid.uuid4().hex[:6]}"

    def check_allowed(self, ctx: Any) -> None:
        _limit(ctx, self.percent / 100, "the HTTP fault")

    def inject(self, ctx: Any) -> None:
        s = ctx.kube.section
        spec: dict[str, Any] = {
            "mode": "all" if self.percent >= 100 else "fixed-percent",
            "selector": {"namespaces": [s.namespace],
                         "labelSelectors": dict(kv.split("=", 1) for kv in
                                                s.selector.split(","))},
            "target": "Response" if self.status else "Request", "port": 8000, "path": "*"}
        if self.percent < 100:
            spec["value"] = str(int(self.percent))
        if self.status:
            spec["replace"] = {"code": self.status}
        if self.delay:
            spec["delay"] = self.delay
        body = {"apiVersion": "chaos-mesh.org/v1alpha1", "kind": "HTTPChaos",
                "metadata": {"name": self.name, "namespace": s.namespace,
                             "labels": {"app.kubernetes.io/managed-by": "playbook-gameday"}},
                "spec": spec}
        do(ctx.kube, f"create HTTPChaos {self.name}", lambda api, t: k8s.CustomObjectsApi(
            api).create_namespaced_custom_object(*CHAOS[:2], s.namespace, CHAOS[2], body,
                                                 _request_timeout=t))

    def revert(self, ctx: Any) -> None:
        s = ctx.kube.section
        _not_found(ctx.kube, f"delete HTTPChaos {self.name}", lambda api, t: k8s.CustomObjectsApi(
            api).delete_namespaced_custom_object(*CHAOS[:2], s.namespace, CHAOS[2], self.name,
                                                 _request_timeout=t))


def maintenance_mode(ctx: Any) -> str | None:
    s = ctx.kube.section
    cm = do(ctx.kube, f"read configmap {s.configmap}", lambda api, t: k8s.CoreV1Api(
        api).read_namespaced_config_map(s.configmap, s.namespace, _request_timeout=t))
    return (cm.data or {}).get("MAINTENANCE_MODE")


def set_maintenance_mode(ctx: Any, value: str) -> None:
    s = ctx.kube.section
    do(ctx.kube, f"patch configmap {s.configmap}", lambda api, t: k8s.CoreV1Api(
        api).patch_namespaced_config_map(s.configmap, s.namespace,
                                         {"data": {"MAINTENANCE_MODE": value}},
                                         _request_timeout=t))


@dataclass
class Maintenance(Fault):
    """Maintenance mode switched on through the configmap (playbook 4.3)."""

    kind = "kube-maintenance"
    previous: str = "false"

    @property
    def description(self) -> str:
        return "maintenance mode on (MAINTENANCE_MODE=true)"

    def prepare(self, ctx: Any) -> None:
        self.previous = maintenance_mode(ctx) or "false"

    def inject(self, ctx: Any) -> None:
        set_maintenance_mode(ctx, "true")

    def revert(self, ctx: Any) -> None:
        if maintenance_mode(ctx) != self.previous:
            set_maintenance_mode(ctx, self.previous)


def wait_available(ctx: Any, timeout: float) -> None:
    """Until the Deployment has as many available replicas as desired (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        obs = ctx.kube.deployment()
        if not obs.error and obs.desired and obs.available >= obs.desired:
            return
        time.sleep(0.5)
    raise TimeoutError(f"deployment not fully available after {timeout:g} s")


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

    def prepare(self, ctx: Any) -> None:
        self.name = self.name or f"gameday-partition-{uuid.uuid4().hex[:6]}"
        if not self.targets:
            if self.dependency != "database" or ctx.profile.database is None:
                raise FaultRefused(f"no address known for {self.dependency!r}: pass targets")
            from urllib.parse import urlsplit

            url = urlsplit(ctx.profile.database.url)
            self.targets = [f"{url.hostname}:{url.port or 5432}"]

    def inject(self, ctx: Any) -> None:
        s = ctx.kube.section
        body = {"apiVersion": "chaos-mesh.org/v1alpha1", "kind": "NetworkChaos",
                "metadata": {"name": self.name, "namespace": s.namespace,
                             "labels": {"app.kubernetes.io/managed-by": "playbook-gameday"}},
                "spec": {"action": "partition", "mode": "all", "direction": "to",
                         "selector": {"namespaces": [s.namespace],
                                      "labelSelectors": dict(kv.split("=", 1) for kv in
                                                             s.selector.split(","))},
                         "externalTargets": self.targets}}
        do(ctx.kube, f"create NetworkChaos {self.name}", lambda api, t: k8s.CustomObjectsApi(
            api).create_namespaced_custom_object(*NETCHAOS[:2], s.namespace, NETCHAOS[2], body,
                                                 _request_timeout=t))

    def revert(self, ctx: Any) -> None:
        s = ctx.kube.section
        _not_found(ctx.kube, f"delete NetworkChaos {self.name}", lambda api, t:
                   k8s.CustomObjectsApi(api).delete_namespaced_custom_object(
                       *NETCHAOS[:2], s.namespace, NETCHAOS[2], self.name, _request_timeout=t))
