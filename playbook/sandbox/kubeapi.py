"""The sandbox's Kubernetes API: the real REST paths and JSON of the `kubernetes` client, backed
by the supervisor's live state. A supervisor addon (see ADDONS in supervisor.py).

What it serves (namespace security-dashboard unless said):
- namespaces, nodes (+ nodes/status), pods (list/get/delete/deletecollection, pods/log),
  services and their endpoints, configmaps, events (core v1);
- deployments (+ scale), replicasets (apps/v1);
- Argo Rollouts `rollouts` (+ status, scale; argoproj.io/v1alpha1);
- Chaos Mesh `httpchaos` and `networkchaos` (partition to the database or cache address)
  (chaos-mesh.org/v1alpha1): create/get/list/delete;
- `networkpolicies` (networking.k8s.io/v1): create/get/list/delete, enforced by the front
  against the client's address (playbook/sandbox/kube/netpol.py).

How the objects map onto the sandbox:
- Pods are the backend's replica processes. Deleting one kills its process (SIGTERM, SIGKILL
  after the grace period) and the controller starts a new one; a container that keeps dying is
  `waiting: CrashLoopBackOff` with a growing restartCount.
- The Deployment and the Rollout are two views of one workload (spec.replicas -> the number of
  processes, the image tag -> APP_VERSION). Changing the image rolls the pods one at a time
  (maxSurge 1, maxUnavailable 0). Tags ending in `bad-5xx`, `bad-slow` or `bad-crash` make a
  bad build (see app.py). Rollout status: Healthy once every pod runs the spec's version and
  is ready (that version becomes stableRS); Progressing meanwhile; Degraded after
  progressDeadlineSeconds or after an abort (`status.abort: true` through rollouts/status; the
  pods go back to the stable version; patching the image back to the stable one - `undo` -
  makes it Healthy again); Paused with spec.paused.
  History: like a cluster that has deployed before, a fresh sandbox has two revisions - the
  previous version (1.4.2 -> 1.4.1, an old ReplicaSet scaled to zero) as revision 1 and the
  running one as revision 2 - so a rollback has a target from the start; revisionHistoryLimit
  prunes old ReplicaSets (0 leaves none). Patches and deletes take `dryRun=All`: validated and
  answered with the would-be object, nothing changed.
- Nodes: sandbox-node-1 and -2 (pods are placed by slot). A node is made NotReady by patching
  nodes/<name>/status with a Ready condition of status "False" (as `kubectl` would for a
  status subresource) and Ready again the same way. Scheduling is not modelled: pods on a
  NotReady node keep running.
- Service selector -> which pods the front routes to. ConfigMap security-dashboard-config:
  MAINTENANCE_MODE "true"/"false" -> `maintenance` in chaos.json, which the replicas honour.
- HTTPChaos with `abort: true` (-> 502), `replace.code` (Response target) or `delay` on the
  backend -> chaos.json {"error_rate", "error_status", "latency_seconds"}; the error rate is the
  share of pods the mode selects (all: 1.0, fixed-percent: value %, one: 1/replicas...).
  Deleting it (or its `duration` running out) clears them.

Semantics: every object has a resourceVersion that changes whenever it changes; a write whose
body carries a stale one fails with 409 Conflict. PATCH takes JSON merge, strategic merge
(built-in kinds only, as the real server) and JSON patch; errors are `Status` objects (400, 401,
403, 404, 405, 409, 415, 422). Fields the sandbox does not model cannot be changed (422 saying
which); verbs and paths it does not serve answer 405 or 404, and `watch` answers 405.

Authentication: a bearer token from the kubeconfig the addon writes to <state dir>/kubeconfig.
Contexts: `sandbox` (may do everything), `sandbox-viewer` (get/list only) and
`sandbox-forbidden` (a valid identity bound to no role: 403 on every resource, as RBAC does).
No token, or an unknown one: 401.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import json
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
import yaml
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from playbook.sandbox.kube.chaos import Chaos, merge_chaos_file
from playbook.sandbox.kube.errors import ApiError, bad_request, invalid
from playbook.sandbox.kube.netpol import NetworkPolicies
from playbook.sandbox.kube.patch import apply_patch, changed_paths
from playbook.sandbox.kube.resources import (
    NAMESPACES,
    SERVER_VERSION,
    Registry,
    Resource,
)
from playbook.sandbox.kube.store import Store, only_metadata, set_metadata
from playbook.sandbox.kube.times import micro_ts, parse_ts, ts
from playbook.sandbox.supervisor import DEPLOYMENT, NAMESPACE, Pod, Supervisor

KUBECONFIG_FILE = "kubeconfig"
IMAGE_REPO = "registry.sandbox.local/security-dashboard-backend"
CONTAINER = "backend"
SERVICE = DEPLOYMENT
CONFIGMAP = "security-dashboard-config"
NODES = ("sandbox-node-1", "sandbox-node-2")
MAX_REPLICAS = 20  # ports are reserved for this many replicas
PROGRESS_DEADLINE = 30  # seconds (Kubernetes and Argo: 600); patchable per object
TICK = 0.25  # seconds between two steps of the rollout controller
STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z) ")
START_LINE = re.compile(r"^\S+Z pod \S+ version \S+ starting$")


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


def exit_code(code: int | None) -> int:
    """Popen's -N (killed by signal N) as the container runtime reports it: 128 + N."""
    return 128 - code if code is not None and code < 0 else (code or 0)


