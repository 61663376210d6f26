"""The backend's Service and its Endpoints: what the front routes to.

The Service's selector is the supervisor's: the front sends traffic only to running pods whose
labels match it (e.g. `version: stable` routes away from a canary), and follows a change at
once. The Endpoints list those pods, ready ones as addresses and the others as
notReadyAddresses. Of the Service only the selector, labels and annotations change.
"""

from __future__ import annotations

import re
from typing import Any

from playbook.sandbox.kube.errors import invalid
from playbook.sandbox.kube.nodes import node_of
from playbook.sandbox.kube.resources import TABLE
from playbook.sandbox.kube.store import Store, only_metadata, set_metadata
from playbook.sandbox.supervisor import DEPLOYMENT, NAMESPACE, Pod, Supervisor

SERVICE = DEPLOYMENT


class Services:
    """The Service (its selector is the supervisor's) and the Endpoints it selects."""

    def __init__(self, store: Store, sup: Supervisor) -> None:
        self.store, self.sup = store, sup
        self.meta: dict[str, Any] = {"labels": {"app": DEPLOYMENT}, "annotations": {}}

    def render(self) -> dict[str, Any]:
        return self.store.stamp("svc", {
            "apiVersion": "v1", "kind": "Service",
            "metadata": self.store.meta("Service", SERVICE, NAMESPACE, self.store.created,
                                        self.meta["labels"],
                                        self.meta["annotations"]),
            "spec": {"selector": dict(self.sup.service_selector), "type": "ClusterIP",
                     "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP",
                                "targetPort": "http"}],
                     "sessionAffinity": "None"},
            "status": {"loadBalancer": {}}})

    def list(self, ns: str | None) -> list[dict[str, Any]]:
        return [self.render()] if ns in (None, NAMESPACE) else []

    def update(self, name: str, _ns: str, old: dict[str, Any], new: dict[str, Any],
               sub: str | None, dry: bool) -> None:
        res = TABLE["services"]
        only_metadata(res, name, old, new, ("spec.selector",))
        selector = (new.get("spec") or {}).get("selector") or {}
        if not isinstance(selector, dict) or not all(
                isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9_.-]{0,63}", v)
                for v in selector.values()):
            raise invalid("Service", "", name,
                          [("spec.selector", "must be a map of valid label values")])
        if not dry:
            self.sup.service_selector = dict(selector)
            set_metadata(self.meta, new)
            self.sup.publish()  # the front follows at once

    def endpoints(self, ns: str | None) -> list[dict[str, Any]]:
        if ns not in (None, NAMESPACE):
            return []
        sel = self.sup.service_selector
        chosen = [p for p in self.sup.pods.values() if p.running and sel and all(
            p.labels.get(k) == v for k, v in sel.items())]

        def addr(p: Pod) -> dict[str, Any]:
            return {"ip": "127.0.0.1", "nodeName": node_of(p),
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

