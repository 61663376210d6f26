"""The sandbox Kubernetes API's resources table, without a sandbox: a path names the kind of its
own API group (another group's `pods`, as metrics.k8s.io has, does not shadow the core's), a
path that names none is a 404 worded as the real server's, and discovery lists what is served
with the verbs its handlers give it."""

from __future__ import annotations

from typing import Any

import pytest

from playbook.sandbox.kube.errors import ApiError
from playbook.sandbox.kube.resources import Registry, Resource

pytestmark = pytest.mark.unit

NS = "security-dashboard"


def _none(*_args: Any) -> Any:
    return None


def served() -> Registry:
    reg = Registry()
    reg.serve("pods", list_fn=lambda _ns: [{"metadata": {"name": "p1", "labels": {"a": "1"}}}],
              delete_fn=_none)
    reg.serve("deployments.apps", list_fn=lambda _ns: [], update_fn=_none)
    reg.serve(Resource("pods", "PodMetrics", "metrics.k8s.io", "v1beta1", True,
                       list_fn=lambda _ns: []))
    return reg


def test_a_path_names_the_kind_of_its_group() -> None:
    reg = served()
    res, ns, name, sub = reg.locate("GET", f"/api/v1/namespaces/{NS}/pods/p1/log")
    assert (res.kind, ns, name, sub) == ("Pod", NS, "p1", "log")
    assert reg.locate("GET", f"/apis/metrics.k8s.io/v1beta1/namespaces/{NS}/pods").res.kind \
        == "PodMetrics"
    assert reg.locate("GET", "/apis/apps/v1/deployments").ns is None
    assert reg["pods"].get(NS, "p1")["metadata"]["name"] == "p1"
    assert reg["pods"].select(reg["pods"].objects(NS), {"labelSelector": "a=2"}) == []


@pytest.mark.parametrize("path, message", [
    (f"/apis/apps/v1/namespaces/{NS}/pods", "the sandbox does not serve pods in apps/v1"),
    (f"/apis/apps/v2/namespaces/{NS}/deployments",
     "the sandbox does not serve deployments in apps/v2"),
    ("/api/v1/pods/p1", "pods are namespaced: use /namespaces/<namespace>/pods/p1"),
    (f"/api/v1/namespaces/{NS}/pods/p1/exec", "pods has no subresource 'exec' here"),
    ("/healthz", "the server could not find the requested resource (GET /healthz)"),
])
def test_a_path_that_names_no_resource_is_404(path: str, message: str) -> None:
    with pytest.raises(ApiError) as e:
        served().locate("GET", path)
    assert (e.value.code, e.value.reason) == (404, "NotFound")
    assert message in e.value.message


def test_an_object_not_there_is_404() -> None:
    with pytest.raises(ApiError) as e:
        served()["pods"].get(NS, "p2")
    assert e.value.status()["message"] == 'pods "p2" not found'
    assert e.value.details == {"name": "p2", "group": "", "kind": "pods"}


def test_discovery_lists_what_is_served() -> None:
    reg = served()
    apis = reg.discovery(["apis"])
    assert apis is not None
    assert [g["name"] for g in apis["groups"]] == ["apps", "metrics.k8s.io"]
    core = reg.discovery(["api", "v1"])
    assert core is not None
    assert {r["name"]: (r["kind"], r["verbs"]) for r in core["resources"]} == {
        "pods": ("Pod", ["get", "list", "delete"]), "pods/log": ("Pod", ["get"])}
    apps = reg.discovery(["apis", "apps", "v1"])
    assert apps is not None
    assert {r["name"]: r["verbs"] for r in apps["resources"]} == {
        "deployments": ["get", "list", "patch", "update"],
        "deployments/scale": ["get", "patch", "update"]}
    assert reg.discovery(["apis", "apps", "v2"]) is None
