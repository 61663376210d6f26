"""Playbook 4.2, emergency rollback: back to the last stable revision.

With Argo Rollouts: abort the update in progress, then point the rollout's template at the
stable ReplicaSet's image (`kubectl argo rollouts abort` + `undo`). With a plain Deployment:
`kubectl rollout undo` - the template of the previous revision's ReplicaSet."""

from __future__ import annotations

from typing import Any

from playbook.control import kube as control
from playbook.control.context import Context

REVISION = "deployment.kubernetes.io/revision"


def _image(rs: Any) -> str:
    return rs.spec.template.spec.containers[0].image


def stable_image(ctx: Context) -> str:
    """The image of the revision to go back to: while an Argo update is in progress, the
    stable ReplicaSet's; once the bad build has itself become stable (it passed its readiness
    probes), the revision before it - `kubectl argo rollouts undo` / `kubectl rollout undo`."""
    rs = control.replicasets(ctx.kube)
    by_revision = sorted(rs, key=lambda r: int((r.metadata.annotations or {}).get(REVISION, 0)))
    if ctx.kube.section.rollout:
        obs = ctx.kube.rollout()
        if obs.error:
            raise RuntimeError(obs.error)
        hashes = {(r.metadata.labels or {}).get("pod-template-hash"): r for r in rs}
        if obs.stable_hash != obs.current_hash and obs.stable_hash in hashes:
            return _image(hashes[obs.stable_hash])
        current = hashes.get(obs.current_hash)
        older = [r for r in by_revision if r is not current and _image(r) != obs.image]
        if older:
            return _image(older[-1])
        raise RuntimeError(f"rollout {obs.name}: no revision other than the current one "
                           f"({obs.image}) to roll back to")
    if len(by_revision) < 2:
        raise RuntimeError("the deployment has no previous revision to roll back to")
    return _image(by_revision[-2])


def emergency_rollback(ctx: Context) -> str:
    s = ctx.kube.section
    target = stable_image(ctx)
    if s.rollout:
        control.abort_rollout(ctx.kube)
    before = control.image(ctx.kube)
    if before != target:
        control.set_image(ctx.kube, target)
    return f"rolled back {s.rollout or s.deployment} from {before} to {target}"
