"""Playbook 4.3, traffic management: route to stable pods only, maintenance mode."""

from __future__ import annotations

from playbook.control import kube as control
from playbook.control.context import Context

STABLE = {"version": "stable"}


def route_to_stable(ctx: Context) -> str:
    """`kubectl patch service ... -p '{"spec":{"selector":{"version":"stable"}}}'`."""
    control.patch_service_selector(ctx.kube, STABLE)
    return f"service {ctx.kube.section.service} now selects version=stable pods only"


def maintenance(ctx: Context, on: bool) -> str:
    want = "true" if on else "false"
    if control.maintenance_mode(ctx.kube) != want:
        control.set_maintenance_mode(ctx.kube, want)
    return f"maintenance mode {'on' if on else 'off'}"
