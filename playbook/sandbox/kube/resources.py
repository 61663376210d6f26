"""The resources table: every kind the sandbox's Kubernetes API serves, with its API group and
version, whether it is namespaced, the field selectors, subresources and patch types it takes,
and the paths that reach it. The nearest thing in moto is a service's urls.py: which paths
exist and who answers them.

A `Resource` is one row of the table. The models bind their handlers to a row
(`Registry.serve`), and what they bind decides the verbs: every served kind takes get and list;
an update_fn adds patch and update, a create_fn create, a delete_fn delete and
deletecollection. Discovery (/api, /apis, /api/v1, /apis/<group>/<version>) is derived from
what is served, so a new kind, API group or subresource shows there as soon as it is served.
Kinds are keyed by their qualified name (`deployments.apps`), as kubectl names them: two groups
may both have `pods` (metrics.k8s.io does).

Paths: /api/v1/<plural>[/<name>[/<subresource>]] for the core group, /apis/<group>/<version>/...
for the others, with /namespaces/<namespace> before the plural of a namespaced kind.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from playbook.sandbox.kube.errors import ApiError, not_found
from playbook.sandbox.kube.selectors import field_matcher, label_matcher
from playbook.sandbox.supervisor import NAMESPACE

NAMESPACES = ("default", "kube-system", NAMESPACE)
SERVER_VERSION = {"major": "1", "minor": "30", "gitVersion": "v1.30.0-sandbox",
                  "gitCommit": "0000000000000000000000000000000000000000",
                  "gitTreeState": "clean", "buildDate": "2024-04-17T00:00:00Z",
                  "goVersion": "go1.22.2", "compiler": "gc", "platform": "linux/amd64"}

Obj = dict[str, Any]
ListFn = Callable[[str | None], list[Obj]]  # (namespace or None for all) -> objects
UpdateFn = Callable[[str, str | None, Obj, Obj, str | None, bool], None]  # name, ns, old, new,
#                                                                 subresource, dry run
CreateFn = Callable[[str, Obj, bool], Obj]  # namespace, body, dry run -> the object
DeleteFn = Callable[[str, str, Obj, bool], Obj]  # name, namespace, DeleteOptions, dry run
ViewFn = Callable[[Obj], Obj]  # the object -> what GET of the subresource answers


@dataclass(frozen=True)
class Subresource:
    name: str
    kind: str = ""  # the kind its GET answers ("": the parent's)
    verbs: tuple[str, ...] = ("get", "patch", "update")


@dataclass
class Resource:
    """One kind the API serves: a row of the table, plus the handlers a model bound to it."""

    plural: str
    kind: str
    group: str  # "" for core
    version: str
    namespaced: bool
    fields: frozenset[str] = frozenset({"metadata.name", "metadata.namespace"})
    subresources: tuple[Subresource, ...] = ()
    strategic: bool = True  # built-in kinds take strategic merge patches; custom ones do not
    list_fn: ListFn | None = None
    update_fn: UpdateFn | None = None  # patch and put, of the object or a subresource
    create_fn: CreateFn | None = None
    delete_fn: DeleteFn | None = None
    views: Mapping[str, ViewFn] = field(default_factory=dict)  # subresource -> its GET

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    def not_found(self, name: str) -> ApiError:
        return not_found(self.plural, self.group, name)

    def subresource(self, name: str) -> Subresource | None:
        return next((s for s in self.subresources if s.name == name), None)

    def objects(self, ns: str | None) -> list[Obj]:
        assert self.list_fn is not None, f"{self.qualified} is not served"
        return self.list_fn(ns)

    def get(self, ns: str | None, name: str) -> Obj:
        if self.namespaced and ns not in NAMESPACES:
            raise self.not_found(name)
        for obj in self.objects(ns):
            if obj["metadata"]["name"] == name:
                return obj
        raise self.not_found(name)

    def select(self, items: list[Obj], params: Mapping[str, str]) -> list[Obj]:
        """The objects that `?labelSelector=` and `?fieldSelector=` choose."""
        labels = label_matcher(params.get("labelSelector"))
        fields = field_matcher(params.get("fieldSelector"), self.fields, self.plural)
        return [o for o in items if labels(o["metadata"].get("labels") or {}) and fields(o)]

    def verbs(self) -> list[str]:
        return ["get", "list"] + (["patch", "update"] if self.update_fn else []) + (
            ["create"] if self.create_fn else []) + (["delete"] if self.delete_fn else [])


_META = frozenset({"metadata.name", "metadata.namespace"})
_SCALE = Subresource("scale", kind="Scale")
_STATUS = Subresource("status")

# The kinds the sandbox models, in discovery order.
TABLE: dict[str, Resource] = {r.qualified: r for r in [
    Resource("namespaces", "Namespace", "", "v1", False,
             frozenset({"metadata.name", "status.phase"})),
    Resource("nodes", "Node", "", "v1", False, frozenset({"metadata.name", "spec.unschedulable"}),
             subresources=(_STATUS,)),
    Resource("pods", "Pod", "", "v1", True,
             _META | {"status.phase", "spec.nodeName", "spec.restartPolicy", "status.podIP"},
             subresources=(Subresource("log", verbs=("get",)),)),
    Resource("services", "Service", "", "v1", True),
    Resource("endpoints", "Endpoints", "", "v1", True),
    Resource("configmaps", "ConfigMap", "", "v1", True),
    Resource("events", "Event", "", "v1", True,
             _META | {"involvedObject.kind", "involvedObject.name", "involvedObject.namespace",
                      "involvedObject.apiVersion", "reason", "type", "source",
                      "reportingComponent"}),
    Resource("deployments", "Deployment", "apps", "v1", True, subresources=(_SCALE,)),
    Resource("replicasets", "ReplicaSet", "apps", "v1", True),
    Resource("rollouts", "Rollout", "argoproj.io", "v1alpha1", True,
             subresources=(_SCALE, _STATUS), strategic=False),
    Resource("httpchaos", "HTTPChaos", "chaos-mesh.org", "v1alpha1", True, strategic=False),
    Resource("networkchaos", "NetworkChaos", "chaos-mesh.org", "v1alpha1", True,
             strategic=False),
    Resource("networkpolicies", "NetworkPolicy", "networking.k8s.io", "v1", True),
]}


class Target(NamedTuple):
    """What a request's path names."""

    res: Resource
    ns: str | None
    name: str | None
    sub: str | None


