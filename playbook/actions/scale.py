"""Playbook 4.1 quick fixes: scale up, restart failed pods."""

from __future__ import annotations

from playbook.control import kube as control
from playbook.control.context import Context


def scale_up(ctx: Context, to: int) -> str:
    """`kubectl scale deployment ... --replicas=N` (never scales down)."""
    before = control.replicas(ctx.kube)
    if before < to:
        control.scale(ctx.kube, to)
    return f"scaled {ctx.kube.section.deployment} from {before} to {max(before, to)} replicas"


def restart_failed_pods(ctx: Context) -> str:
    """`kubectl delete pods -l app=...,status.phase=Failed`, and pods stuck crash-looping."""
    obs = ctx.kube.pods()
    if obs.error:
        raise RuntimeError(obs.error)
    bad = [p.name for p in obs.pods if p.phase == "Failed" or p.waiting == "CrashLoopBackOff"]
    for name in bad:
        control.delete_pod(ctx.kube, name)
    return f"deleted {len(bad)} failed pod(s)" + (f": {', '.join(bad)}" if bad else "")
