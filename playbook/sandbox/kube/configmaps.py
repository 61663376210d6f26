"""The backend's ConfigMap, security-dashboard-config: MAINTENANCE_MODE "true" or "false" ->
`maintenance` in chaos.json, which the replicas honour (503 with Retry-After on everything but
/api/health); the other keys are shown as a cluster would have them. Of the ConfigMap only
data, labels and annotations change; a value that is not a string fails as the real server's
decoder does.
"""

from __future__ import annotations

from typing import Any

from playbook.sandbox.kube.chaos import merge_chaos_file
from playbook.sandbox.kube.errors import bad_request
from playbook.sandbox.kube.resources import TABLE
from playbook.sandbox.kube.store import Store, only_metadata, set_metadata
from playbook.sandbox.supervisor import DEPLOYMENT, NAMESPACE, Supervisor

CONFIGMAP = "security-dashboard-config"


class ConfigMaps:
    """The one ConfigMap."""

    def __init__(self, store: Store, sup: Supervisor) -> None:
        self.store, self.sup = store, sup
        self.state: dict[str, Any] = {
            "labels": {"app": DEPLOYMENT}, "annotations": {},
            "data": {"MAINTENANCE_MODE": "false", "LOG_LEVEL": "info",
                     "API_BASE_PATH": "/api"}}

    def render(self) -> dict[str, Any]:
        cm = self.state
        return self.store.stamp("cm", {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": self.store.meta("ConfigMap", CONFIGMAP, NAMESPACE, self.store.created,
                                        cm["labels"], cm["annotations"]),
            "data": dict(cm["data"])})

    def list(self, ns: str | None) -> list[dict[str, Any]]:
        return [self.render()] if ns in (None, NAMESPACE) else []

    def update(self, name: str, _ns: str, old: dict[str, Any], new: dict[str, Any],
               sub: str | None, dry: bool) -> None:
        res = TABLE["configmaps"]
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
        self.state["data"] = dict(data)
        set_metadata(self.state, new)
        on = data.get("MAINTENANCE_MODE", "false").strip().lower() == "true"
        merge_chaos_file(self.sup.dir, {"maintenance": on})

