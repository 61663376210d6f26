"""Playbook 1.1 (`kubectl get pods`, `kubectl get nodes`), 1.2 (`kubectl argo rollouts get
rollout`) and 3.1 (`kubectl get events`): is the backend's workload healthy in its cluster?

Severities (playbook 1.1; the rules are playbook/severity.py's):
- no backend pod ready, no pod at all, every node NotReady, no replica available (a Deployment
  scaled to 0 of 0 included): P0 - the cluster cannot serve the service (complete outage);
- some pods not ready, some nodes NotReady, fewer replicas available than desired, a rollout
  Degraded (a failed deploy - the emergency-rollback trigger of 4.2): P1 - partial degradation;
- crash-looping pods, restarts over the budget, a rollout still Progressing, Paused or not on
  its stable revision: P2 - limited impact while the other replicas serve;
- Warning events: P3 - evidence to read; the checks above carry the impact.
An API that cannot be asked (unreachable, 401, 403, timeout) fails every check with one
sentence, at P1 (or the check's own level when lower): the cluster is blind, not necessarily down.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest

from playbook import severity as sev
from playbook.config import Profile
from playbook.plugin import attach_json
from playbook.severity import CheckFailed

infra = pytest.mark.incident_type("infrastructure")
needs_kube = pytest.mark.requires("kubernetes")
MAX_LISTED = 5


def _listed(items: list[str]) -> str:
    more = f"; (+{len(items) - MAX_LISTED} more)" if len(items) > MAX_LISTED else ""
    return "; ".join(items[:MAX_LISTED]) + more


def _observed(name: str, obs: Any, level: str) -> None:
    """Attach the observation; fail with its error sentence when the API could not answer."""
    attach_json(name, dataclasses.asdict(obs))
    if obs.error:
        raise CheckFailed(obs.error, sev.unobserved(level))


@infra
@needs_kube
@pytest.mark.severity("P0")
def test_backend_pods_running_and_ready(kube: Any) -> None:
    """`kubectl get pods -n security-dashboard`: every backend pod Running and Ready."""
    obs = kube.pods()
    _observed("backend pods", obs, "P0")
    level = sev.pods_ready(len(obs.ready), len(obs.pods))
    if level and not obs.pods:
        raise CheckFailed(f"no pod matches {obs.where} - the deployment is scaled to zero or "
                          "the selector is wrong", level)
    if level:
        bad = obs.not_ready
        raise CheckFailed(f"{len(bad)} of {len(obs.pods)} backend pods are not Running and "
                          f"Ready ({obs.where}): {_listed([p.describe() for p in bad])}", level)


@infra
@needs_kube
@pytest.mark.severity("P2")
def test_no_pod_crash_looping(kube: Any) -> None:
    """No backend container in CrashLoopBackOff (or stuck on its image or config)."""
    obs = kube.pods()
    _observed("backend pods", obs, "P2")
    failing = [p for p in obs.pods if p.failing]
    assert not failing, (
        f"{len(failing)} backend pod{'s' if len(failing) > 1 else ''} crash-looping "
        f"({obs.where}): {_listed([p.describe() for p in failing])} - read "
        "`kubectl logs --previous` of the pod")


@infra
@needs_kube
@pytest.mark.severity("P2")
def test_restarts_within_budget(kube: Any, profile: Profile) -> None:
    """No backend pod restarted its containers more than kubernetes.restart_budget times."""
    assert profile.kubernetes is not None
    budget = profile.kubernetes.restart_budget
    obs = kube.pods()
    _observed("backend pods", obs, "P2")
    over = [p for p in obs.pods if p.restarts > budget]
    assert not over, (
        f"{len(over)} backend pod{'s' if len(over) > 1 else ''} restarted more than the "
        f"budget of {budget} ({obs.where}): {_listed([p.describe() for p in over])}")


@infra
@needs_kube
@pytest.mark.severity("P0")
def test_nodes_ready(kube: Any) -> None:
    """`kubectl get nodes`: every node Ready."""
    obs = kube.nodes()
    _observed("nodes", obs, "P0")
    bad = obs.not_ready
    level = sev.nodes_ready(len(obs.nodes) - len(bad), len(obs.nodes))
    if level and not obs.nodes:
        raise CheckFailed(f"no node is registered ({obs.where})", level)
    if level:
        raise CheckFailed(f"{len(bad)} of {len(obs.nodes)} nodes not Ready ({obs.where}): "
                          f"{_listed([n.describe() for n in bad])}", level)


@infra
@needs_kube
@pytest.mark.severity("P0")
def test_deployment_available(kube: Any) -> None:
    """The backend's Deployment has as many available replicas as it wants - and wants some:
    scaled to zero, it serves nothing."""
    obs = kube.deployment()
    _observed("deployment", obs, "P0")
    level = sev.replicas_available(obs.available, obs.desired)
    if level and obs.desired == 0:
        raise CheckFailed(f"{obs.where} is scaled to 0 replicas (0 of 0 available) - it serves "
                          "nothing: scale it back up (`kubectl scale deployment ... "
                          "--replicas=N`)", level)
    if level:
        raise CheckFailed(f"{obs.where}: {obs.available} of {obs.desired} desired replicas "
                          f"available ({obs.ready} ready, {obs.updated} up to date)", level)


@infra
@needs_kube
@pytest.mark.severity("P3")
def test_no_recent_warning_events(kube: Any) -> None:
    """`kubectl get events --sort-by=.lastTimestamp`: no Warning in the window (30 min)."""
    obs = kube.warning_events()
    _observed("warning events", obs, "P3")
    now = dt.datetime.now(dt.UTC)
    assert not obs.events, (
        f"{len(obs.events)} Warning event{'s' if len(obs.events) > 1 else ''} in the last "
        f"{obs.window_minutes:g} min ({obs.where}): "
        f"{_listed([e.describe(now) for e in obs.events])}")


@pytest.mark.incident_type("service outage")
@needs_kube
@pytest.mark.severity("P1")
def test_rollout_healthy_on_stable(kube: Any, profile: Profile) -> None:
    """`kubectl argo rollouts get rollout`: Healthy, and the running revision is the stable
    one (no update stuck half-way)."""
    assert profile.kubernetes is not None
    if not profile.kubernetes.rollout:
        pytest.skip(f"profile {profile.name} names no Argo rollout (kubernetes.rollout)")
    obs = kube.rollout()
    _observed("rollout", obs, "P1")
    if obs.phase == "Healthy" and obs.on_stable:
        return
    seen = (f"{obs.where} is {obs.phase}" + (f" ({obs.message})" if obs.message else "")
            + f" on pod hash {obs.current_hash or '?'} (revision {obs.revision or '?'}, image "
            f"{obs.image or '?'}), stable is {obs.stable_hash or '?'}")
    if obs.phase == "Degraded":
        raise CheckFailed(f"{seen} - roll back: `kubectl argo rollouts abort` then `undo`",
                          "P1")
    raise CheckFailed(f"{seen} - expected Healthy on the stable revision", "P2")
