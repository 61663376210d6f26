"""The contract between the `kubernetes` client and the sandbox's Kubernetes API: every call the
checks, probes, faults and runbook actions make is answered with JSON that deserializes into
the client's (strict, pydantic) models, errors are `Status` objects, and the objects follow the
sandbox's processes: deleting a pod kills its process, scaling changes how many run, the
configmap, the service selector, HTTPChaos and the rollout's image change what users get.

One sandbox for the module; the tests run in order and revert what they change."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from playbook.sandbox import control
from playbook.sandbox.launch import Sandbox, start_sandbox, stop_sandbox
from playbook.sandbox.state import pid_alive

pytestmark = pytest.mark.sandbox

NS = "security-dashboard"
NAME = "security-dashboard-backend"
IMAGE = "registry.sandbox.local/security-dashboard-backend"
ARGO = ("argoproj.io", "v1alpha1")
CHAOS = ("chaos-mesh.org", "v1alpha1")


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout} s")


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    box = start_sandbox(tmp_path_factory.mktemp("kubeapi"),
                        without=("monitoring", "aws"))
    try:
        yield box
    finally:
        stop_sandbox(box)


def _client(sb: Sandbox, context: str) -> k8s.ApiClient:
    cfg = k8s.Configuration()
    k8s_config.load_kube_config(config_file=str(sb.dir / "kubeconfig"), context=context,
                                client_configuration=cfg)
    return k8s.ApiClient(cfg)


@pytest.fixture(scope="module")
def api(sb: Sandbox) -> Iterator[k8s.ApiClient]:
    with _client(sb, "sandbox") as client:
        yield client


@pytest.fixture(scope="module")
def core(api: k8s.ApiClient) -> k8s.CoreV1Api:
    return k8s.CoreV1Api(api)


@pytest.fixture(scope="module")
def apps(api: k8s.ApiClient) -> k8s.AppsV1Api:
    return k8s.AppsV1Api(api)


@pytest.fixture(scope="module")
def custom(api: k8s.ApiClient) -> k8s.CustomObjectsApi:
    return k8s.CustomObjectsApi(api)


def raw(sb: Sandbox, method: str, path: str, token: str | None = "admin",
        **kwargs: Any) -> httpx.Response:
    kc = yaml.safe_load((sb.dir / "kubeconfig").read_text())
    tokens = {u["name"].removeprefix("sandbox-"): u["user"]["token"] for u in kc["users"]}
    headers = kwargs.pop("headers", {})
    if token:
        headers["authorization"] = f"Bearer {tokens[token]}"
    url = sb.state["components"]["kubernetes"]["url"] + path
    return httpx.request(method, url, headers=headers, timeout=5, **kwargs)


def status_of(e: ApiException) -> dict[str, Any]:
    body = json.loads(e.body)
    assert body["kind"] == "Status" and body["status"] == "Failure" and body["code"] == e.status
    k8s.V1Status.from_dict(body)  # a Status the client's model accepts
    return body


def chaos(sb: Sandbox) -> dict[str, Any]:
    return json.loads((sb.dir / "chaos.json").read_text())


def front(sb: Sandbox, path: str = "/api/status") -> httpx.Response:
    return httpx.get(sb.profile.service.url(path), timeout=10)


def running_pids(sb: Sandbox) -> list[int]:
    return [p["pid"] for p in sb.pods() if p["pid"] and pid_alive(p["pid"])]


# --- the kubeconfig -------------------------------------------------------------------------


def test_kubeconfig_written_and_shown_in_status(sb: Sandbox) -> None:
    info = control.status(sb.profile)["components"]["kubernetes"]
    path = sb.dir / "kubeconfig"
    assert info["kubeconfig"] == str(path) and info["up"] is True
    assert info["url"] == f"http://127.0.0.1:{sb.profile.sandbox.ports.kube}"
    assert oct(path.stat().st_mode & 0o777) == "0o600"  # it holds tokens
    kc = yaml.safe_load(path.read_text())
    assert kc["current-context"] == "sandbox"
    assert {c["name"] for c in kc["contexts"]} == {"sandbox", "sandbox-viewer",
                                                    "sandbox-forbidden"}
    # The profile points at it (tests/conftest.py moves it with the state dir).
    assert sb.profile.kubernetes.kubeconfig == str(path)
    tokens = [u["user"]["token"] for u in kc["users"]]
    assert not any(t in sb.path.read_text() for t in tokens)


# --- reads: every call of the probes, typed ------------------------------------------------


def test_reads_deserialize_into_the_clients_models(sb: Sandbox, api: k8s.ApiClient,
                                                   core: k8s.CoreV1Api, apps: k8s.AppsV1Api,
                                                   custom: k8s.CustomObjectsApi) -> None:
    assert k8s.VersionApi(api).get_code().git_version.startswith("v1.30")
    assert NS in [n.metadata.name for n in core.list_namespace().items]
    assert core.read_namespace(NS).status.phase == "Active"
    nodes = core.list_node()
    assert [n.metadata.name for n in nodes.items] == ["sandbox-node-1", "sandbox-node-2"]
    assert core.read_node("sandbox-node-1").status.conditions[-1].type == "Ready"

    pods = core.list_namespaced_pod(NS, label_selector=f"app={NAME}")
    assert isinstance(pods, k8s.V1PodList) and len(pods.items) == 2
    pod = pods.items[0]
    cs = pod.status.container_statuses[0]
    assert (pod.status.phase, cs.ready, cs.restart_count, cs.image) == (
        "Running", True, 0, f"{IMAGE}:1.4.2")
    assert pod.metadata.labels["version"] == "stable"
    assert core.read_namespaced_pod(pod.metadata.name, NS).metadata.uid == pod.metadata.uid
    assert len(core.list_pod_for_all_namespaces(field_selector="status.phase=Running").items) == 2
    assert core.list_namespaced_pod(NS, field_selector="status.phase=Failed").items == []
    # The playbook's `kubectl delete pods -l app=...,status.phase=Failed`: a label, not a field.
    assert core.list_namespaced_pod(
        NS, label_selector=f"app={NAME},status.phase=Failed").items == []
    assert len(core.list_namespaced_pod(
        NS, label_selector=f"app in ({NAME}, other),!missing,version!=canary").items) == 2
    assert core.list_namespaced_pod("default").items == []
    page = core.list_namespaced_pod(NS, limit=1)
    assert len(page.items) == 1 and page.metadata.remaining_item_count == 1
    rest = core.list_namespaced_pod(NS, limit=1, _continue=page.metadata._continue)
    assert rest.items[0].metadata.name != page.items[0].metadata.name

    log = core.read_namespaced_pod_log(pod.metadata.name, NS, tail_lines=1, since_seconds=600,
                                       timestamps=True)
    assert log.endswith(f"pod {pod.metadata.name} version 1.4.2 starting\n"), log
    time.sleep(1.1)  # lines older than sinceSeconds are left out
    assert core.read_namespaced_pod_log(pod.metadata.name, NS, since_seconds=1) == ""

    deploy = apps.read_namespaced_deployment(NAME, NS)
    assert (deploy.spec.replicas, deploy.status.available_replicas,
            deploy.spec.revision_history_limit) == (2, 2, 10)
    assert deploy.spec.template.spec.containers[0].image == f"{IMAGE}:1.4.2"
    assert [d.metadata.name for d in apps.list_namespaced_deployment(NS).items] == [NAME]
    scale = apps.read_namespaced_deployment_scale(NAME, NS)
    assert (scale.spec.replicas, scale.status.replicas) == (2, 2)
    rs = apps.list_namespaced_replica_set(NS).items
    # The sandbox starts with a previous revision (1.4.1, scaled to zero) to roll back to.
    assert len(rs) == 2 and rs[1].status.ready_replicas == 2 and not rs[0].status.ready_replicas
    assert [r.metadata.annotations["deployment.kubernetes.io/revision"] for r in rs] == ["1", "2"]
    assert rs[0].spec.template.spec.containers[0].image == f"{IMAGE}:1.4.1"
    svc = core.read_namespaced_service(NAME, NS)
    assert svc.spec.selector == {"app": NAME}
    ep = core.read_namespaced_endpoints(NAME, NS)
    assert sum(len(s.addresses or []) for s in ep.subsets) == 2
    cm = core.read_namespaced_config_map("security-dashboard-config", NS)
    assert cm.data["MAINTENANCE_MODE"] == "false"
    events = core.list_namespaced_event(NS)
    assert isinstance(events, k8s.CoreV1EventList) and events.items
    assert {e.reason for e in events.items} >= {"SuccessfulCreate", "Started"}
    assert core.list_namespaced_event(NS, field_selector="type=Warning").items == []
    assert all(e.last_timestamp and e.involved_object.kind for e in events.items)

    rollout = custom.get_namespaced_custom_object(*ARGO, NS, "rollouts", NAME)
    assert rollout["status"]["phase"] == "Healthy"
    assert rollout["status"]["stableRS"] == rollout["status"]["currentPodHash"]
    assert rollout["spec"]["template"]["spec"]["containers"][0]["image"] == f"{IMAGE}:1.4.2"
    listed = custom.list_namespaced_custom_object(*ARGO, NS, "rollouts")
    assert listed["kind"] == "RolloutList" and len(listed["items"]) == 1
    assert custom.list_namespaced_custom_object(*CHAOS, NS, "httpchaos")["items"] == []


# --- errors -------------------------------------------------------------------------------


def test_errors_are_status_objects(sb: Sandbox, core: k8s.CoreV1Api, apps: k8s.AppsV1Api,
                                   custom: k8s.CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as e:
        core.read_namespaced_pod("no-such-pod", NS)
    assert e.value.status == 404
    assert status_of(e.value)["reason"] == "NotFound"
    assert status_of(e.value)["message"] == 'pods "no-such-pod" not found'

    cm = core.read_namespaced_config_map("security-dashboard-config", NS)
    core.patch_namespaced_config_map("security-dashboard-config", NS,
                                     {"data": {"LOG_LEVEL": "debug"}})
    with pytest.raises(ApiException) as e:  # a write based on what someone else changed since
        core.patch_namespaced_config_map("security-dashboard-config", NS, {
            "metadata": {"resourceVersion": cm.metadata.resource_version},
            "data": {"LOG_LEVEL": "info"}})
    assert e.value.status == 409 and status_of(e.value)["reason"] == "Conflict"
    core.patch_namespaced_config_map("security-dashboard-config", NS,
                                     {"data": {"LOG_LEVEL": "info"}})

    with pytest.raises(ApiException) as e:
        apps.patch_namespaced_deployment_scale(NAME, NS, {"spec": {"replicas": -1}})
    body = status_of(e.value)
    assert (e.value.status, body["reason"]) == (422, "Invalid")
    assert body["message"].startswith('Scale.autoscaling "security-dashboard-backend" is '
                                      "invalid: spec.replicas: Invalid value: -1")
    with pytest.raises(ApiException) as e:  # a field the sandbox does not model
        apps.patch_namespaced_deployment(NAME, NS, {"spec": {"minReadySeconds": 5}})
    assert e.value.status == 422 and "spec.minReadySeconds" in status_of(e.value)["message"]

    with pytest.raises(ApiException) as e:
        apps.delete_namespaced_deployment(NAME, NS)
    assert e.value.status == 405 and status_of(e.value)["reason"] == "MethodNotAllowed"
    with pytest.raises(ApiException) as e:
        core.list_namespaced_pod(NS, watch=True)
    assert e.value.status == 405 and "watch is not supported" in status_of(e.value)["message"]
    with pytest.raises(ApiException) as e:
        core.list_namespaced_secret(NS)
    assert e.value.status == 404 and status_of(e.value)["reason"] == "NotFound"
    with pytest.raises(ApiException) as e:
        core.list_namespaced_pod(NS, label_selector="app in (")
    assert e.value.status == 400 and status_of(e.value)["reason"] == "BadRequest"
    with pytest.raises(ApiException) as e:
        core.list_namespaced_pod(NS, field_selector="spec.containers=x")
    assert e.value.status == 400 and "field label not supported" in e.value.body

    # Custom resources take no strategic merge patch, as on a real server.
    r = raw(sb, "PATCH", f"/apis/argoproj.io/v1alpha1/namespaces/{NS}/rollouts/{NAME}",
            headers={"content-type": "application/strategic-merge-patch+json"},
            content=b'{"spec":{"paused":true}}')
    assert r.status_code == 415 and r.json()["reason"] == "UnsupportedMediaType"
    r = raw(sb, "GET", f"/api/v1/namespaces/{NS}/pods", token=None)
    assert (r.status_code, r.json()["reason"], r.json()["kind"]) == (401, "Unauthorized",
                                                                     "Status")
    with _client(sb, "sandbox-viewer") as viewer:  # may read, may not write
        assert k8s.CoreV1Api(viewer).list_namespaced_pod(NS).items
        with pytest.raises(ApiException) as e:
            k8s.AppsV1Api(viewer).patch_namespaced_deployment_scale(
                NAME, NS, {"spec": {"replicas": 3}})
    assert e.value.status == 403 and status_of(e.value)["message"] == (
        'deployments.apps "security-dashboard-backend" is forbidden: User "sandbox-viewer" '
        'cannot patch resource "deployments/scale" in API group "apps" in the namespace '
        '"security-dashboard"')


def test_resource_version_changes_on_every_write(core: k8s.CoreV1Api,
                                                 apps: k8s.AppsV1Api) -> None:
    before = core.read_namespaced_config_map("security-dashboard-config", NS)
    after = core.patch_namespaced_config_map("security-dashboard-config", NS,
                                             {"data": {"FEATURE_X": "on"}})
    assert int(after.metadata.resource_version) > int(before.metadata.resource_version)
    again = core.patch_namespaced_config_map("security-dashboard-config", NS,
                                             {"data": {"FEATURE_X": "on"}})
    assert again.metadata.resource_version == after.metadata.resource_version  # no change
    replaced = core.replace_namespaced_config_map(  # PUT with the current version
        "security-dashboard-config", NS, k8s.V1ConfigMap(
            metadata=k8s.V1ObjectMeta(name="security-dashboard-config",
                                      resource_version=again.metadata.resource_version),
            data={k: v for k, v in again.data.items() if k != "FEATURE_X"}))
    assert "FEATURE_X" not in replaced.data
    d0 = apps.read_namespaced_deployment(NAME, NS)
    d1 = apps.patch_namespaced_deployment(  # JSON patch
        NAME, NS, [{"op": "add", "path": "/metadata/annotations/owner", "value": "platform"}])
    assert d1.metadata.annotations["owner"] == "platform"
    assert d1.metadata.resource_version != d0.metadata.resource_version
    d2 = apps.patch_namespaced_deployment(NAME, NS, {"metadata": {"annotations": {
        "owner": None}}})
    assert "owner" not in (d2.metadata.annotations or {})


# --- writes that change the processes ----------------------------------------------------


def test_deleting_a_pod_kills_its_process_and_the_controller_replaces_it(
        sb: Sandbox, core: k8s.CoreV1Api) -> None:
    victim = sb.pods()[0]
    started = time.monotonic()
    deleted = core.delete_namespaced_pod(victim["name"], NS)
    assert time.monotonic() - started < 1.0  # the supervisor's loop does not wait for it
    assert deleted.metadata.deletion_timestamp is not None
    wait_for(lambda: not pid_alive(victim["pid"]), 5, "the pod's process gone")

    def replaced() -> bool:
        pods = core.list_namespaced_pod(NS).items
        return len(pods) == 2 and victim["name"] not in {p.metadata.name for p in pods} and all(
            p.status.container_statuses[0].ready for p in pods)

    wait_for(replaced, 20, "a new ready pod in its place")
    killing = core.list_namespaced_event(
        NS, field_selector=f"involvedObject.name={victim['name']},reason=Killing").items
    assert killing and killing[0].involved_object.kind == "Pod"
    # deletecollection with the playbook's selector: nothing is Failed, nothing is deleted.
    core.delete_collection_namespaced_pod(NS, label_selector=f"app={NAME}",
                                          field_selector="status.phase=Failed")
    assert len(core.list_namespaced_pod(NS).items) == 2


def test_scaling_changes_the_number_of_processes(sb: Sandbox, apps: k8s.AppsV1Api) -> None:
    scale = apps.patch_namespaced_deployment_scale(NAME, NS, {"spec": {"replicas": 3}})
    assert scale.spec.replicas == 3
    wait_for(lambda: len(running_pids(sb)) == 3 and all(p["ready"] for p in sb.pods()), 20,
             "three ready processes")
    assert apps.read_namespaced_deployment(NAME, NS).status.available_replicas == 3
    gone = set(running_pids(sb))
    apps.patch_namespaced_deployment(NAME, NS, {"spec": {"replicas": 2}})  # strategic merge
    wait_for(lambda: len(running_pids(sb)) == 2, 10, "two processes")
    (extra,) = gone - set(running_pids(sb))
    wait_for(lambda: not pid_alive(extra), 5, "the removed process gone")
    deploy = apps.read_namespaced_deployment(NAME, NS)
    assert (deploy.spec.replicas, deploy.status.replicas) == (2, 2)


def test_rollout_restart_replaces_every_pod(core: k8s.CoreV1Api, apps: k8s.AppsV1Api) -> None:
    """`kubectl rollout restart deployment/...`: a template annotation; pods roll one by one."""
    before = {p.metadata.name for p in core.list_namespaced_pod(NS).items}
    stamp = "2026-01-01T00:00:00Z"
    deploy = apps.patch_namespaced_deployment(NAME, NS, {"spec": {"template": {"metadata": {
        "annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}}}})
    assert deploy.spec.template.metadata.annotations == {
        "kubectl.kubernetes.io/restartedAt": stamp}

    def replaced() -> bool:
        pods = core.list_namespaced_pod(NS).items
        return len(pods) == 2 and not {p.metadata.name for p in pods} & before and all(
            p.status.container_statuses[0].ready for p in pods)

    wait_for(replaced, 30, "both pods replaced and ready")
    assert apps.read_namespaced_deployment(NAME, NS).status.available_replicas == 2


def test_maintenance_mode_through_the_configmap(sb: Sandbox, core: k8s.CoreV1Api) -> None:
    core.patch_namespaced_config_map("security-dashboard-config", NS,
                                     {"data": {"MAINTENANCE_MODE": "true"}})
    assert chaos(sb)["maintenance"] is True
    wait_for(lambda: front(sb).status_code == 503, 5, "maintenance answers 503")
    assert front(sb).json()["status"] == "maintenance"
    core.patch_namespaced_config_map("security-dashboard-config", NS,
                                     {"data": {"MAINTENANCE_MODE": "false"}})
    assert chaos(sb)["maintenance"] is False
    wait_for(lambda: front(sb).status_code == 200, 5, "out of maintenance")
    with pytest.raises(ApiException) as e:  # data values are strings
        core.patch_namespaced_config_map("security-dashboard-config", NS,
                                         {"data": {"MAINTENANCE_MODE": True}})
    assert e.value.status == 400


def test_service_selector_decides_where_the_front_routes(sb: Sandbox,
                                                          core: k8s.CoreV1Api) -> None:
    svc = core.patch_namespaced_service(NAME, NS, {"spec": {"selector": {"version": "stable"}}})
    assert svc.spec.selector == {"app": NAME, "version": "stable"}  # merged, as kubectl does
    assert front(sb, "/api/health").status_code == 200  # every pod is stable
    core.patch_namespaced_service(NAME, NS, {"spec": {"selector": {"version": "canary"}}})
    wait_for(lambda: front(sb, "/api/health").status_code == 502, 5, "no endpoint left")
    assert not core.read_namespaced_endpoints(NAME, NS).subsets
    core.patch_namespaced_service(NAME, NS, {"spec": {"selector": {"version": None}}})
    assert core.read_namespaced_service(NAME, NS).spec.selector == {"app": NAME}
    wait_for(lambda: front(sb, "/api/health").status_code == 200, 5, "routed again")


def test_httpchaos_writes_faults_and_keeps_maintenance(sb: Sandbox,
                                                       custom: k8s.CustomObjectsApi) -> None:
    def httpchaos(name: str, **spec: Any) -> dict[str, Any]:
        return {"apiVersion": "chaos-mesh.org/v1alpha1", "kind": "HTTPChaos",
                "metadata": {"name": name, "namespace": NS},
                "spec": {"mode": "fixed-percent", "value": "50", "target": "Request",
                         "port": 8000, "path": "*",
                         "selector": {"namespaces": [NS], "labelSelectors": {"app": NAME}},
                         **spec}}

    assert chaos(sb) == {"maintenance": False}
    made = custom.create_namespaced_custom_object(*CHAOS, NS, "httpchaos",
                                                  httpchaos("errors", abort=True))
    assert made["status"]["experiment"]["desiredPhase"] == "Run"
    assert chaos(sb) == {"maintenance": False, "error_rate": 0.5, "error_status": 502}
    custom.create_namespaced_custom_object(*CHAOS, NS, "httpchaos", httpchaos(
        "slow", mode="all", delay="1500ms"))
    assert chaos(sb)["latency_seconds"] == 1.5
    with pytest.raises(ApiException) as e:
        custom.create_namespaced_custom_object(*CHAOS, NS, "httpchaos",
                                               httpchaos("errors", abort=True))
    assert e.value.status == 409 and status_of(e.value)["reason"] == "AlreadyExists"
    with pytest.raises(ApiException) as e:
        custom.create_namespaced_custom_object(*CHAOS, NS, "httpchaos",
                                               httpchaos("bad", mode="most"))
    assert e.value.status == 422 and "spec.mode" in status_of(e.value)["message"]
    got = custom.get_namespaced_custom_object(*CHAOS, NS, "httpchaos", "slow")
    assert got["spec"]["delay"] == "1500ms"
    listed = custom.list_namespaced_custom_object(*CHAOS, NS, "httpchaos")["items"]
    assert sorted(o["metadata"]["name"] for o in listed) == ["errors", "slow"]
    custom.delete_namespaced_custom_object(*CHAOS, NS, "httpchaos", "errors")
    assert chaos(sb) == {"maintenance": False, "latency_seconds": 1.5}
    custom.delete_namespaced_custom_object(*CHAOS, NS, "httpchaos", "slow")
    assert chaos(sb) == {"maintenance": False}
    with pytest.raises(ApiException) as e:
        custom.delete_namespaced_custom_object(*CHAOS, NS, "httpchaos", "slow")
    assert e.value.status == 404


def test_node_not_ready_through_the_status_subresource(core: k8s.CoreV1Api) -> None:
    node = core.patch_node_status("sandbox-node-1", {"status": {"conditions": [
        {"type": "Ready", "status": "False", "reason": "KubeletNotReady"}]}})
    ready = {c.type: c for c in node.status.conditions}["Ready"]
    assert (ready.status, len(node.status.conditions)) == ("False", 4)  # merged by type
    events = core.list_event_for_all_namespaces(field_selector="involvedObject.kind=Node").items
    assert events[-1].reason == "NodeNotReady" and events[-1].metadata.namespace == "default"
    with pytest.raises(ApiException) as e:  # scheduling is not modelled
        core.patch_node("sandbox-node-1", {"spec": {"unschedulable": True}})
    assert e.value.status == 422
    node = core.patch_node_status("sandbox-node-1", {"status": {"conditions": [
        {"type": "Ready", "status": "True", "reason": "KubeletReady"}]}})
    assert {c.type: c.status for c in node.status.conditions}["Ready"] == "True"


def test_rollout_of_bad_images_abort_and_undo(sb: Sandbox, core: k8s.CoreV1Api,
                                              custom: k8s.CustomObjectsApi) -> None:
    """The image tag is the version: bad-5xx rolls out (it passes readiness) and the front
    answers 500; a bad-slow update aborted goes back to the stable pods (Degraded); undo to the
    stable image is Healthy at once; the bad-slow rollout done is slow for users."""

    def rollout() -> dict[str, Any]:
        return custom.get_namespaced_custom_object(*ARGO, NS, "rollouts", NAME)

    def set_image(tag: str) -> dict[str, Any]:
        return custom.patch_namespaced_custom_object(*ARGO, NS, "rollouts", NAME, {
            "spec": {"template": {"spec": {"containers": [
                {"name": "backend", "image": f"{IMAGE}:{tag}"}]}}}})

    def rolled(tag: str) -> bool:
        r = rollout()
        pods = core.list_namespaced_pod(NS).items
        return r["status"]["phase"] == "Healthy" and len(pods) == 2 and all(
            p.status.container_statuses[0].image == f"{IMAGE}:{tag}" for p in pods)

    first = rollout()["status"]["stableRS"]
    assert set_image("1.5.0-bad-5xx")["status"]["phase"] == "Progressing"
    wait_for(lambda: rolled("1.5.0-bad-5xx"), 60, "the bad-5xx rollout done")
    bad = rollout()
    assert bad["status"]["stableRS"] == bad["status"]["currentPodHash"] != first
    assert bad["metadata"]["annotations"]["rollout.argoproj.io/revision"] == "3"
    assert front(sb, "/api/health").status_code == 500  # a bad build passes its readiness
    assert front(sb, "/api/ready").status_code == 200

    set_image("1.5.1-bad-slow")
    aborted = custom.patch_namespaced_custom_object_status(*ARGO, NS, "rollouts", NAME,
                                                           {"status": {"abort": True}})
    assert aborted["status"]["phase"] == "Degraded"
    assert aborted["status"]["message"] == ("RolloutAborted: Rollout aborted update to "
                                            "revision 4")
    wait_for(lambda: all(p.status.container_statuses[0].image == f"{IMAGE}:1.5.0-bad-5xx"
                         for p in core.list_namespaced_pod(NS).items)
             and len(core.list_namespaced_pod(NS).items) == 2, 20, "back on the stable pods")
    assert rollout()["status"]["phase"] == "Degraded"
    set_image("1.5.0-bad-5xx")  # undo: back to the stable revision's template
    assert rollout()["status"]["phase"] == "Healthy"

    set_image("1.5.1-bad-slow")
    wait_for(lambda: rolled("1.5.1-bad-slow"), 60, "the bad-slow rollout done")
    started = time.monotonic()
    assert front(sb, "/api/health").status_code == 200
    assert time.monotonic() - started >= 3.0
    rs = k8s.AppsV1Api(core.api_client).list_namespaced_replica_set(NS).items
    revisions = sorted(int(r.metadata.annotations["deployment.kubernetes.io/revision"])
                       for r in rs)
    # 1.4.1 (seeded), 1.4.2, 1.5.0-bad-5xx (undone to: 5), 1.5.1-bad-slow (6)
    assert revisions == [1, 2, 5, 6]
    warnings = core.list_namespaced_event(NS, field_selector="type=Warning").items
    assert any(e.reason == "RolloutAborted" for e in warnings)
    assert os.path.exists(sb.dir / "kubeconfig")
