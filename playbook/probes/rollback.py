"""Can the backend be rolled back right now (playbook 4.2 Emergency Rollback, 4.3 route to
stable)? Read-only: the only request that looks like a write is a server-side dry run
(`dryRun=All`), which the API server validates and answers without persisting anything.

What it observes, through the `Kube` client of playbook.probes.kube (one per run):
- the workload: the Argo Rollout when the profile names one, else the Deployment - its
  revisionHistoryLimit, its current revision and image, Argo's stableRS;
- the rollback target: Argo's stable ReplicaSet while a rollout is under way, else the newest
  ReplicaSet of an older revision (what `kubectl argo rollouts undo` / `kubectl rollout undo`
  go back to);
- the Service's selector as playbook 4.3 leaves it (`spec.selector` plus `version: stable`)
  and the Running and Ready pods it matches;
- a dry run of the rollback itself: a patch of the workload's pod template to the target's,
  with the workload's resourceVersion, sent with dryRun=All.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client as k8s

from playbook.probes.kube import Kube

STABLE_LABEL = {"version": "stable"}  # playbook 4.3: kubectl patch service ... version=stable
REVISION_KEYS = ("rollout.argoproj.io/revision", "deployment.kubernetes.io/revision")
ARGO = ("argoproj.io", "v1alpha1")


@dataclass(frozen=True)
class Revision:
    number: int
    replicaset: str
    image: str
    pod_hash: str


@dataclass(frozen=True)
class RollbackObservation:
    workload: str  # "Argo rollout X in namespace N at URL" / "deployment X ..."
    kind: str = ""  # Rollout | Deployment
    history_limit: int | None = None
    current_revision: int | None = None
    current_image: str = ""
    stable_hash: str = ""
    revisions: list[Revision] = field(default_factory=list)
    target: Revision | None = None  # what a rollback goes back to
    selector: dict[str, str] = field(default_factory=dict)  # the Service's, as 4.3 leaves it
    service_selector: dict[str, str] = field(default_factory=dict)
    service_where: str = ""
    selected_pods: list[str] = field(default_factory=list)  # Running and Ready ones
    dry_run: str = ""  # "accepted" / "" (not tried)
    error: str | None = None  # the workload could not be read at all
    selector_error: str | None = None
    dry_run_error: str | None = None


def _revision(obj: dict[str, Any]) -> int | None:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    for key in REVISION_KEYS:
        try:
            return int(annotations[key])
        except (KeyError, TypeError, ValueError):
            continue
    return None


def _image(template: dict[str, Any]) -> str:
    containers = (template.get("spec") or {}).get("containers") or []
    return str(containers[0].get("image") or "") if containers else ""


def selector_text(selector: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in selector.items())


def undo_patch(workload: dict[str, Any], rs: dict[str, Any]) -> dict[str, Any]:
    """The patch `rollout undo` sends: the target ReplicaSet's pod template (without the
    pod-template-hash labels the controllers add), guarded by the workload's resourceVersion."""
    template = copy.deepcopy((rs.get("spec") or {}).get("template") or {})
    labels = (template.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop("pod-template-hash", None)  # Deployment controller's
        labels.pop("rollouts-pod-template-hash", None)  # Argo's
    template.pop("status", None)
    return {"metadata": {"resourceVersion": workload["metadata"].get("resourceVersion")},
            "spec": {"template": template}}


def observe(kube: Kube) -> RollbackObservation:
    s = kube.section
    ns = s.namespace
    argo = bool(s.rollout)
    name = s.rollout or s.deployment
    label = f"Argo rollout {name}" if argo else f"deployment {name}"

    def read(api: k8s.ApiClient, t: Any) -> dict[str, Any]:
        if argo:
            return k8s.CustomObjectsApi(api).get_namespaced_custom_object(
                *ARGO, ns, "rollouts", name, _request_timeout=t)
        return api.sanitize_for_serialization(k8s.AppsV1Api(api).read_namespaced_deployment(
            name, ns, _request_timeout=t))

    obj, error = kube.call(f"read {label} in namespace {ns}", read)
    where = f"{label} in namespace {ns} at {kube.server}"
    if error:
        return RollbackObservation(where, error=error)
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    limit = spec.get("revisionHistoryLimit", 10)  # both APIs default it to 10
    current = _revision(obj)
    current_image = _image(spec.get("template") or {})
    stable = str(status.get("stableRS") or "") if argo else ""

    rs_list, error = kube.call(f"list replicasets in namespace {ns}", lambda api, t: (
        api.sanitize_for_serialization(k8s.AppsV1Api(api).list_namespaced_replica_set(
            ns, _request_timeout=t))))
    if error:
        return RollbackObservation(where, "Rollout" if argo else "Deployment", limit, current,
                                   current_image, stable, error=error)
    owned = {}
    for rs in rs_list.get("items") or []:
        meta = rs.get("metadata") or {}
        owners = meta.get("ownerReferences") or []
        if owners and not any(o.get("name") == name for o in owners):
            continue
        number = _revision(rs)
        if number is None:
            continue
        h = (meta.get("labels") or {}).get("rollouts-pod-template-hash") or (
            meta.get("labels") or {}).get("pod-template-hash") or ""
        owned[number] = (Revision(number, meta.get("name", ""),
                                  _image((rs.get("spec") or {}).get("template") or {}), h), rs)
    revisions = [owned[n][0] for n in sorted(owned)]
    target_rs = None
    current_hash = str(status.get("currentPodHash") or "")
    if argo and stable and stable != current_hash:
        # A rollout under way (or aborted): undo goes back to the stable ReplicaSet.
        target_rs = next((owned[n] for n in sorted(owned, reverse=True)
                          if owned[n][0].pod_hash == stable), None)
    if target_rs is None and current is not None:
        older = [n for n in owned if n < current and owned[n][0].image != current_image]
        target_rs = owned[max(older)] if older else None
    target = target_rs[0] if target_rs else None

    # The Service's selector as playbook 4.3 leaves it, and the pods it would route to.
    svc_where = f"service {s.service} in namespace {ns}"
    svc, sel_error = kube.call(f"read {svc_where}", lambda api, t: k8s.CoreV1Api(
        api).read_namespaced_service(s.service, ns, _request_timeout=t))
    service_selector: dict[str, str] = {}
    selector: dict[str, str] = {}
    selected: list[str] = []
    if not sel_error:
        service_selector = dict(svc.spec.selector or {})
        selector = {**service_selector, **STABLE_LABEL} if service_selector else {}
        if selector:
            pods, sel_error = kube.call(
                f"list pods {selector_text(selector)} in namespace {ns}",
                lambda api, t: k8s.CoreV1Api(api).list_namespaced_pod(
                    ns, label_selector=selector_text(selector), _request_timeout=t))
            if not sel_error:
                selected = [p.metadata.name for p in pods.items if p.status.phase == "Running"
                            and any(c.type == "Ready" and c.status == "True"
                                    for c in p.status.conditions or [])]

    dry, dry_error = "", None
    if target_rs is not None:
        dry, dry_error = _dry_run(kube, argo, name, ns, label, obj, target_rs[1], read)
    return RollbackObservation(
        where, "Rollout" if argo else "Deployment", limit, current, current_image, stable,
        revisions, target, selector, service_selector, f"{svc_where} at {kube.server}",
        selected, dry, None, sel_error, dry_error)


def _dry_run(kube: Kube, argo: bool, name: str, ns: str, label: str, obj: dict[str, Any],
             rs: dict[str, Any], read: Any) -> tuple[str, str | None]:
    """PATCH the workload back to `rs`'s template with dryRun=All. A 409 (the workload changed
    between the read and the patch) is retried once with a fresh read."""
    for attempt in range(2):
        body = undo_patch(obj, rs)

        def patch(api: k8s.ApiClient, t: Any, body: dict[str, Any] = body) -> Any:
            if argo:
                return k8s.CustomObjectsApi(api).patch_namespaced_custom_object(
                    *ARGO, ns, "rollouts", name, body, dry_run="All", _request_timeout=t)
            return k8s.AppsV1Api(api).patch_namespaced_deployment(
                name, ns, body, dry_run="All", _request_timeout=t)

        # A dry run needs the same `patch` permission as the rollback itself.
        _, error = kube.call(f"patch {label} in namespace {ns} (rollback, dryRun=All)", patch,
                             access="patch")
        if error is None:
            return "accepted", None
        if " 409 " in error and attempt == 0:
            fresh, read_error = kube.call(f"read {label} in namespace {ns}", read)
            if read_error:
                return "", read_error
            obj = fresh
            continue
        return "", error
    return "", None  # not reached
