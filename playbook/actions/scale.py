"""Playbook 4.1 quick fixes: scale up, restart failed pods."""

from __future__ import annotations

from typing import Any

from kubernetes import client as k8s

from playbook.faults.kube import do, replicas, set_replicas


def scale_up(ctx: Any, to: int) -> str:
    """`kubectl scale deployment ... --replicas=N` (never scales down)."""
    before = replicas(ctx)
    if before < to:
        set_replicas(ctx, to)
    return f"scaled {ctx.kube.section.deployment} from {before} to {max(before, to)} replicas"


def restart_failed_pods(ctx: Any) -> str:
    """`kubectl delete pods -l app=...,status.phase=Failed`, and pods stuck crash-looping."""
    s = ctx.kube.section
    obs = ctx.kube.pods()
    if obs.error:
        raise RuntimeError(obs.error)
    bad = [p.name for p in obs.pods if p.phase == "Failed" or p.waiting == "CrashLoopBackOff"]
    for name in bad:
        do(ctx.kube, f"delete pod {name}", lambda api, t, n=name: k8s.CoreV1Api(
            api).delete_namespaced_pod(n, s.namespace, _request_timeout=t))
    return f"deleted {len(bad)} failed pod(s)" + (f": {', '.join(bad)}" if bad else "")
