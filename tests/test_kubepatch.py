"""The sandbox Kubernetes API's pure parts: patches and selectors, as the real server does them."""

from __future__ import annotations

import pytest

from playbook.sandbox.kube.errors import ApiError
from playbook.sandbox.kube.patch import (
    apply_patch,
    changed_paths,
    json_patch,
    merge_patch,
    strategic_merge,
)
from playbook.sandbox.kube.selectors import field_matcher, label_matcher
from playbook.sandbox.kube.times import parse_duration
from playbook.sandbox.kube.workload import image_tag

pytestmark = pytest.mark.unit

POD = {"metadata": {"name": "p", "labels": {"app": "a", "tier": "web"}},
       "spec": {"containers": [{"name": "backend", "image": "x:1", "ports": [
           {"containerPort": 80}]}, {"name": "sidecar", "image": "s:1"}]}}


def test_merge_patch_replaces_lists_and_deletes_with_null() -> None:
    out = merge_patch(POD, {"metadata": {"labels": {"tier": None, "new": "1"}},
                            "spec": {"containers": [{"name": "backend", "image": "x:2"}]}})
    assert out["metadata"]["labels"] == {"app": "a", "new": "1"}
    assert out["spec"]["containers"] == [{"name": "backend", "image": "x:2"}]
    assert POD["spec"]["containers"][0]["image"] == "x:1"  # the input is left alone


def test_strategic_merge_merges_lists_on_their_key() -> None:
    out = strategic_merge(POD, {"spec": {"containers": [{"name": "backend", "image": "x:2"}]}})
    assert [c["image"] for c in out["spec"]["containers"]] == ["x:2", "s:1"]
    assert out["spec"]["containers"][0]["ports"] == [{"containerPort": 80}]
    out = strategic_merge(POD, {"spec": {"containers": [{"name": "sidecar",
                                                         "$patch": "delete"}]}})
    assert [c["name"] for c in out["spec"]["containers"]] == ["backend"]
    out = strategic_merge(POD, {"metadata": {"labels": {"$patch": "replace", "only": "1"}}})
    assert out["metadata"]["labels"] == {"only": "1"}
    conds = {"status": {"conditions": [{"type": "Ready", "status": "True"},
                                       {"type": "DiskPressure", "status": "False"}]}}
    out = strategic_merge(conds, {"status": {"conditions": [{"type": "Ready",
                                                             "status": "False"}]}})
    assert out["status"]["conditions"] == [{"type": "Ready", "status": "False"},
                                           {"type": "DiskPressure", "status": "False"}]


def test_json_patch_operations() -> None:
    out = json_patch(POD, [
        {"op": "replace", "path": "/spec/containers/0/image", "value": "x:3"},
        {"op": "add", "path": "/metadata/labels/a~1b", "value": "slash"},
        {"op": "remove", "path": "/spec/containers/1"},
        {"op": "add", "path": "/spec/containers/-", "value": {"name": "c"}},
        {"op": "copy", "from": "/metadata/name", "path": "/metadata/generateName"},
        {"op": "test", "path": "/metadata/name", "value": "p"},
    ])
    assert out["spec"]["containers"] == [{"name": "backend", "image": "x:3", "ports": [
        {"containerPort": 80}]}, {"name": "c"}]
    assert out["metadata"]["labels"]["a/b"] == "slash"
    assert out["metadata"]["generateName"] == "p"
    with pytest.raises(ApiError) as e:
        json_patch(POD, [{"op": "replace", "path": "/spec/nothing", "value": 1}])
    assert e.value.code == 422
    with pytest.raises(ApiError) as e:
        json_patch(POD, [{"op": "test", "path": "/metadata/name", "value": "q"}])
    assert e.value.code == 422


def test_content_types() -> None:
    body = {"spec": {"containers": [{"name": "backend", "image": "x:9"}]}}
    smp = apply_patch(POD, "application/strategic-merge-patch+json; charset=utf-8", body, True)
    assert len(smp["spec"]["containers"]) == 2
    assert len(apply_patch(POD, "application/merge-patch+json", body, True)["spec"][
        "containers"]) == 1
    for kind, strategic in (("application/strategic-merge-patch+json", False),
                            ("application/apply-patch+yaml", True), ("text/plain", True)):
        with pytest.raises(ApiError) as e:
            apply_patch(POD, kind, body, strategic)
        assert e.value.code == 415 and e.value.status()["reason"] == "UnsupportedMediaType"


@pytest.mark.parametrize("selector, matches", [
    ("app=a", True), ("app==a,tier=web", True), ("app!=a", False), ("missing!=x", True),
    ("app in (a, b)", True), ("app notin (a)", False), ("tier", True), ("!tier", False),
    ("app=a,status.phase=Failed", False), ("", True),
])
def test_label_selectors(selector: str, matches: bool) -> None:
    assert label_matcher(selector)(POD["metadata"]["labels"]) is matches


def test_bad_selectors_are_400() -> None:
    with pytest.raises(ApiError) as e:
        label_matcher("app in (a")
    assert e.value.code == 400
    fields = frozenset({"status.phase", "metadata.name"})
    obj = {"metadata": {"name": "p"}, "status": {"phase": "Running"}}
    assert field_matcher("status.phase=Running,metadata.name!=q", fields, "pods")(obj)
    assert not field_matcher("status.phase==Failed", fields, "pods")(obj)
    with pytest.raises(ApiError) as e:
        field_matcher("spec.nodeName=x", fields, "pods")
    assert e.value.code == 400 and "field label not supported: spec.nodeName" in e.value.message


def test_changed_paths_and_helpers() -> None:
    new = strategic_merge(POD, {"spec": {"containers": [{"name": "backend", "image": "y"}]},
                                "metadata": {"labels": {"tier": None}}})
    assert changed_paths(POD, new) == ["metadata.labels.tier", "spec.containers[0].image"]
    assert image_tag("registry.sandbox.local/security-dashboard-backend:1.5.0-bad-5xx") == \
        "1.5.0-bad-5xx"
    assert image_tag("docker.io/other:1") is None
    assert parse_duration("1m30s") == 90 and parse_duration("500ms") == 0.5
    with pytest.raises(ValueError):
        parse_duration("soon")
