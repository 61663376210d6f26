"""checks/test_kubernetes.py against the sandbox's Kubernetes API: green when healthy, red with
the right sentence and severity for each fault, and one clear sentence - fast - when the API
refuses the credentials (401), forbids (403), is unreachable or hangs.

One sandbox for the module; the tests run in order from harmless to destructive and each
reverts its fault (the Warning events they cause stay: the healthy run comes first)."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from playbook.probes.kube import Kube
from playbook.sandbox.launch import Sandbox, start_sandbox, stop_sandbox
from tests.conftest import run_suite

pytestmark = pytest.mark.sandbox

CHECKS = "checks/test_kubernetes.py"
NS = "security-dashboard"
NAME = "security-dashboard-backend"
ALL = ("test_backend_pods_running_and_ready", "test_no_pod_crash_looping",
       "test_restarts_within_budget", "test_nodes_ready", "test_deployment_available",
       "test_no_recent_warning_events", "test_rollout_healthy_on_stable")
# The first check of a run imports the kubernetes client's API classes (seconds on a busy
# machine) before it asks the API; the budget for everything else is the profile's timeout.
IMPORT_BUDGET = 12.0


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout} s")


def api_client(sb: Sandbox, context: str = "sandbox") -> k8s.ApiClient:
    cfg = k8s.Configuration()
    k8s_config.load_kube_config(config_file=str(sb.dir / "kubeconfig"), context=context,
                                client_configuration=cfg)
    return k8s.ApiClient(cfg)


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    # A budget of 1 restart: a crash-looping pod goes over it within seconds.
    box = start_sandbox(tmp_path_factory.mktemp("kube"), without=("monitoring", "aws"),
                        kubernetes={"restart_budget": 1})
    try:
        yield box
    finally:
        stop_sandbox(box)


@pytest.fixture(scope="module")
def api(sb: Sandbox) -> Iterator[k8s.ApiClient]:
    with api_client(sb) as client:
        yield client


def profile_with(sb: Sandbox, tmp: Path, **kubernetes: Any) -> Path:
    raw = yaml.safe_load(sb.path.read_text())
    raw["kubernetes"].update(kubernetes)
    path = tmp / "profile.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def failures(run: Any) -> dict[str, dict[str, str]]:
    return {f["test"].split("::")[-1]: f for f in run.verdict.get("failures", [])}


# --- healthy -----------------------------------------------------------------------------


def test_all_green_on_healthy_sandbox(sb: Sandbox, tmp_path: Path) -> None:
    run = run_suite(sb.path, CHECKS, tmp=tmp_path)
    assert run.returncode == 0, run.output
    assert run.verdict == {"verdict": "healthy", "failures": []}
    assert f"{len(ALL)} passed" in run.output, run.output


# --- the API cannot be asked -----------------------------------------------------------------


def check_seconds(run: Any) -> list[float]:
    """Each check's time (setup + call + teardown) from the run's JUnit XML, in run order."""
    root = ElementTree.parse(run.junit).getroot()
    return [float(case.get("time", 0)) for case in root.iter("testcase")]


def assert_one_sentence(run: Any, sentence: str, first_budget: float) -> None:
    """Every check fails with the same sentence at its level, the first within the time to
    import the client and reach the API, the others within the profile's timeout."""
    got = failures(run)
    assert set(got) == set(ALL), run.output
    for test, f in got.items():
        assert sentence in f["message"], (test, f["message"])
        assert "\n" not in f["message"] and "Traceback" not in f["message"]
        # The check's level, capped at P1: the cluster is blind, not necessarily down.
        assert f["severity"] == ("P3" if test == "test_no_recent_warning_events" else
                                 "P2" if test in ("test_no_pod_crash_looping",
                                                  "test_restarts_within_budget") else "P1")
    assert run.verdict["verdict"] == "P1"
    seconds = check_seconds(run)
    assert len(seconds) == len(ALL) and seconds[0] < first_budget, seconds
    # Within the profile's timeout (2 s) each, import of another API class included.
    assert all(t < 2.0 for t in seconds[1:]), seconds


