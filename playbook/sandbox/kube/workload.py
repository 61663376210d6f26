"""The backend's workload: its Deployment and its Argo Rollout, two views of the same pods, their
ReplicaSets, and the controller that rolls the pods.

- spec.replicas is the number of replica processes; the image tag is their APP_VERSION.
  Changing the image rolls the pods one at a time (maxSurge 1, maxUnavailable 0). Tags ending in
  `bad-5xx`, `bad-slow` or `bad-crash` make a bad build (see app.py). A new
  `kubectl.kubernetes.io/restartedAt` template annotation (or the Rollout's spec.restartAt)
  replaces every pod created before it.
- Rollout status: Healthy once every pod runs the spec's version and is ready (that version
  becomes stableRS); Progressing meanwhile; Degraded after progressDeadlineSeconds or after an
  abort (`status.abort: true` through rollouts/status; the pods go back to the stable version;
  patching the image back to the stable one - `undo` - makes it Healthy again); Paused with
  spec.paused. The Deployment's conditions say the same the way a Deployment does.
- History: like a cluster that has deployed before, a fresh sandbox has two revisions - the
  previous version (1.4.2 -> 1.4.1, an old ReplicaSet scaled to zero) as revision 1 and the
  running one as revision 2 - so a rollback has a target from the start; revisionHistoryLimit
  prunes old ReplicaSets (0 leaves none).
- Only what is modelled can change (422 naming the field otherwise): replicas (0 to
  MAX_REPLICAS), paused, revisionHistoryLimit, progressDeadlineSeconds, the one container's
  image, template annotations, restartAt, labels and annotations.
"""

from __future__ import annotations

import copy
import re
import time
from dataclasses import dataclass, field
from typing import Any

from playbook.sandbox.kube.errors import ApiError, invalid
from playbook.sandbox.kube.patch import changed_paths
from playbook.sandbox.kube.pods import CONTAINER, IMAGE_REPO, replicaset_name
from playbook.sandbox.kube.resources import Resource
from playbook.sandbox.kube.store import Store, only_metadata
from playbook.sandbox.kube.times import ts
from playbook.sandbox.supervisor import DEPLOYMENT, NAMESPACE, Pod, Supervisor

MAX_REPLICAS = 20  # ports are reserved for this many replicas
PROGRESS_DEADLINE = 30  # seconds (Kubernetes and Argo: 600); patchable per object


def previous_version(version: str) -> str:
    """The version deployed before `version`: 1.4.2 -> 1.4.1, 2.0.0 -> 2.0.0-previous."""
    m = re.fullmatch(r"(.*?)(\d+)", version)
    if m and int(m.group(2)) > 0:
        return f"{m.group(1)}{int(m.group(2)) - 1}"
    return f"{version}-previous"


def image_tag(image: Any) -> str | None:
    """The tag of `registry.sandbox.local/security-dashboard-backend:<tag>`, else None."""
    if not isinstance(image, str) or not image.startswith(IMAGE_REPO + ":"):
        return None
    tag = image[len(IMAGE_REPO) + 1:]
    return tag if re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", tag) else None


@dataclass
class WorkloadState:
    """The state of the backend's Deployment/Rollout that the supervisor does not hold."""

    spec_version: str  # the image tag the spec asks for (sup.version differs while aborted)
    stable: str  # the version of the last complete rollout (Argo's stableRS)
    revisions: dict[str, int]  # version -> revision number (the newest is the highest)
    generation: int = 1
    paused: bool = False
    aborted: bool = False
    history_limit: int = 10
    progress_deadline: int = PROGRESS_DEADLINE
    restarted_at: float = 0.0  # pods created before this are replaced (rollout restart)
    restart_annotation: str | None = None
    unconverged_since: float | None = None
    phase: str = "Healthy"
    message: str = ""
    degraded_reported: bool = False
    labels: dict[str, str] = field(default_factory=lambda: {"app": DEPLOYMENT})
    annotations: dict[str, str] = field(default_factory=dict)
    rollout_labels: dict[str, str] = field(default_factory=lambda: {"app": DEPLOYMENT})
    rollout_annotations: dict[str, str] = field(default_factory=dict)