@dataclass
class Identity:
    user: str
    role: str  # admin | view | none


@dataclass
class Workload:
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


class Cluster:
    """The API's objects, rendered from the supervisor's live state on every request."""

    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self.store = Store(sup)
        # Like a cluster that has deployed before: the previous version is revision 1 (an old
        # ReplicaSet scaled to zero, kept by revisionHistoryLimit), the running one revision 2,
        # so `rollout undo` has a target from the start (checks/test_rollback.py).
        self.work = Workload(spec_version=sup.version, stable=sup.version,
                             revisions={previous_version(sup.version): 1, sup.version: 2})
        self.next_revision = 3
        self.nodes: dict[str, dict[str, Any]] = {n: self._node(n) for n in NODES}
        self.configmap: dict[str, Any] = {
            "labels": {"app": DEPLOYMENT}, "annotations": {},
            "data": {"MAINTENANCE_MODE": "false", "LOG_LEVEL": "info",
                     "API_BASE_PATH": "/api"}}
        self.service_meta: dict[str, Any] = {"labels": {"app": DEPLOYMENT}, "annotations": {}}
        self.chaos = Chaos(self.store, sup)
        self.ticks = 0
        self.tokens: dict[str, Identity] = {
            secrets.token_urlsafe(24): Identity("sandbox-admin", "admin"),
            secrets.token_urlsafe(24): Identity("sandbox-viewer", "view"),
            secrets.token_urlsafe(24): Identity("sandbox-nobody", "none"),
        }
        self.resources = self._resources()

    # --- namespaces and nodes -------------------------------------------------------------

    def namespaces(self, _ns: str | None) -> list[dict[str, Any]]:
        return [self.store.stamp(f"ns/{n}", {
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": self.store.meta("Namespace", n, None, self.store.created,
                                  {"kubernetes.io/metadata.name": n}),
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
            for n in NAMESPACES]

    def _node(self, name: str) -> dict[str, Any]:
        now = ts(self.store.created)

        def cond(type_: str, status: str, reason: str, message: str) -> dict[str, str]:
            return {"type": type_, "status": status, "reason": reason, "message": message,
                    "lastHeartbeatTime": now, "lastTransitionTime": now}

        return {
            "apiVersion": "v1", "kind": "Node",
            "metadata": self.store.meta("Node", name, None, self.store.created, {
                "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                "node.kubernetes.io/instance-type": "sandbox"}),
            "spec": {"podCIDR": "10.244.0.0/24"},
            "status": {
                "conditions": [
                    cond("MemoryPressure", "False", "KubeletHasSufficientMemory",
                         "kubelet has sufficient memory available"),
                    cond("DiskPressure", "False", "KubeletHasNoDiskPressure",
                         "kubelet has no disk pressure"),
                    cond("PIDPressure", "False", "KubeletHasSufficientPID",
                         "kubelet has sufficient PID available"),
                    cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
                ],
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                              {"type": "Hostname", "address": name}],
                "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                "nodeInfo": {"architecture": "amd64", "bootID": "", "containerRuntimeVersion":
                             "sandbox://1.0", "kernelVersion": "", "kubeProxyVersion": "",
                             "kubeletVersion": SERVER_VERSION["gitVersion"],
                             "machineID": "", "operatingSystem": "linux",
                             "osImage": "sandbox", "systemUUID": ""},
            },
        }

    def node_list(self, _ns: str | None) -> list[dict[str, Any]]:
        return [self.store.stamp(f"node/{n}", copy.deepcopy(obj)) for n, obj in self.nodes.items()]

    def update_node(self, name: str, _ns: str | None, old: dict[str, Any], new: dict[str, Any],
                    sub: str | None, dry: bool) -> None:
        res = self.resources["nodes"]
        if sub == "status":
            bad = [p for p in changed_paths(old.get("status"), new.get("status"), "status")
                   if not p.startswith("status.conditions")]
            conditions = (new.get("status") or {}).get("conditions")
            problems = [(p, "the sandbox models only status.conditions of a node")
                        for p in bad]
            if not isinstance(conditions, list) or not all(
                    isinstance(c, dict) and isinstance(c.get("type"), str)
                    and c.get("status") in ("True", "False", "Unknown") for c in conditions):
                problems.append(("status.conditions", "each needs a type and a status of "
                                 "True, False or Unknown"))
            if problems:
                raise invalid("Node", "", name, problems)
            if dry:
                return
            before = {c["type"]: c for c in old["status"]["conditions"]}
            now = ts(time.time())
            for c in conditions:
                prev = before.get(c["type"])
                if prev is None or prev.get("status") != c["status"]:
                    if prev is not None and c.get("lastTransitionTime") == prev.get(
                            "lastTransitionTime"):
                        c["lastTransitionTime"] = now
                    c.setdefault("lastTransitionTime", now)
                    if c["type"] == "Ready":
                        ready = c["status"] == "True"
                        self.sup.record("Normal", "NodeReady" if ready else "NodeNotReady",
                                        f"Node/{name}", f"Node {name} status is now: "
                                        f"{'NodeReady' if ready else 'NodeNotReady'}")
            self.nodes[name]["status"]["conditions"] = copy.deepcopy(conditions)
            return
        only_metadata(res, name, old, new)
        if not dry:
            set_metadata(self.nodes[name]["metadata"], new)

    # --- pods -----------------------------------------------------------------------------------

    def node_of(self, pod: Pod) -> str:
        return NODES[pod.slot % len(NODES)]

    def pod(self, pod: Pod, deleting: bool = False) -> dict[str, Any]:
        rs = f"{DEPLOYMENT}-{self.sup.template_hash(pod.version)}"
        started = pod.process is not None or pod.restart_count > 0
        container: dict[str, Any] = {
            "name": CONTAINER, "image": f"{IMAGE_REPO}:{pod.version}",
            "imageID": f"{IMAGE_REPO}@sha256:{self.sup.template_hash(pod.version) * 6}"[:140],
            "containerID": f"sandbox://{pod.process.pid}" if pod.process else None,
            "ready": pod.ready, "restartCount": pod.restart_count, "started": pod.running,
        }
        if pod.running:
            container["state"] = {"running": {"startedAt": ts(pod.started)}}
        else:
            reason = pod.waiting_reason or "ContainerCreating"
            waiting: dict[str, Any] = {"reason": reason}
            if reason == "CrashLoopBackOff":
                delay = max(0, round(pod.backoff_until - pod.last_finished))
                waiting["message"] = (f"back-off {delay}s restarting failed container="
                                      f"{CONTAINER} pod={pod.name}_{NAMESPACE}"
                                      f"({self.store.uid(f'Pod/{NAMESPACE}/{pod.name}')})")
            container["state"] = {"waiting": waiting}
        if container["containerID"] is None:
            del container["containerID"]
        if pod.last_exit_code is not None:
            code = exit_code(pod.last_exit_code)
            container["lastState"] = {"terminated": {
                "exitCode": code, "reason": "Completed" if code == 0 else "Error",
                "finishedAt": ts(pod.last_finished)}}
        else:
            container["lastState"] = {}
        transition = ts(pod.ready_since if pod.ready else (pod.last_finished or pod.created))

        def cond(type_: str, ok: bool, when: str) -> dict[str, Any]:
            c: dict[str, Any] = {"type": type_, "status": "True" if ok else "False",
                                 "lastTransitionTime": when}
            if not ok:
                c["reason"] = "ContainersNotReady"
                c["message"] = f"containers with unready status: [{CONTAINER}]"
            return c

        extra: dict[str, Any] = {
            "generateName": f"{rs}-",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs,
                                 "uid": self.store.uid(f"ReplicaSet/{NAMESPACE}/{rs}"),
                                 "controller": True, "blockOwnerDeletion": True}]}
        if deleting:
            extra["deletionTimestamp"] = ts(time.time())
            extra["deletionGracePeriodSeconds"] = 2
        return {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": self.store.meta("Pod", pod.name, NAMESPACE, pod.created, pod.labels,
                                  {"sandbox.playbook/url": pod.url}, **extra),
            "spec": {"containers": [{"name": CONTAINER, "image": f"{IMAGE_REPO}:{pod.version}",
                                     "ports": [{"containerPort": pod.port, "name": "http",
                                                "protocol": "TCP"}],
                                     "readinessProbe": {"httpGet": {"path": "/api/ready",
                                                                    "port": pod.port},
                                                        "periodSeconds": 1}}],
                     "nodeName": self.node_of(pod), "restartPolicy": "Always",
                     "terminationGracePeriodSeconds": 2},
            "status": {
                "phase": "Running" if started else "Pending",
                "conditions": [cond("PodScheduled", True, ts(pod.created)),
                               cond("Initialized", True, ts(pod.created)),
                               cond("ContainersReady", pod.ready, transition),
                               cond("Ready", pod.ready, transition)],
                "hostIP": "127.0.0.1", "podIP": "127.0.0.1",
                "podIPs": [{"ip": "127.0.0.1"}], "startTime": ts(pod.created),
                "qosClass": "BestEffort", "containerStatuses": [container],
            },
        }

    def pod_list(self, ns: str | None) -> list[dict[str, Any]]:
        if ns not in (None, NAMESPACE):
            return []
        return [self.store.stamp(f"pod/{p.name}", self.pod(p)) for p in self.sup.pods.values()]

    def delete_pod(self, name: str, ns: str, options: dict[str, Any],
                   dry: bool) -> dict[str, Any]:
        pod = self.sup.pods.get(name) if ns == NAMESPACE else None
        if pod is None:
            raise self.resources["pods"].not_found(name)
        grace = options.get("gracePeriodSeconds")
        grace = 2.0 if grace is None else float(grace)
        obj = self.store.stamp(f"pod/{name}", self.pod(pod, deleting=True))
        if not dry:
            self.sup.delete_pod(name, grace)
        return obj

    def pod_log(self, name: str, ns: str, params: dict[str, str]) -> str:
        pod = self.sup.pods.get(name) if ns == NAMESPACE else None
        if pod is None:
            raise self.resources["pods"].not_found(name)
        if params.get("container", CONTAINER) != CONTAINER:
            raise bad_request(f"container {params['container']} is not valid for pod {name}")
        if params.get("follow") in ("true", "1"):
            raise bad_request("follow is not supported by the sandbox's Kubernetes API")
        try:
            text = (self.sup.logs / f"{name}.log").read_text(errors="replace")
        except OSError:
            text = ""
        # One segment per container run; each run starts with the app's "starting" line.
        segments: list[list[str]] = [[]]
        for line in text.splitlines():
            if START_LINE.match(line) and segments[-1]:
                segments.append([])
            segments[-1].append(line)
        if params.get("previous") in ("true", "1"):
            if len(segments) < 2:
                raise bad_request(f'previous terminated container "{CONTAINER}" in pod '
                                  f'"{name}" not found')
            lines = segments[-2]
        else:
            lines = segments[-1]
        stamped, last = [], 0.0
        for line in lines:
            m = STAMP.match(line)
            if m:
                with contextlib.suppress(ValueError):
                    last = parse_ts(m.group(1))
            elif line.startswith("{"):
                # A structured line (auth.security_event) carries its own time.
                with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
                    last = parse_ts(json.loads(line)["time"])
            stamped.append((last, line))
        try:
            since = None
            if "sinceSeconds" in params:
                since = time.time() - int(params["sinceSeconds"])
            elif "sinceTime" in params:
                since = parse_ts(params["sinceTime"])
            if since is not None:
                stamped = [(t, line) for t, line in stamped if t >= since]
            if "tailLines" in params:
                n = int(params["tailLines"])
                stamped = stamped[-n:] if n > 0 else []
        except ValueError:
            raise bad_request("sinceSeconds and tailLines must be integers, sinceTime "
                              "RFC 3339") from None
        if params.get("timestamps") in ("true", "1"):
            out = "".join(f"{micro_ts(t)} {STAMP.sub('', line)}\n" for t, line in stamped)
        else:
            out = "".join(line + "\n" for _, line in stamped)
        if "limitBytes" in params:
            out = out.encode()[: int(params["limitBytes"])].decode(errors="ignore")
        return out

    # --- the workload: deployment, replicasets, rollout ---------------------------------------

    def template(self, version: str) -> dict[str, Any]:
        return {"metadata": {"labels": {"app": DEPLOYMENT, "version": "stable"}, **(
            {"annotations": {"kubectl.kubernetes.io/restartedAt": self.work.restart_annotation}}
            if self.work.restart_annotation else {})},
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
        return pod.version != self.sup.version or pod.created < self.work.restarted_at

    def deployment(self) -> dict[str, Any]:
        w, sup = self.work, self.sup
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
            "metadata": self.store.meta("Deployment", DEPLOYMENT, NAMESPACE, self.store.created,
                                  w.labels, {**w.annotations, "deployment.kubernetes.io/"
                                             "revision": str(w.revisions[w.spec_version])},
                                  generation=w.generation),
            "spec": spec, "status": status})

    def deployment_list(self, ns: str | None) -> list[dict[str, Any]]:
        return [self.deployment()] if ns in (None, NAMESPACE) else []

    def rs_name(self, version: str) -> str:
        return f"{DEPLOYMENT}-{self.sup.template_hash(version)}"

    def replicaset_list(self, ns: str | None) -> list[dict[str, Any]]:
        if ns not in (None, NAMESPACE):
            return []
        out = []
        for version, revision in sorted(self.work.revisions.items(), key=lambda kv: kv[1]):
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
                                      "uid": self.store.uid(
                                          f"Deployment/{NAMESPACE}/{DEPLOYMENT}")}]),
                "spec": {"replicas": desired,
                         "selector": {"matchLabels": {"app": DEPLOYMENT,
                                                      "pod-template-hash": h}},
                         "template": template},
                "status": status}))
        return out

    def rollout(self) -> dict[str, Any]:
        w, sup = self.work, self.sup
        c = self.counts()
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
                 "lastTransitionTime": ts(self.store.created),
                 "lastUpdateTime": ts(self.store.created)},
                {"type": "Healthy", "status": "True" if w.phase == "Healthy" else "False",
                 "reason": "RolloutHealthy" if w.phase == "Healthy" else "RolloutNotHealthy",
                 "message": w.message or "Rollout is healthy",
                 "lastTransitionTime": ts(self.store.created),
                 "lastUpdateTime": ts(self.store.created)}]}
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
            "metadata": self.store.meta("Rollout", DEPLOYMENT, NAMESPACE, self.store.created,
                                  w.rollout_labels, {**w.rollout_annotations,
                                                     "rollout.argoproj.io/revision":
                                                     str(w.revisions[w.spec_version])},
                                  generation=w.generation),
            "spec": spec, "status": status})

    def rollout_list(self, ns: str | None) -> list[dict[str, Any]]:
        return [self.rollout()] if ns in (None, NAMESPACE) else []

    def scale(self, res: Resource) -> dict[str, Any]:
        obj = self.deployment() if res.plural == "deployments" else self.rollout()
        return {"apiVersion": "autoscaling/v1", "kind": "Scale",
                "metadata": {k: obj["metadata"][k] for k in (
                    "name", "namespace", "uid", "resourceVersion", "creationTimestamp")},
                "spec": {"replicas": self.sup.replicas},
                "status": {"replicas": self.counts()["replicas"],
                           "selector": f"app={DEPLOYMENT}"}}

    def update_workload(self, name: str, _ns: str, old: dict[str, Any], new: dict[str, Any],
                        sub: str | None, dry: bool, res: Resource) -> None:
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
        w = self.work
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
        w = self.work
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
        w = self.work
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

    def tick(self) -> None:
        """One step of the rollout controller: roll pods to sup.version one at a time (maxSurge
        1, maxUnavailable 0), label stable/canary pods, compute the rollout's phase."""
        sup, w = self.sup, self.work
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
        self.chaos.apply()
        self.ticks += 1
        if self.ticks % 40 == 0:  # forget the versions of pods and events that are gone
            self.store.sweep()

    def _prune_revisions(self) -> None:
        w = self.work
        keep = {w.spec_version, w.stable, self.sup.version} | {
            p.version for p in self.sup.pods.values()}
        others = sorted((v for v in w.revisions if v not in keep), key=lambda v: w.revisions[v])
        for version in others[: max(0, len(others) - w.history_limit)]:
            del w.revisions[version]

    # --- services, endpoints, configmaps ---------------------------------------------------

    def service(self) -> dict[str, Any]:
        return self.store.stamp("svc", {
            "apiVersion": "v1", "kind": "Service",
            "metadata": self.store.meta("Service", SERVICE, NAMESPACE, self.store.created,
                                  self.service_meta["labels"],
                                  self.service_meta["annotations"]),
            "spec": {"selector": dict(self.sup.service_selector), "type": "ClusterIP",
                     "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP",
                                "targetPort": "http"}],
                     "sessionAffinity": "None"},
            "status": {"loadBalancer": {}}})

    def service_list(self, ns: str | None) -> list[dict[str, Any]]:
        return [self.service()] if ns in (None, NAMESPACE) else []

    def update_service(self, name: str, _ns: str, old: dict[str, Any], new: dict[str, Any],
                       sub: str | None, dry: bool) -> None:
        res = self.resources["services"]
        only_metadata(res, name, old, new, ("spec.selector",))
        selector = (new.get("spec") or {}).get("selector") or {}
        if not isinstance(selector, dict) or not all(
                isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9_.-]{0,63}", v)
                for v in selector.values()):
            raise invalid("Service", "", name,
                          [("spec.selector", "must be a map of valid label values")])
        if not dry:
            self.sup.service_selector = dict(selector)
            set_metadata(self.service_meta, new)
            self.sup.publish()  # the front follows at once

    def endpoints_list(self, ns: str | None) -> list[dict[str, Any]]:
        if ns not in (None, NAMESPACE):
            return []
        sel = self.sup.service_selector
        chosen = [p for p in self.sup.pods.values() if p.running and sel and all(
            p.labels.get(k) == v for k, v in sel.items())]

        def addr(p: Pod) -> dict[str, Any]:
            return {"ip": "127.0.0.1", "nodeName": self.node_of(p),
                    "targetRef": {"kind": "Pod", "name": p.name, "namespace": NAMESPACE,
                                  "uid": self.store.uid(f"Pod/{NAMESPACE}/{p.name}")}}

        subsets = []
        for p in chosen:
            subset: dict[str, Any] = {"ports": [{"name": "http", "port": p.port,
                                                 "protocol": "TCP"}]}
            subset["addresses" if p.ready else "notReadyAddresses"] = [addr(p)]
            subsets.append(subset)
        obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Endpoints",
                               "metadata": self.store.meta("Endpoints", SERVICE, NAMESPACE,
                                                     self.store.created, {"app": DEPLOYMENT})}
        if subsets:
            obj["subsets"] = subsets
        return [self.store.stamp("ep", obj)]

    def configmap_obj(self) -> dict[str, Any]:
        cm = self.configmap
        return self.store.stamp("cm", {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": self.store.meta("ConfigMap", CONFIGMAP, NAMESPACE, self.store.created,
                                  cm["labels"], cm["annotations"]),
            "data": dict(cm["data"])})

    def configmap_list(self, ns: str | None) -> list[dict[str, Any]]:
        return [self.configmap_obj()] if ns in (None, NAMESPACE) else []

    def update_configmap(self, name: str, _ns: str, old: dict[str, Any], new: dict[str, Any],
                         sub: str | None, dry: bool) -> None:
        res = self.resources["configmaps"]
        only_metadata(res, name, old, new, ("data",))
        data = new.get("data") or {}
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            bad = next((k for k, v in (data.items() if isinstance(data, dict) else [])
                        if not isinstance(v, str)), "data")
            # The real server cannot decode a non-string value into the ConfigMap at all.
            raise bad_request(f"json: cannot unmarshal a non-string into Go struct field "
                              f"ConfigMap.data of type string (key {bad!r})")
        if dry:
            return
        self.configmap["data"] = dict(data)
        set_metadata(self.configmap, new)
        on = data.get("MAINTENANCE_MODE", "false").strip().lower() == "true"
        merge_chaos_file(self.sup.dir, {"maintenance": on})

    # --- the resource table ---------------------------------------------------------------

    def _resources(self) -> Registry:
        reg = Registry()
        reg.serve("namespaces", list_fn=self.namespaces)
        reg.serve("nodes", list_fn=self.node_list, update_fn=self.update_node)
        reg.serve("pods", list_fn=self.pod_list, delete_fn=self.delete_pod)
        reg.serve("services", list_fn=self.service_list, update_fn=self.update_service)
        reg.serve("endpoints", list_fn=self.endpoints_list)
        reg.serve("configmaps", list_fn=self.configmap_list, update_fn=self.update_configmap)
        reg.serve("events", list_fn=self.store.events)
        reg.serve("deployments.apps", list_fn=self.deployment_list,
                  update_fn=self.update_workload)
        reg.serve("replicasets.apps", list_fn=self.replicaset_list)
        reg.serve("rollouts.argoproj.io", list_fn=self.rollout_list,
                  update_fn=self.update_workload)
        reg.serve("httpchaos.chaos-mesh.org", list_fn=self.chaos.httpchaos,
                  create_fn=self.chaos.create_httpchaos, delete_fn=self.chaos.delete_httpchaos)
        reg.serve("networkchaos.chaos-mesh.org", list_fn=self.chaos.networkchaos,
                  create_fn=self.chaos.create_networkchaos,
                  delete_fn=self.chaos.delete_networkchaos)
        # NetworkPolicies: stored here, enforced by the front (kube/netpol.py).
        self.netpol = NetworkPolicies(self.store)
        reg.serve("networkpolicies.networking.k8s.io", list_fn=self.netpol.list,
                  create_fn=self.netpol.create, delete_fn=self.netpol.delete)
        return reg


