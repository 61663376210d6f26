"""Playbook 4.3, traffic management: route to stable pods only, maintenance mode."""

from __future__ import annotations

from typing import Any

from kubernetes import client as k8s

from playbook.faults.kube import do, maintenance_mode, set_maintenance_mode


def route_to_stable(ctx: Any) -> str:
    """`kubectl patch service ... -p '{"spec":{"selector":{"version":"stable"}}}'`."""
    s = ctx.kube.section
    do(ctx.kube, f"patch service {s.service}", lambda api, t: k8s.CoreV1Api(
        api).patch_namespaced_service(s.service, s.namespace,
                                      {"spec": {"selector": {"version": "stable"}}},
                                      _request_timeout=t))
    return f"service {s.service} now selects version=stable pods only"


def maintenance(ctx: Any, on: bool) -> str:
    want = "true" if on else "false"
    if maintenance_mode(ctx) != want:
        set_maintenance_mode(ctx, want)
    return f"maintenance mode {'on' if on else 'off'}"
