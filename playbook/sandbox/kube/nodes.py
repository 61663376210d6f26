"""Namespaces and nodes: the cluster the sandbox stands for.

- Namespaces default, kube-system and security-dashboard (resources.NAMESPACES), all Active.
- Nodes sandbox-node-1 and -2; a pod is placed by its slot (`node_of`). A node is made NotReady
  by patching nodes/<name>/status with a Ready condition of status "False" (as `kubectl` would
  for a status subresource) and Ready again the same way, with a NodeNotReady / NodeReady
  event. Scheduling is not modelled: pods on a NotReady node keep running. Of a node itself
  only labels and annotations change.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from playbook.sandbox.kube.errors import invalid
from playbook.sandbox.kube.patch import changed_paths
from playbook.sandbox.kube.resources import NAMESPACES, SERVER_VERSION, TABLE
from playbook.sandbox.kube.store import Store, only_metadata, set_metadata
from playbook.sandbox.kube.times import ts
from playbook.sandbox.supervisor import Pod, Supervisor

NODES = ("sandbox-node-1", "sandbox-node-2")


def node_of(pod: Pod) -> str:
    return NODES[pod.slot % len(NODES)]


class Nodes:
    """The namespaces and the nodes, with the nodes' conditions."""

    def __init__(self, store: Store, sup: Supervisor) -> None:
        self.store, self.sup = store, sup
        self.objects: dict[str, dict[str, Any]] = {n: self._node(n) for n in NODES}

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

    def list(self, _ns: str | None) -> list[dict[str, Any]]:
        return [self.store.stamp(f"node/{n}", copy.deepcopy(obj))
                for n, obj in self.objects.items()]

    def update(self, name: str, _ns: str | None, old: dict[str, Any], new: dict[str, Any],
               sub: str | None, dry: bool) -> None:
        res = TABLE["nodes"]
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
            self.objects[name]["status"]["conditions"] = copy.deepcopy(conditions)
            return
        only_metadata(res, name, old, new)
        if not dry:
            set_metadata(self.objects[name]["metadata"], new)