# --- HTTP -----------------------------------------------------------------------------------

VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
READ_VERBS = {"get", "list", "watch"}


def _status(err: ApiError) -> JSONResponse:
    return JSONResponse(err.status(), status_code=err.code)


class Api:
    """The ASGI app: routing, authentication, authorization, and the verbs."""

    def __init__(self, cluster: Cluster) -> None:
        self.c = cluster

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        try:
            response = await self.handle(request)
        except ApiError as e:
            response = _status(e)
        except Exception as e:  # a bug here must still answer as the API would
            response = _status(ApiError(500, "InternalError",
                                        f"sandbox API error: {type(e).__name__}: {e}"))
        await response(scope, receive, send)

    def identity(self, request: Request) -> Identity:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        ident = self.c.tokens.get(token)
        if ident is None:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        return ident

    async def handle(self, request: Request) -> Response:
        ident = self.identity(request)
        path = request.url.path.rstrip("/") or "/"
        parts = path.strip("/").split("/") if path != "/" else []
        if request.method == "GET":
            discovery = SERVER_VERSION if parts == ["version"] else \
                self.c.resources.discovery(parts)
            if discovery is not None:
                return JSONResponse(discovery)
        res, ns, name, sub = self.c.resources.locate(request.method, path)
        params = dict(request.query_params)
        if name is None:
            verb = {"GET": "list", "DELETE": "deletecollection"}.get(request.method,
                                                                      VERBS.get(request.method))
        else:
            verb = VERBS.get(request.method, request.method.lower())
        if params.get("watch") in ("true", "1"):
            verb = "watch"
        self.authorize(ident, verb, res, ns, name, sub)
        if verb == "watch":
            raise ApiError(405, "MethodNotAllowed", "watch is not supported by the sandbox's "
                           "Kubernetes API; list and poll instead")
        dry = params.get("dryRun") == "All"
        if "dryRun" in params and not dry:
            # As the real server: an unknown directive is an error, never a real write.
            raise bad_request(f"invalid dry run directive {params['dryRun']!r}: the only "
                              "valid value is All")
        if name is None:
            return await self.collection(request, res, ns, verb, params, dry)
        return await self.item(request, res, ns, name, sub, verb, params, dry)

    def authorize(self, ident: Identity, verb: str, res: Resource, ns: str | None,
                  name: str | None, sub: str | None) -> None:
        if ident.role == "admin" or (ident.role == "view" and verb in READ_VERBS):
            return
        resource = f"{res.plural}/{sub}" if sub else res.plural
        where = f' in the namespace "{ns}"' if ns else " at the cluster scope"
        named = f' "{name}"' if name else ""
        raise ApiError(403, "Forbidden", f'{res.qualified}{named} is forbidden: User '
                       f'"{ident.user}" cannot {verb} resource "{resource}" in API group '
                       f'"{res.group}"{where}',
                       {"name": name or "", "group": res.group, "kind": res.plural})

    async def collection(self, request: Request, res: Resource, ns: str | None, verb: str,
                         params: dict[str, str], dry: bool) -> Response:
        if verb == "list":
            items = res.select(res.objects(ns), params)
            total = len(items)
            meta: dict[str, Any] = {"resourceVersion": str(self.c.store.counter)}
            try:
                start = int(base64.b64decode(params["continue"]).decode()) \
                    if params.get("continue") else 0
                limit = int(params.get("limit") or 0)
            except ValueError:
                raise bad_request("invalid limit or continue token") from None
            items = items[start:]
            if limit and len(items) > limit:
                items = items[:limit]
                meta["continue"] = base64.b64encode(str(start + limit).encode()).decode()
                meta["remainingItemCount"] = total - start - limit
            return JSONResponse({"kind": res.list_kind, "apiVersion": res.api_version,
                                 "metadata": meta, "items": items})
        if verb == "create" and res.create_fn is not None:
            if ns is None:
                raise ApiError(405, "MethodNotAllowed", f"create {res.plural} in a namespace")
            if ns not in NAMESPACES:
                raise ApiError(404, "NotFound", f'namespaces "{ns}" not found',
                               {"name": ns, "kind": "namespaces"})
            body = await self.body(request)
            if body.get("kind") not in (None, res.kind):
                raise bad_request(f"expected kind {res.kind}, got {body.get('kind')!r}")
            return JSONResponse(res.create_fn(ns, body, dry), status_code=201)
        if verb == "deletecollection" and res.delete_fn is not None and ns is not None:
            options = await self.body(request, optional=True)
            victims = res.select(res.objects(ns), params)
            deleted = [res.delete_fn(o["metadata"]["name"], ns, options, dry) for o in victims]
            return JSONResponse({"kind": res.list_kind, "apiVersion": res.api_version,
                                 "metadata": {"resourceVersion": str(self.c.store.counter)},
                                 "items": deleted})
        raise self.not_allowed(request.method, res, None)

    @staticmethod
    def not_allowed(method: str, res: Resource, sub: str | None) -> ApiError:
        what = f"{res.qualified}/{sub}" if sub else res.qualified
        return ApiError(405, "MethodNotAllowed", f"the server does not allow this method on "
                        f"the requested resource: the sandbox does not implement {method} "
                        f"on {what}", {"kind": res.plural, "group": res.group})

    async def body(self, request: Request, optional: bool = False) -> dict[str, Any] | Any:
        raw = await request.body()
        if not raw.strip():
            if optional:
                return {}
            raise bad_request("the request body is empty")
        try:
            return json.loads(raw)
        except ValueError as e:
            raise bad_request(f"the request body is not JSON: {e}") from None

    def view(self, res: Resource, ns: str | None, name: str, sub: str | None) -> dict[str, Any]:
        obj = res.get(ns, name)
        return self.c.scale(res) if sub == "scale" else obj

    async def item(self, request: Request, res: Resource, ns: str | None, name: str,
                   sub: str | None, verb: str, params: dict[str, str], dry: bool) -> Response:
        if sub == "log":
            if verb != "get":
                raise self.not_allowed(request.method, res, sub)
            text = self.c.pod_log(name, ns or "", params)
            return PlainTextResponse(text)
        if verb == "get":
            return JSONResponse(self.view(res, ns, name, sub))
        if verb == "delete" and sub is None and res.delete_fn is not None:
            options = await self.body(request, optional=True)
            if params.get("gracePeriodSeconds"):
                options["gracePeriodSeconds"] = int(params["gracePeriodSeconds"])
            return JSONResponse(res.delete_fn(name, ns, options, dry))
        if verb in ("patch", "update") and res.update_fn is not None:
            old = self.view(res, ns, name, sub)
            body = await self.body(request)
            if verb == "patch":
                new = apply_patch(old, request.headers.get("content-type", ""), body,
                                  res.strategic)
            else:
                if not isinstance(body, dict):
                    raise bad_request("the body must be a JSON object")
                new = body
                # What the URL says need not be in the body (the client leaves it out).
                for key in ("apiVersion", "kind"):
                    if new.setdefault(key, old[key]) != old[key]:
                        raise bad_request(f"{key} {new[key]!r} does not match the URL's "
                                          f"{old[key]!r}")
                if ns is not None:
                    new.setdefault("metadata", {}).setdefault("namespace", ns)
            want = (new.get("metadata") or {}).get("resourceVersion")
            if want is not None and want != old["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on '
                               f'{res.qualified} "{name}": the object has been modified; '
                               "please apply your changes to the latest version and try again",
                               {"name": name, "group": res.group, "kind": res.plural})
            if (new.get("metadata") or {}).get("name", name) != name:
                raise bad_request(f"the name of the object ({new['metadata']['name']}) does not "
                                  f"match the name on the URL ({name})")
            new.setdefault("metadata", {})["resourceVersion"] = old["metadata"][
                "resourceVersion"]
            kwargs = {"res": res} if res.update_fn == self.c.update_workload else {}
            res.update_fn(name, ns, old, new, sub, dry, **kwargs)
            if dry:
                return JSONResponse(new)
            if res.plural in ("deployments", "rollouts"):
                self.c.tick()  # the status follows the write at once
            return JSONResponse(self.view(res, ns, name, sub))
        raise self.not_allowed(request.method, res, sub)


