"""What every object of the sandbox's Kubernetes API shares: its identity, its resourceVersion,
the metadata a write may change; and the events, the cluster's record of what happened.

- The models render their objects from the supervisor's live state on every request, so
  versions are kept per object key (`pod/<name>`, `deploy`...): `stamp` gives an object a new
  resourceVersion, from one counter, whenever its content changed. A list's resourceVersion is
  the counter; a write whose body carries a stale one fails with 409 Conflict (api.py).
- A uid is stable for the life of the sandbox (uuid5 of its start time and the object's key).
- Events are the supervisor's records (a pod started, killed, unhealthy; what the controllers
  and chaos did), rendered as core/v1 Events of the component a cluster would name.
- A write may change labels and annotations; a change to a field the sandbox does not model
  is refused with 422 naming the field (`only_metadata`).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from typing import Any

from playbook.sandbox.kube.errors import invalid
from playbook.sandbox.kube.patch import changed_paths
from playbook.sandbox.kube.resources import Resource
from playbook.sandbox.kube.times import ts
from playbook.sandbox.supervisor import NAMESPACE, Supervisor

# Who reports the events of each kind, and the kind's apiVersion (v1 when not listed).
COMPONENTS = {"Pod": "kubelet", "ReplicaSet": "replicaset-controller",
              "Deployment": "deployment-controller", "Rollout": "rollouts-controller",
              "Node": "node-controller", "HTTPChaos": "chaos-controller-manager"}
API_VERSIONS = {"ReplicaSet": "apps/v1", "Deployment": "apps/v1",
                "Rollout": "argoproj.io/v1alpha1", "HTTPChaos": "chaos-mesh.org/v1alpha1"}


class Store:
    """Identity and versions of the objects, and the events."""

    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self.created = time.time()
        self.counter = 1000
        self.seen: dict[str, tuple[str, str]] = {}  # object key -> (content digest, rv)

    def uid(self, key: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"sandbox:{self.created}:{key}"))

    def stamp(self, key: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Give the object its resourceVersion: a new one whenever its content changed."""
        meta = obj["metadata"]
        meta.pop("resourceVersion", None)
        digest = hashlib.blake2b(json.dumps(obj, sort_keys=True, default=str).encode(),
                                 digest_size=16).hexdigest()
        seen = self.seen.get(key)
        if seen is None or seen[0] != digest:
            self.counter += 1
            seen = (digest, str(self.counter))
            self.seen[key] = seen
        meta["resourceVersion"] = seen[1]
        return obj

    def forget(self, key: str) -> None:
        """An object is gone: its next incarnation starts a new version history."""
        self.seen.pop(key, None)

    def sweep(self) -> None:
        """Forget the versions of pods and events that are gone."""
        alive = {f"pod/{p}" for p in self.sup.pods} | {f"ev/{e.uid}" for e in self.sup.events}
        for key in [k for k in self.seen if k.startswith(("pod/", "ev/")) and k not in alive]:
            del self.seen[key]

    def meta(self, kind: str, name: str, namespace: str | None, created: float,
             labels: dict[str, str] | None = None,
             annotations: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"name": name, "uid": self.uid(f"{kind}/{namespace}/{name}"),
                               "creationTimestamp": ts(created)}
        if namespace:
            out["namespace"] = namespace
        if labels:
            out["labels"] = dict(labels)
        if annotations:
            out["annotations"] = dict(annotations)
        out.update(extra)
        return out

    def events(self, ns: str | None) -> list[dict[str, Any]]:
        out = []
        for e in list(self.sup.events):
            kind, _, name = e.object.partition("/")
            where = "default" if kind == "Node" else NAMESPACE
            if ns not in (None, where):
                continue
            involved: dict[str, Any] = {"kind": kind, "name": name,
                                        "apiVersion": API_VERSIONS.get(kind, "v1")}
            if kind != "Node":
                involved["namespace"] = where
            out.append(self.stamp(f"ev/{e.uid}", {
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": f"{name}.{e.uid}", "namespace": where,
                             "uid": self.uid(f"Event/{e.uid}"),
                             "creationTimestamp": ts(e.first)},
                "involvedObject": involved, "reason": e.reason, "message": e.message,
                "type": e.type, "count": e.count, "firstTimestamp": ts(e.first),
                "lastTimestamp": ts(e.time),
                "source": {"component": COMPONENTS.get(kind, "sandbox"),
                           **({"host": name} if kind == "Node" else {})},
                "reportingComponent": COMPONENTS.get(kind, "sandbox"),
                "reportingInstance": ""}))
        return out


def only_metadata(res: Resource, name: str, old: dict[str, Any], new: dict[str, Any],
                  allowed: tuple[str, ...] = ()) -> None:
    """422 unless the change is to labels, annotations or one of `allowed` paths."""
    problems = []
    for path in changed_paths(old, new):
        if path.startswith(("metadata.labels", "metadata.annotations", "status")) or (
                path.startswith("metadata.") and path not in (
                    "metadata.name", "metadata.namespace")):
            continue  # status is ignored on the main resource; server-set metadata too
        if any(path == a or path.startswith(a + ".") or path.startswith(a + "[")
               for a in allowed):
            continue
        problems.append((path, "the sandbox does not model changes to this field"))
    if problems:
        raise invalid(res.kind, res.group, name, problems)
    for key in ("labels", "annotations"):
        value = (new.get("metadata") or {}).get(key)
        if value is not None and not (isinstance(value, dict) and all(
                isinstance(v, str) for v in value.values())):
            raise invalid(res.kind, res.group, name,
                          [(f"metadata.{key}", "must be a map of strings")])


def set_metadata(target: dict[str, Any], new: dict[str, Any]) -> None:
    """Keep the labels and annotations of a write (validated by `only_metadata`)."""
    for key in ("labels", "annotations"):
        target[key] = dict((new.get("metadata") or {}).get(key) or {})
