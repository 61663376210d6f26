"""Pods: the backend's replica processes, as a kubelet would report them.

- A pod is one of the supervisor's replica processes on its own port. Its phase, container
  state (running; waiting as ContainerCreating, or CrashLoopBackOff with the back-off delay
  when the container keeps dying), restartCount, lastState (the exit code, 128 + N after
  signal N) and readiness (the /api/ready probe) are the process's.
- Deleting a pod kills its process (SIGTERM, SIGKILL after gracePeriodSeconds, 2 s by default)
  and the supervisor starts a new one, as a ReplicaSet would.
- pods/log is the process's log: one segment per container run (`previous=true` is the run
  before), with sinceSeconds, sinceTime, tailLines, timestamps and limitBytes as kubectl sends
  them; `follow` is refused (400), as streaming is not modelled.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from typing import Any

from playbook.sandbox.kube.errors import bad_request
from playbook.sandbox.kube.nodes import node_of
from playbook.sandbox.kube.resources import TABLE
from playbook.sandbox.kube.store import Store
from playbook.sandbox.kube.times import micro_ts, parse_ts, ts
from playbook.sandbox.supervisor import DEPLOYMENT, NAMESPACE, Pod, Supervisor

IMAGE_REPO = "registry.sandbox.local/security-dashboard-backend"
CONTAINER = "backend"
STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z) ")
START_LINE = re.compile(r"^\S+Z pod \S+ version \S+ starting$")


def exit_code(code: int | None) -> int:
    """Popen's -N (killed by signal N) as the container runtime reports it: 128 + N."""
    return 128 - code if code is not None and code < 0 else (code or 0)


def replicaset_name(sup: Supervisor, version: str) -> str:
    """The ReplicaSet of a version: the deployment's name and its pod template hash."""
    return f"{DEPLOYMENT}-{sup.template_hash(version)}"


class Pods:
    """The pods, rendered from the supervisor's processes."""

    def __init__(self, store: Store, sup: Supervisor) -> None:
        self.store, self.sup = store, sup

    def render(self, pod: Pod, deleting: bool = False) -> dict[str, Any]:
        rs = replicaset_name(self.sup, pod.version)
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
                     "nodeName": node_of(pod), "restartPolicy": "Always",
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

    def list(self, ns: str | None) -> list[dict[str, Any]]:
        if ns not in (None, NAMESPACE):
            return []
        return [self.store.stamp(f"pod/{p.name}", self.render(p)) for p in self.sup.pods.values()]

    def delete(self, name: str, ns: str, options: dict[str, Any],
               dry: bool) -> dict[str, Any]:
        pod = self.sup.pods.get(name) if ns == NAMESPACE else None
        if pod is None:
            raise TABLE["pods"].not_found(name)
        grace = options.get("gracePeriodSeconds")
        grace = 2.0 if grace is None else float(grace)
        obj = self.store.stamp(f"pod/{name}", self.render(pod, deleting=True))
        if not dry:
            self.sup.delete_pod(name, grace)
        return obj

    def log(self, name: str, ns: str, params: dict[str, str]) -> str:
        pod = self.sup.pods.get(name) if ns == NAMESPACE else None
        if pod is None:
            raise TABLE["pods"].not_found(name)
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