class Registry:
    """The resources the API serves: rows of the table (or of a module's own) bound to the
    models that keep their objects. Serving a kind is one `serve` call."""

    def __init__(self) -> None:
        self._served: dict[str, Resource] = {}

    def serve(self, row: Resource | str, **handlers: Any) -> Resource:
        res = dataclasses.replace(TABLE[row] if isinstance(row, str) else row, **handlers)
        self._served[res.qualified] = res
        return res

    def __getitem__(self, qualified: str) -> Resource:
        return self._served[qualified]

    def __iter__(self) -> Iterator[Resource]:
        return iter(self._served.values())

    def find(self, group: str, version: str, plural: str) -> Resource | None:
        res = self._served.get(f"{plural}.{group}" if group else plural)
        return res if res is not None and res.version == version else None

    def locate(self, method: str, path: str) -> Target:
        """The resource, namespace, name and subresource a path names; 404 as the real server
        for a path that names none."""
        parts = path.strip("/").split("/") if path != "/" else []
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", f"the server could not find the requested "
                           f"resource ({method} {path})")
        ns = None
        if len(rest) > 2 and rest[0] == "namespaces":
            ns, rest = rest[1], rest[2:]  # else: the namespaces resource itself, or a cluster
        if not rest:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        res = self.find(group, version, rest[0])
        if res is None:
            raise ApiError(404, "NotFound", f"the server could not find the requested resource "
                           f"({method} {path}): the sandbox does not serve "
                           f"{rest[0]} in {group or 'core'}/{version}")
        if res.namespaced and ns is None and len(rest) > 1:
            raise ApiError(404, "NotFound", f"{res.plural} are namespaced: use "
                           f"/namespaces/<namespace>/{res.plural}/{rest[1]}")
        if not res.namespaced and ns is not None:
            raise ApiError(404, "NotFound", f"{res.plural} are not namespaced")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if len(rest) > 3 or (sub is not None and res.subresource(sub) is None):
            raise ApiError(404, "NotFound", f"the server could not find the requested resource: "
                           f"{res.qualified} has no subresource {'/'.join(rest[2:])!r} here")
        return Target(res, ns, name, sub)

    def discovery(self, parts: list[str]) -> dict[str, Any] | None:
        """The discovery document at /api, /apis, /api/v1 or /apis/<group>/<version>."""
        if parts == ["api"]:
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}
        groups: dict[str, str] = {r.group: r.version for r in self if r.group}
        if parts == ["apis"]:
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
                 "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v}}
                for g, v in groups.items()]}
        if parts == ["api", "v1"] or (len(parts) == 3 and parts[0] == "apis"
                                      and groups.get(parts[1]) == parts[2]):
            group = "" if parts[0] == "api" else parts[1]
            listed: list[dict[str, Any]] = []
            for r in self:
                if r.group != group:
                    continue
                listed.append({"name": r.plural, "singularName": r.kind.lower(),
                               "namespaced": r.namespaced, "kind": r.kind, "verbs": r.verbs()})
                listed += [{"name": f"{r.plural}/{s.name}", "singularName": "",
                            "namespaced": r.namespaced, "kind": s.kind or r.kind,
                            "verbs": list(s.verbs)} for s in r.subresources]
            return {"kind": "APIResourceList", "apiVersion": "v1",
                    "groupVersion": "/".join(parts[1:]) if group else "v1",
                    "resources": listed}
        return None