# --- the addon ------------------------------------------------------------------------------


def kubeconfig(cluster: Cluster, url: str) -> dict[str, Any]:
    users = {i.user: t for t, i in cluster.tokens.items()}
    contexts = [("sandbox", "sandbox-admin"), ("sandbox-viewer", "sandbox-viewer"),
                ("sandbox-forbidden", "sandbox-nobody")]
    return {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "sandbox", "cluster": {"server": url}}],
        "users": [{"name": u, "user": {"token": t}} for u, t in users.items()],
        "contexts": [{"name": n, "context": {"cluster": "sandbox", "user": u,
                                             "namespace": NAMESPACE}} for n, u in contexts],
        "current-context": "sandbox",
    }


class _Server(uvicorn.Server):
    """uvicorn inside the supervisor's loop: the supervisor owns the signals."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return contextlib.nullcontext()


async def _controller(cluster: Cluster, sup: Supervisor) -> None:
    while not sup.stopping.is_set():
        cluster.tick()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(sup.stopping.wait(), TICK)


async def start(sup: Supervisor) -> None:
    port = sup.sb.ports.kube
    if port is None:
        return  # a profile without sandbox.ports.kube: no Kubernetes API
    cluster = Cluster(sup)
    url = f"http://127.0.0.1:{port}"
    path = sup.dir / KUBECONFIG_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(kubeconfig(cluster, url), f, sort_keys=False)
    server = _Server(uvicorn.Config(Api(cluster), host="127.0.0.1", port=port,
                                    log_level="warning", access_log=False, lifespan="off"))
    tasks = [asyncio.create_task(server.serve()), asyncio.create_task(_controller(cluster, sup))]

    async def stop() -> None:
        await sup.stopping.wait()
        server.should_exit = True

    tasks.append(asyncio.create_task(stop()))
    deadline = time.monotonic() + 10
    while not server.started:
        if tasks[0].done() or time.monotonic() > deadline:
            raise RuntimeError(f"the Kubernetes API did not start on 127.0.0.1:{port}"
                               + (f": {tasks[0].exception()}" if tasks[0].done() else ""))
        await asyncio.sleep(0.02)
    sup.extra_components["kubernetes"] = {"url": url, "port": port, "kubeconfig": str(path),
                                          "pid": os.getpid()}
    sup.kube_tasks = tasks  # type: ignore[attr-defined] - keeps the tasks referenced
    sup.write_state()