class Workload:
    """The Deployment, its ReplicaSets and the Rollout, and their controller."""

    def __init__(self, store: Store, sup: Supervisor) -> None:
        self.store, self.sup = store, sup
        # Like a cluster that has deployed before: the previous version is revision 1 (an old
        # ReplicaSet scaled to zero, kept by revisionHistoryLimit), the running one revision 2,
        # so `rollout undo` has a target from the start (checks/test_rollback.py).
        self.state = WorkloadState(spec_version=sup.version, stable=sup.version,
                                   revisions={previous_version(sup.version): 1, sup.version: 2})
        self.next_revision = 3

    def template(self, version: str) -> dict[str, Any]:
        restarted = self.state.restart_annotation
        return {"metadata": {"labels": {"app": DEPLOYMENT, "version": "stable"}, **(
            {"annotations": {"kubectl.kubernetes.io/restartedAt": restarted}}
            if restarted else {})},
                "spec": {"containers": [{"name": CONTAINER,
                                         "image": f"{IMAGE_REPO}:{version}"}]}}

    def counts(self) -> dict[str, int]:
        pods = list(self.sup.pods.values())
        updated = [p for p in pods if not self.outdated(p)]
        ready = [p for p in pods if p.ready]
        return {"replicas": len(pods), "updatedReplicas": len(updated),
                "readyReplicas": len(ready), "availableReplicas": len(ready),
                "unavailableReplicas": max(0, len(pods) - len(ready))}

    def outdated(self, pod: Pod) -> bool:
        return pod.version != self.sup.version or pod.created < self.state.restarted_at

    def deployment(self) -> dict[str, Any]:
        w, sup = self.state, self.sup
        c = self.counts()
        available = c["availableReplicas"] >= sup.replicas
        if w.phase == "Degraded" and not w.aborted:
            progressing = {"type": "Progressing", "status": "False",
                           "reason": "ProgressDeadlineExceeded",
                           "message": f'ReplicaSet "{self.rs_name(sup.version)}" has timed '
                                      "out progressing."}
        elif w.phase == "Healthy":
            progressing = {"type": "Progressing", "status": "True",
                           "reason": "NewReplicaSetAvailable",
                           "message": f'ReplicaSet "{self.rs_name(sup.version)}" has '
                                      "successfully progressed."}
        else:
            progressing = {"type": "Progressing", "status": "True",
                           "reason": "ReplicaSetUpdated",
                           "message": f'ReplicaSet "{self.rs_name(sup.version)}" is '
                                      "progressing."}
        status: dict[str, Any] = {"observedGeneration": w.generation, "conditions": [
            {"type": "Available", "status": "True" if available else "False",
             "reason": "MinimumReplicasAvailable" if available else
             "MinimumReplicasUnavailable",
             "message": "Deployment has minimum availability." if available else
             "Deployment does not have minimum availability."},
            progressing]}
        # Like the API server: zero counts are left out of the status.
        status.update({k: v for k, v in c.items() if v})
        spec: dict[str, Any] = {
            "replicas": sup.replicas, "selector": {"matchLabels": {"app": DEPLOYMENT}},
            "template": self.template(w.spec_version),
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "revisionHistoryLimit": w.history_limit,
            "progressDeadlineSeconds": w.progress_deadline}
        if w.paused:
            spec["paused"] = True
        return self.store.stamp("deploy", {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": self.store.meta(
                "Deployment", DEPLOYMENT, NAMESPACE, self.store.created, w.labels,
                {**w.annotations,
                 "deployment.kubernetes.io/revision": str(w.revisions[w.spec_version])},
                generation=w.generation),
            "spec": spec, "status": status})

    def deployments(self, ns: str | None) -> list[dict[str, Any]]:
        return [self.deployment()] if ns in (None, NAMESPACE) else []

    def rs_name(self, version: str) -> str:
        return replicaset_name(self.sup, version)

    def replicasets(self, ns: str | None) -> list[dict[str, Any]]:
        if ns not in (None, NAMESPACE):
            return []
        out = []
        for version, revision in sorted(self.state.revisions.items(), key=lambda kv: kv[1]):
            pods = [p for p in self.sup.pods.values() if p.version == version]
            ready = [p for p in pods if p.ready]
            name = self.rs_name(version)
            h = self.sup.template_hash(version)
            desired = self.sup.replicas if version == self.sup.version else len(pods)
            template = self.template(version)
            template["metadata"]["labels"]["pod-template-hash"] = h
            status = {"replicas": len(pods), "observedGeneration": 1}
            status.update({k: v for k, v in {"readyReplicas": len(ready),
                                             "availableReplicas": len(ready),
                                             "fullyLabeledReplicas": len(pods)}.items() if v})
            out.append(self.store.stamp(f"rs/{name}", {
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": self.store.meta(
                    "ReplicaSet", name, NAMESPACE, self.store.created,
                    {"app": DEPLOYMENT, "pod-template-hash": h},
                    {"deployment.kubernetes.io/revision": str(revision),
                     "rollout.argoproj.io/revision": str(revision)},
                    generation=1,
                    ownerReferences=[{"apiVersion": "apps/v1", "kind": "Deployment",
                                      "name": DEPLOYMENT, "controller": True,
                                      "blockOwnerDeletion": True,
                                      "uid": self.store.uid(f"Deployment/{NAMESPACE}/"
                                                            f"{DEPLOYMENT}")}]),
                "spec": {"replicas": desired,
                         "selector": {"matchLabels": {"app": DEPLOYMENT,
                                                      "pod-template-hash": h}},
                         "template": template},
                "status": status}))
        return out

    def rollout(self) -> dict[str, Any]:
        w, sup = self.state, self.sup
        c = self.counts()
        created = ts(self.store.created)
        status: dict[str, Any] = {
            "phase": w.phase, "message": w.message,
            "stableRS": sup.template_hash(w.stable),
            "currentPodHash": sup.template_hash(w.spec_version),
            "observedGeneration": str(w.generation),
            "selector": f"app={DEPLOYMENT}", "HPAReplicas": c["replicas"],
            "canary": {}, "abort": w.aborted,
            "conditions": [
                {"type": "Available",
                 "status": "True" if c["availableReplicas"] >= sup.replicas else "False",
                 "reason": "AvailableReason", "message": "Rollout availability",
                 "lastTransitionTime": created, "lastUpdateTime": created},
                {"type": "Healthy", "status": "True" if w.phase == "Healthy" else "False",
                 "reason": "RolloutHealthy" if w.phase == "Healthy" else "RolloutNotHealthy",
                 "message": w.message or "Rollout is healthy",
                 "lastTransitionTime": created, "lastUpdateTime": created}]}
        if w.aborted:
            status["abortedAt"] = ts(time.time())
        status.update({k: v for k, v in c.items() if v and k != "unavailableReplicas"})
        spec: dict[str, Any] = {
            "replicas": sup.replicas, "selector": {"matchLabels": {"app": DEPLOYMENT}},
            "template": self.template(w.spec_version),
            "strategy": {"canary": {"maxSurge": 1, "maxUnavailable": 0}},
            "revisionHistoryLimit": w.history_limit,
            "progressDeadlineSeconds": w.progress_deadline}
        if w.paused:
            spec["paused"] = True
        if w.restarted_at:
            spec["restartAt"] = ts(w.restarted_at)
        return self.store.stamp("rollout", {
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": self.store.meta(
                "Rollout", DEPLOYMENT, NAMESPACE, self.store.created, w.rollout_labels,
                {**w.rollout_annotations,
                 "rollout.argoproj.io/revision": str(w.revisions[w.spec_version])},
                generation=w.generation),
            "spec": spec, "status": status})

    def rollouts(self, ns: str | None) -> list[dict[str, Any]]:
        return [self.rollout()] if ns in (None, NAMESPACE) else []

    def scale(self, obj: dict[str, Any]) -> dict[str, Any]:
        """The scale subresource of the Deployment or the Rollout."""
        return {"apiVersion": "autoscaling/v1", "kind": "Scale",
                "metadata": {k: obj["metadata"][k] for k in (
                    "name", "namespace", "uid", "resourceVersion", "creationTimestamp")},
                "spec": {"replicas": self.sup.replicas},
                "status": {"replicas": self.counts()["replicas"],
                           "selector": f"app={DEPLOYMENT}"}}

    def update(self, res: Resource, name: str, old: dict[str, Any], new: dict[str, Any],
               sub: str | None, dry: bool) -> None:
        """A patch or replace of the Deployment, the Rollout, their scale or rollouts/status."""
        kind, group = ("Scale", "autoscaling") if sub == "scale" else (res.kind, res.group)
        spec = new.get("spec") if isinstance(new.get("spec"), dict) else {}
        problems: list[tuple[str, str]] = []
        if sub == "scale":
            for path in changed_paths(old, new):
                if path != "spec.replicas" and not path.startswith(("metadata.", "status")):
                    problems.append((path, "only spec.replicas of a scale can change"))
        elif sub == "status":
            for path in changed_paths(old.get("status"), new.get("status"), "status"):
                if not path.startswith(("status.abort", "status.pauseConditions",
                                        "status.abortedAt")):
                    problems.append((path, "the sandbox models only status.abort here"))
            abort = (new.get("status") or {}).get("abort", False)
            if not isinstance(abort, bool):
                problems.append(("status.abort", "must be true or false"))
        else:
            allowed = ("spec.replicas", "spec.paused", "spec.revisionHistoryLimit",
                       "spec.progressDeadlineSeconds",
                       "spec.template.spec.containers[0].image",
                       "spec.template.metadata.annotations", "spec.restartAt")
            try:
                only_metadata(res, name, old, new, allowed)
            except ApiError as e:
                problems += [(c["field"], c["message"]) for c in e.details["causes"]]
            containers = ((spec.get("template") or {}).get("spec") or {}).get("containers")
            if not (isinstance(containers, list) and len(containers) == 1
                    and isinstance(containers[0], dict)
                    and containers[0].get("name") == CONTAINER):
                problems.append(("spec.template.spec.containers",
                                 f"exactly one container named {CONTAINER!r}"))
            elif image_tag(containers[0].get("image")) is None:
                problems.append(("spec.template.spec.containers[0].image",
                                 f"the sandbox runs only {IMAGE_REPO}:<tag>, got "
                                 f"{containers[0].get('image')!r}"))
            for key, low in (("revisionHistoryLimit", 0), ("progressDeadlineSeconds", 1)):
                value = spec.get(key, low)
                if not isinstance(value, int) or isinstance(value, bool) or value < low:
                    problems.append((f"spec.{key}", f"must be a whole number >= {low}"))
            if not isinstance(spec.get("paused", False), bool):
                problems.append(("spec.paused", "must be true or false"))
        replicas = spec.get("replicas", self.sup.replicas) if sub != "status" else None
        if replicas is not None and (not isinstance(replicas, int) or isinstance(
                replicas, bool) or not 0 <= replicas <= MAX_REPLICAS):
            problems.append(("spec.replicas", f"Invalid value: {replicas!r}: must be a whole "
                             f"number from 0 to {MAX_REPLICAS} (the sandbox's port range)"))
        if problems:
            raise invalid(kind, group, name, problems)
        if dry:
            return
        w = self.state
        before = copy.deepcopy(old)
        if sub == "status":
            self.set_abort(bool((new.get("status") or {}).get("abort", False)))
        if replicas is not None and replicas != self.sup.replicas:
            verb = "up" if replicas > self.sup.replicas else "down"
            self.sup.record("Normal", "ScalingReplicaSet", f"{res.kind}/{DEPLOYMENT}",
                            f"Scaled {verb} replica set {self.rs_name(self.sup.version)} to "
                            f"{replicas} from {self.sup.replicas}")
            self.sup.replicas = replicas
        if sub is None:
            w.paused = bool(spec.get("paused", False))
            w.history_limit = spec.get("revisionHistoryLimit", 10)
            w.progress_deadline = spec.get("progressDeadlineSeconds", PROGRESS_DEADLINE)
            annotations = (spec["template"].get("metadata") or {}).get("annotations") or {}
            restart = annotations.get("kubectl.kubernetes.io/restartedAt")
            restart_at = spec.get("restartAt")
            if restart and restart != w.restart_annotation:
                w.restart_annotation, w.restarted_at = restart, time.time()
            elif restart_at and restart_at != before["spec"].get("restartAt"):
                w.restarted_at = time.time()
            meta = new.get("metadata") or {}
            if res.plural == "deployments":
                w.labels = dict(meta.get("labels") or {})
                w.annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                                 if k != "deployment.kubernetes.io/revision"}
            else:
                w.rollout_labels = dict(meta.get("labels") or {})
                w.rollout_annotations = {k: v for k, v in (meta.get(
                    "annotations") or {}).items() if k != "rollout.argoproj.io/revision"}
            version = image_tag(spec["template"]["spec"]["containers"][0]["image"])
            assert version is not None
            self.set_version(version, res.kind)
        if changed_paths(before.get("spec"), new.get("spec")):
            w.generation += 1

    def set_version(self, version: str, kind: str) -> None:
        w = self.state
        if version == w.spec_version:
            return
        w.spec_version = version
        w.revisions[version] = self.next_revision
        self.next_revision += 1
        w.aborted = False
        w.degraded_reported = False
        w.unconverged_since = time.time()
        self.sup.version = version
        if kind == "Rollout":
            self.sup.record("Normal", "RolloutUpdated", f"Rollout/{DEPLOYMENT}",
                            f"Rollout updated to revision {w.revisions[version]} "
                            f"(image tag {version})")
        else:
            self.sup.record("Normal", "ScalingReplicaSet", f"Deployment/{DEPLOYMENT}",
                            f"Scaled up replica set {self.rs_name(version)} to 1")

    def set_abort(self, abort: bool) -> None:
        w = self.state
        if abort == w.aborted:
            return
        if abort and w.spec_version == w.stable:
            return  # nothing in progress: Argo ignores an abort of a finished rollout
        w.aborted = abort
        if abort:
            self.sup.version = w.stable
            self.sup.record("Warning", "RolloutAborted", f"Rollout/{DEPLOYMENT}",
                            f"Rollout aborted update to revision "
                            f"{w.revisions[w.spec_version]}")
        else:
            self.sup.version = w.spec_version
            w.unconverged_since = time.time()
            self.sup.record("Normal", "RolloutRetry", f"Rollout/{DEPLOYMENT}",
                            "Rollout retried")

    def step(self) -> None:
        """One step of the controller: roll pods to sup.version one at a time (maxSurge
        1, maxUnavailable 0), label stable/canary pods, compute the rollout's phase."""
        sup, w = self.sup, self.state
        now = time.time()
        pods = list(sup.pods.values())
        for p in pods:
            p.labels["version"] = "stable" if p.version == w.stable else "canary"
        old = [p for p in pods if self.outdated(p)]
        new = [p for p in pods if not self.outdated(p)]
        if not old or sup.replicas == 0:
            sup.surge = 0
        elif not w.paused:
            sup.surge = 1
            new_ready = all(p.ready for p in new)
            if new_ready and len(new) >= sup.replicas:
                for p in old:
                    sup.delete_pod(p.name)
            elif new_ready and len(pods) >= sup.replicas + 1:
                victim = min(old, key=lambda p: (p.ready, p.created))
                sup.delete_pod(victim.name)
            elif new_ready and len(pods) < sup.replicas + 1:
                sup.new_pod()
        pods = list(sup.pods.values())
        converged = (not any(self.outdated(p) for p in pods) and len(pods) == sup.replicas
                     and all(p.ready for p in pods))
        if converged:
            w.unconverged_since = None
            w.degraded_reported = False
            if not w.aborted and sup.version == w.spec_version and w.stable != w.spec_version:
                w.stable = w.spec_version
                sup.record("Normal", "RolloutCompleted", f"Rollout/{DEPLOYMENT}",
                           f"Rollout completed update to revision "
                           f"{w.revisions[w.spec_version]} ({sup.template_hash()})")
        elif w.unconverged_since is None:
            w.unconverged_since = now
        if w.aborted:
            w.phase, w.message = "Degraded", (
                f"RolloutAborted: Rollout aborted update to revision "
                f"{w.revisions[w.spec_version]}")
        elif w.paused:
            w.phase, w.message = "Paused", "Manually paused"
        elif converged:
            w.phase, w.message = "Healthy", ""
        elif now - (w.unconverged_since or now) > w.progress_deadline:
            w.phase, w.message = "Degraded", (
                f'ProgressDeadlineExceeded: ReplicaSet "{self.rs_name(sup.version)}" has '
                "timed out progressing.")
            if not w.degraded_reported:
                w.degraded_reported = True
                sup.record("Warning", "ProgressDeadlineExceeded", f"Rollout/{DEPLOYMENT}",
                           w.message)
        else:
            w.phase, w.message = "Progressing", (
                "more replicas need to be updated" if any(self.outdated(p) for p in pods)
                else "updated replicas are still becoming available")
        self._prune_revisions()

    def _prune_revisions(self) -> None:
        w = self.state
        keep = {w.spec_version, w.stable, self.sup.version} | {
            p.version for p in self.sup.pods.values()}
        others = sorted((v for v in w.revisions if v not in keep), key=lambda v: w.revisions[v])
        for version in others[: max(0, len(others) - w.history_limit)]:
            del w.revisions[version]