def test_wrong_token_is_401_in_one_sentence(sb: Sandbox, tmp_path: Path) -> None:
    kc = yaml.safe_load((sb.dir / "kubeconfig").read_text())
    for user in kc["users"]:
        user["user"]["token"] = "expired-" + user["user"]["token"][:6]
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(kc))
    profile = profile_with(sb, tmp_path, kubeconfig=str(tmp_path / "kubeconfig"))
    run = run_suite(profile, CHECKS, tmp=tmp_path)
    server = sb.state["components"]["kubernetes"]["url"]
    assert_one_sentence(run, f"Kubernetes API at {server} refused the credentials "
                        f"(401 Unauthorized) - check the token in kubeconfig "
                        f"{tmp_path / 'kubeconfig'}, context sandbox", IMPORT_BUDGET)
    assert "expired-" not in run.output  # the token never shows


def test_identity_without_rights_is_403_in_one_sentence(sb: Sandbox, tmp_path: Path) -> None:
    profile = profile_with(sb, tmp_path, context="sandbox-forbidden")
    run = run_suite(profile, CHECKS, tmp=tmp_path)
    assert_one_sentence(run, "(403 Forbidden: ", IMPORT_BUDGET)
    pods = failures(run)["test_backend_pods_running_and_ready"]["message"]
    server = sb.state["components"]["kubernetes"]["url"]
    assert pods == (
        f"Kubernetes API at {server} forbids the suite to list pods "
        f"app={NAME} in namespace {NS} (403 Forbidden: pods is forbidden: User "
        f'"sandbox-nobody" cannot list resource "pods" in API group "" in the namespace '
        f'"{NS}") - grant its identity read access to it (RBAC)')


def _kubeconfig_at(sb: Sandbox, tmp: Path, server: str) -> Path:
    kc = yaml.safe_load((sb.dir / "kubeconfig").read_text())
    kc["clusters"][0]["cluster"]["server"] = server
    (tmp / "kubeconfig").write_text(yaml.safe_dump(kc))
    return tmp / "kubeconfig"


def test_unreachable_api_in_one_sentence(sb: Sandbox, tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kc = _kubeconfig_at(sb, tmp_path, f"http://127.0.0.1:{port}")
    profile = profile_with(sb, tmp_path, kubeconfig=str(kc))
    run = run_suite(profile, CHECKS, tmp=tmp_path)
    assert_one_sentence(run, f"Kubernetes API at http://127.0.0.1:{port} is unreachable: "
                        "connection refused - is the cluster up and the server in kubeconfig",
                        IMPORT_BUDGET)


def test_hanging_api_costs_one_timeout(sb: Sandbox, tmp_path: Path) -> None:
    """The probe itself (no pytest subprocess: the sentence path is the one above): an API
    that accepts connections and never answers costs one timeout for the whole run."""
    with socket.socket() as s:  # accepts connections (backlog) and never answers
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        port = s.getsockname()[1]
        kc = _kubeconfig_at(sb, tmp_path, f"http://127.0.0.1:{port}")
        section = dataclasses.replace(sb.profile.kubernetes, kubeconfig=str(kc), timeout=1.0)
        kube = Kube(section)
        k8s.CoreV1Api, k8s.AppsV1Api, k8s.CustomObjectsApi  # noqa: B018 - import them first
        started = time.monotonic()
        observations = [kube.pods(), kube.nodes(), kube.deployment(), kube.warning_events(),
                        kube.rollout()]
        took = time.monotonic() - started
        kube.close()
    sentence = (f"Kubernetes API at http://127.0.0.1:{port} did not answer within 1 s when "
                f"asked to list pods app={NAME} in namespace {NS} (timeout) - the API server "
                "is down, overloaded or filtered")
    assert [o.error for o in observations] == [sentence] * 5
    assert 1.0 <= took < 2.0, took


# --- faults -------------------------------------------------------------------------------


def test_node_not_ready(sb: Sandbox, api: k8s.ApiClient, tmp_path: Path) -> None:
    core = k8s.CoreV1Api(api)
    down = {"type": "Ready", "status": "False", "reason": "KubeletNotReady",
            "message": "container runtime is down"}
    core.patch_node_status("sandbox-node-2", {"status": {"conditions": [down]}})
    try:
        run = run_suite(sb.path, CHECKS, tmp=tmp_path)
    finally:
        core.patch_node_status("sandbox-node-2", {"status": {"conditions": [
            {"type": "Ready", "status": "True", "reason": "KubeletReady",
             "message": "kubelet is posting ready status"}]}})
    got = failures(run)
    assert set(got) == {"test_nodes_ready"}, run.output
    server = sb.state["components"]["kubernetes"]["url"]
    assert got["test_nodes_ready"] == {
        "test": f"{CHECKS}::test_nodes_ready", "severity": "P1",
        "message": f"1 of 2 nodes not Ready (nodes at {server}): sandbox-node-2 (Ready=False: "
                   "KubeletNotReady - container runtime is down)"}


def test_hung_replica_leaves_deployment_below_desired(sb: Sandbox, api: k8s.ApiClient,
                                                      tmp_path: Path) -> None:
    """A replica that hangs (SIGSTOP): its readiness probe fails, the Deployment still wants 2
    but has 1 available; the pods check says which; the Unhealthy event is listed; the rollout
    is Progressing again (as Argo says while a replica is unavailable)."""
    victim = sb.pods()[0]
    os.kill(victim["pid"], signal.SIGSTOP)
    try:
        core = k8s.CoreV1Api(api)
        wait_for(lambda: not core.read_namespaced_pod(victim["name"], NS).status
                 .container_statuses[0].ready, what="the hung pod not ready")
        run = run_suite(sb.path, CHECKS, tmp=tmp_path)
    finally:
        os.kill(victim["pid"], signal.SIGCONT)
    got = failures(run)
    assert set(got) == {"test_deployment_available", "test_backend_pods_running_and_ready",
                        "test_no_recent_warning_events", "test_rollout_healthy_on_stable"}, \
        run.output
    server = sb.state["components"]["kubernetes"]["url"]
    deploy = got["test_deployment_available"]
    assert deploy["severity"] == "P1"
    assert deploy["message"] == (f"deployment {NAME} in namespace {NS} at {server}: 1 of 2 "
                                 "desired replicas available (1 ready, 2 up to date)")
    pods = got["test_backend_pods_running_and_ready"]
    assert pods["severity"] == "P1"
    assert pods["message"] == (
        f"1 of 2 backend pods are not Running and Ready (pods app={NAME} in namespace {NS} "
        f"at {server}): {victim['name']} (phase Running, not ready, 0 restarts)")
    events = got["test_no_recent_warning_events"]
    assert events["severity"] == "P3"
    assert events["message"].startswith(f"1 Warning event in the last 30 min (Warning events "
                                        f"in namespace {NS} at {server}): Pod/{victim['name']} "
                                        "Unhealthy (")
    assert events["message"].endswith("): Readiness probe failed: GET /api/ready")
    rollout = got["test_rollout_healthy_on_stable"]
    assert rollout["severity"] == "P2"
    assert rollout["message"].startswith(
        f"Argo rollout {NAME} in namespace {NS} at {server} is Progressing (updated replicas "
        "are still becoming available) on pod hash ")
    assert rollout["message"].endswith(
        "(revision 2, image registry.sandbox.local/security-dashboard-backend:1.4.2), stable "
        f"is {victim['name'].split('-')[-2]} - expected Healthy on the stable revision")
    assert run.verdict["verdict"] == "P1"
    wait_for(lambda: all(p["ready"] for p in sb.pods()), what="the replica ready again")


def test_deployment_scaled_to_zero_is_an_outage(sb: Sandbox, api: k8s.ApiClient,
                                                 tmp_path: Path) -> None:
    """Scaled to 0 of 0, the Deployment has every replica it wants and serves nothing: the
    deployment check is red at P0 (it passed before), as is the pods check."""
    apps = k8s.AppsV1Api(api)
    apps.patch_namespaced_deployment_scale(NAME, NS, {"spec": {"replicas": 0}})
    try:
        wait_for(lambda: not sb.pods(), what="every replica stopped")
        run = run_suite(sb.path, CHECKS, tmp=tmp_path,
                        extra=["-k", "deployment_available or pods_running"])
    finally:
        apps.patch_namespaced_deployment_scale(NAME, NS, {"spec": {"replicas": 2}})
    got = failures(run)
    assert set(got) == {"test_deployment_available", "test_backend_pods_running_and_ready"}, \
        run.output
    server = sb.state["components"]["kubernetes"]["url"]
    assert got["test_deployment_available"]["severity"] == "P0"
    assert got["test_deployment_available"]["message"] == (
        f"deployment {NAME} in namespace {NS} at {server} is scaled to 0 replicas (0 of 0 "
        "available) - it serves nothing: scale it back up (`kubectl scale deployment ... "
        "--replicas=N`)")
    assert got["test_backend_pods_running_and_ready"]["severity"] == "P0"
    assert run.verdict["verdict"] == "P0"
    wait_for(lambda: len(sb.pods()) == 2 and all(p["ready"] for p in sb.pods()), timeout=60,
             what="two ready replicas again")


def test_crash_looping_pod_after_bad_deploy(sb: Sandbox, api: k8s.ApiClient,
                                            tmp_path: Path) -> None:
    """A bad deploy (image tag bad-crash): the new pod crash-loops, the rollout is Degraded
    past its deadline, the old replicas keep serving (so the Deployment stays available)."""
    custom, core = k8s.CustomObjectsApi(api), k8s.CoreV1Api(api)
    image = "registry.sandbox.local/security-dashboard-backend:1.5.0-bad-crash"
    custom.patch_namespaced_custom_object(
        "argoproj.io", "v1alpha1", NS, "rollouts", NAME,
        {"spec": {"progressDeadlineSeconds": 2, "template": {"spec": {"containers": [
            {"name": "backend", "image": image}]}}}})

    def crashed() -> Any:
        for p in core.list_namespaced_pod(NS, label_selector=f"app={NAME}").items:
            cs = p.status.container_statuses[0]
            if cs.image == image and cs.restart_count >= 2:
                return p
        return None

    bad = wait_for(crashed, what="the new pod restarted twice")
    wait_for(lambda: custom.get_namespaced_custom_object(
        "argoproj.io", "v1alpha1", NS, "rollouts", NAME)["status"]["phase"] == "Degraded",
        what="the rollout Degraded")
    run = run_suite(sb.path, CHECKS, tmp=tmp_path)
    got = failures(run)
    assert {"test_no_pod_crash_looping", "test_restarts_within_budget",
            "test_rollout_healthy_on_stable", "test_backend_pods_running_and_ready",
            "test_no_recent_warning_events"} == set(got), run.output
    crash = got["test_no_pod_crash_looping"]
    assert crash["severity"] == "P2"
    assert crash["message"].startswith(
        f"1 backend pod crash-looping (pods app={NAME} in namespace {NS} at "), crash
    assert f"{bad.metadata.name} (phase Running, not ready" in crash["message"]
    assert "last exit code 1) - read `kubectl logs --previous` of the pod" in crash["message"]
    restarts = got["test_restarts_within_budget"]
    assert restarts["severity"] == "P2"
    assert "restarted more than the budget of 1 (" in restarts["message"]
    assert bad.metadata.name in restarts["message"]
    rollout = got["test_rollout_healthy_on_stable"]
    assert rollout["severity"] == "P1"
    assert f"Argo rollout {NAME} in namespace {NS} at " in rollout["message"]
    assert (" is Degraded (ProgressDeadlineExceeded: ReplicaSet " in rollout["message"]
            and f"image {image}), stable is " in rollout["message"]
            and rollout["message"].endswith(" - roll back: `kubectl argo rollouts abort` "
                                            "then `undo`")), rollout
    # Two old replicas still serve: one pod of three not ready is partial (P1), not an outage.
    assert got["test_backend_pods_running_and_ready"]["severity"] == "P1"
    assert "BackOff" in got["test_no_recent_warning_events"]["message"]
