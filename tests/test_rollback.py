"""checks/test_rollback.py against the sandbox (healthy, then broken through its Kubernetes API)
and the recent-deploys check against a fake GitHub API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from playbook import config
from playbook.clients import github_client
from playbook.probes.deploys import DeploysObservation, recent_runs
from playbook.sandbox.launch import Sandbox, start_sandbox, stop_sandbox
from tests.conftest import run_suite
from tests.fake_github import REPO, TOKEN, WORKFLOW, fake_github, github_section, run

NS = "security-dashboard"
NAME = "security-dashboard-backend"
ARGO = ("argoproj.io", "v1alpha1")
CHECKS = "checks/test_rollback.py"
ROLLBACK_TESTS = ("test_revision_history_kept", "test_previous_revision_exists",
                  "test_stable_selector_has_running_pods", "test_rollback_accepted_by_dry_run")


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """One sandbox for the module; each test puts back what it broke (the history test, which
    cannot, runs last)."""
    box = start_sandbox(tmp_path_factory.mktemp("rollback"))
    try:
        yield box
    finally:
        stop_sandbox(box)


@pytest.fixture(scope="module")
def api(sb: Sandbox) -> Iterator[k8s.ApiClient]:
    cfg = k8s.Configuration()
    k8s_config.load_kube_config(config_file=str(sb.dir / "kubeconfig"), context="sandbox",
                                client_configuration=cfg)
    with k8s.ApiClient(cfg) as client:
        yield client


def variant(sb: Sandbox, tmp: Path, **sections: dict[str, Any]) -> Path:
    raw = yaml.safe_load(sb.path.read_text())
    for name, values in sections.items():
        if values is None:
            raw.pop(name, None)
        elif isinstance(raw.get(name), dict):
            raw[name].update(values)
        else:
            raw[name] = values
    path = tmp / "profile.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def rollout(api: k8s.ApiClient) -> dict[str, Any]:
    return k8s.CustomObjectsApi(api).get_namespaced_custom_object(*ARGO, NS, "rollouts", NAME)


def rollback_failures(result: Any) -> dict[str, dict[str, str]]:
    return {name: f for name in ROLLBACK_TESTS if (f := result.failure(name))}


@pytest.mark.sandbox
def test_healthy_sandbox_can_be_rolled_back(sb: Sandbox, api: k8s.ApiClient,
                                            tmp_path: Path) -> None:
    before = rollout(api)
    result = run_suite(sb.path, CHECKS, tmp=tmp_path, extra=["-rA"])
    assert result.returncode == 0, result.output
    assert result.verdict["verdict"] == "healthy"
    for name in ROLLBACK_TESTS:
        assert f"PASSED {CHECKS}::{name}" in result.output
    # No github section in the sandbox profile: skipped with the reason, not failed.
    assert "profile local has no `github` section" in result.output
    # The evidence: revision 1 (1.4.1, seeded) is the target; the dry run changed nothing.
    attached = [json.loads(p.read_text()) for p in result.allure.glob("*-attachment.json")]
    obs = next(a for a in attached if isinstance(a, dict) and "dry_run" in a)
    assert obs["dry_run"] == "accepted" and obs["target"]["number"] == 1
    assert obs["target"]["image"].endswith(":1.4.1") and obs["history_limit"] == 10
    after = rollout(api)
    assert after["spec"] == before["spec"]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]

    # Without Argo: the Deployment and its ReplicaSets answer the same questions.
    plain = variant(sb, tmp_path, kubernetes={"rollout": None})
    result = run_suite(plain, CHECKS, tmp=tmp_path / "plain")
    assert result.returncode == 0, result.output


@pytest.mark.sandbox
def test_sandbox_dry_run_changes_nothing(sb: Sandbox, api: k8s.ApiClient) -> None:
    """dryRun=All as the real API server: the would-be object, validation errors, no write;
    an unknown directive is refused (400), never a real write."""
    from kubernetes.client.exceptions import ApiException

    custom = k8s.CustomObjectsApi(api)
    before = rollout(api)
    image = "registry.sandbox.local/security-dashboard-backend:1.4.1"
    body = {"spec": {"template": {"spec": {"containers": [{"name": "backend", "image": image}]}}}}
    would = custom.patch_namespaced_custom_object(*ARGO, NS, "rollouts", NAME, body,
                                                  dry_run="All")
    assert would["spec"]["template"]["spec"]["containers"][0]["image"] == image
    with pytest.raises(ApiException) as bad:
        custom.patch_namespaced_custom_object(*ARGO, NS, "rollouts", NAME,
                                              {"spec": {"revisionHistoryLimit": -1}},
                                              dry_run="All")
    assert bad.value.status == 422
    with pytest.raises(ApiException) as unknown:
        custom.patch_namespaced_custom_object(*ARGO, NS, "rollouts", NAME, body, dry_run="Nope")
    assert unknown.value.status == 400 and "invalid dry run directive" in unknown.value.body
    after = rollout(api)
    assert after["spec"] == before["spec"]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


@pytest.mark.sandbox
def test_stable_selector_matching_nothing(sb: Sandbox, api: k8s.ApiClient,
                                          tmp_path: Path) -> None:
    core = k8s.CoreV1Api(api)
    core.patch_namespaced_service(NAME, NS, {"spec": {"selector": {"app": "nothing-here"}}})
    try:
        result = run_suite(sb.path, CHECKS, tmp=tmp_path)
    finally:
        core.patch_namespaced_service(NAME, NS, {"spec": {"selector": {"app": NAME}}})
    got = rollback_failures(result)
    assert list(got) == ["test_stable_selector_has_running_pods"], result.output
    f = got["test_stable_selector_has_running_pods"]
    assert f["severity"] == "P1"
    assert f["message"].startswith(
        f"the stable selector app=nothing-here,version=stable (service {NAME} in namespace "
        f"{NS} at http://127.0.0.1:")
    assert f["message"].endswith(
        "spec.selector app=nothing-here plus playbook 4.3's version=stable) matches no Running "
        "and Ready pod - routing to stable would send traffic nowhere; fix the Service's "
        "selector or the pods' labels")


@pytest.mark.sandbox
def test_dry_run_refused(sb: Sandbox, tmp_path: Path) -> None:
    """A read-only identity: the reads work, the rollback's dry run is refused (403)."""
    viewer = variant(sb, tmp_path, kubernetes={"context": "sandbox-viewer"})
    result = run_suite(viewer, CHECKS, tmp=tmp_path)
    got = rollback_failures(result)
    assert list(got) == ["test_rollback_accepted_by_dry_run"], result.output
    f = got["test_rollback_accepted_by_dry_run"]
    assert f["severity"] == "P1"
    assert f["message"].startswith(
        f"the rollback of Argo rollout {NAME} in namespace {NS} at http://127.0.0.1:")
    assert "to revision 1 (registry.sandbox.local/security-dashboard-backend:1.4.1) was " \
           "refused by the server-side dry run (PATCH dryRun=All): " in f["message"]
    assert ('forbids the suite to patch Argo rollout security-dashboard-backend in namespace '
            'security-dashboard (rollback, dryRun=All) (403 Forbidden: ') in f["message"]
    assert f["message"].endswith("- grant its identity patch access to it (RBAC)")


@pytest.mark.sandbox
@pytest.mark.parametrize("broken", ["unreachable", "bad token"])
def test_kubernetes_api_unusable(sb: Sandbox, tmp_path: Path, broken: str) -> None:
    kubeconfig = yaml.safe_load((sb.dir / "kubeconfig").read_text())
    if broken == "unreachable":
        kubeconfig["clusters"][0]["cluster"]["server"] = "http://127.0.0.1:9"
    else:
        for user in kubeconfig["users"]:
            user["user"]["token"] = "not-a-valid-token"
    dead = tmp_path / "kubeconfig"
    dead.write_text(yaml.safe_dump(kubeconfig))
    result = run_suite(variant(sb, tmp_path, kubernetes={"kubeconfig": str(dead)}), CHECKS,
                       tmp=tmp_path)
    got = rollback_failures(result)
    assert list(got) == list(ROLLBACK_TESTS), result.output
    server = "http://127.0.0.1:9" if broken == "unreachable" else sb.state["components"][
        "kubernetes"]["url"]
    why = ("is unreachable: connection refused - is the cluster up and the server in "
           f"kubeconfig {dead}, context sandbox right?" if broken == "unreachable" else
           "refused the credentials (401 Unauthorized) - check the token in kubeconfig "
           f"{dead}, context sandbox")
    for f in got.values():
        assert f["severity"] == "P1"
        assert f["message"] == (f"cannot tell whether a rollback is possible: Kubernetes API "
                                f"at {server} {why}")


@pytest.mark.sandbox
def test_history_limit_zero_then_no_previous_revision(sb: Sandbox, api: k8s.ApiClient,
                                                      tmp_path: Path) -> None:
    custom = k8s.CustomObjectsApi(api)
    custom.patch_namespaced_custom_object(*ARGO, NS, "rollouts", NAME,
                                          {"spec": {"revisionHistoryLimit": 0}})
    result = run_suite(sb.path, CHECKS, tmp=tmp_path / "zero")
    got = rollback_failures(result)
    assert set(got) == {"test_revision_history_kept", "test_previous_revision_exists",
                        "test_rollback_accepted_by_dry_run"}, result.output
    assert got["test_revision_history_kept"]["message"].startswith(
        f"Argo rollout {NAME} in namespace {NS} at http://127.0.0.1:")
    assert got["test_revision_history_kept"]["message"].endswith(
        " has spec.revisionHistoryLimit 0 - old ReplicaSets are deleted, so the emergency "
        "rollback (playbook 4.2) has nothing to go back to; set it to 10 (the default)")
    assert all(f["severity"] == "P1" for f in got.values())
    assert result.verdict["verdict"] == "P1"

    # The limit back to 10 does not bring the deleted ReplicaSet back: still no target.
    custom.patch_namespaced_custom_object(*ARGO, NS, "rollouts", NAME,
                                          {"spec": {"revisionHistoryLimit": 10}})
    result = run_suite(sb.path, CHECKS, tmp=tmp_path / "ten")
    got = rollback_failures(result)
    assert set(got) == {"test_previous_revision_exists",
                        "test_rollback_accepted_by_dry_run"}, result.output
    assert got["test_previous_revision_exists"]["message"].endswith(
        " has no previous revision to roll back to (current revision 2, image "
        "registry.sandbox.local/security-dashboard-backend:1.4.2; ReplicaSets kept: revision 2 "
        "registry.sandbox.local/security-dashboard-backend:1.4.2) - `rollout undo` would "
        "fail; a rollback needs a redeploy of the last good image")
    assert got["test_rollback_accepted_by_dry_run"]["message"].startswith(
        "no rollback to try on Argo rollout ")


# --- recent deploys: the check through a pytest run, the probe's bad inputs directly ---------

GH_CHECK = f"{CHECKS}::test_no_failed_deploy_in_the_last_hour"


def gh_profile(tmp: Path, url: str) -> Path:
    """The sandbox profile plus a github section (no sandbox needed for this check)."""
    from playbook.sandbox.launch import write_sandbox_profile

    path = write_sandbox_profile(tmp, github=github_section(url))
    return path


@pytest.mark.sandbox
def test_failed_deploy_in_the_last_hour_is_p2(tmp_path: Path) -> None:
    runs = [run(42, "failure", 20, sha="badc0ffee1234"), run(41, "success", 180)]
    with fake_github(runs) as gh:
        path = gh_profile(tmp_path, gh.url)
        result = run_suite(path, GH_CHECK, tmp=tmp_path, env={"GITHUB_TOKEN": TOKEN})
        assert gh.requests[0]["headers"]["Authorization"] == f"Bearer {TOKEN}"
        assert "per_page=10" in gh.requests[0]["path"]
    f = result.failure("test_no_failed_deploy_in_the_last_hour")
    assert f is not None, result.output
    assert f["severity"] == "P2"
    assert f["message"].startswith(
        f"the production deploy workflow {WORKFLOW} of {REPO} failed in the last 60 min: run "
        "#42 failure at ")
    assert f["message"].endswith(
        f"(main@badc0ff, https://github.com/{REPO}/actions/runs/9042) - a half-applied deploy;"
        " check whether it explains the incident and roll back if so")
    assert TOKEN not in result.output


@pytest.mark.sandbox
def test_old_failure_passes_and_runs_are_attached(tmp_path: Path) -> None:
    runs = [run(43, "success", 5), run(42, "failure", 90)]
    with fake_github(runs) as gh:
        path = gh_profile(tmp_path, gh.url)
        result = run_suite(path, GH_CHECK, tmp=tmp_path, env={"GITHUB_TOKEN": TOKEN})
    assert result.returncode == 0, result.output
    attached = [json.loads(p.read_text()) for p in result.allure.glob("*-attachment.json")]
    assert [[r["run_number"] for r in a] for a in attached if isinstance(a, list)] == [[43, 42]]


@pytest.mark.sandbox
def test_no_token_skips_with_reason(tmp_path: Path) -> None:
    with fake_github([]) as gh:
        path = gh_profile(tmp_path, gh.url)
        result = run_suite(path, GH_CHECK, tmp=tmp_path, extra=["-rs"],
                           env={"GITHUB_TOKEN": ""})
        assert gh.requests == []
    assert result.returncode == 0
    assert "github.token is empty (set GITHUB_TOKEN): recent deploys not read" in result.output


def gh_config(url: str, token: str = TOKEN) -> config.Github:
    return config.Github(repo=REPO, api_url=url, token=token, timeout=1.0)


def runs_of(section: config.Github) -> DeploysObservation:
    with github_client(section) as client:
        return recent_runs(section, client)


@pytest.mark.unit
def test_bad_credentials(tmp_path: Path) -> None:
    with fake_github([run(1, "success", 1)]) as gh:
        obs = runs_of(gh_config(gh.url, "ghp_wrong_token_value"))
    assert obs.error is not None and obs.runs == []
    assert obs.error.endswith("/runs: 401 Unauthorized (Bad credentials) - the token in "
                              "GITHUB_TOKEN is wrong or expired")
    assert "ghp_wrong_token_value" not in obs.error


@pytest.mark.unit
def test_rate_limited() -> None:
    with fake_github([run(1, "success", 1)]) as gh:
        gh.mode = "ratelimit"
        obs = runs_of(gh_config(gh.url))
    assert obs.error is not None
    assert ": 403: the API rate limit is used up (API rate limit exceeded for user ID 1.); it " \
           "resets at " in obs.error
    assert obs.error.endswith("Z - use a token with its own quota or query less often")


@pytest.mark.unit
def test_malformed_answer() -> None:
    with fake_github([]) as gh:
        gh.mode = "html"
        obs = runs_of(gh_config(gh.url))
    assert obs.error is not None and obs.error.endswith(
        "/runs: expected the API's JSON with `workflow_runs`, got: <html>proxy login</html>")


@pytest.mark.unit
def test_unreachable_and_wrong_repo() -> None:
    obs = runs_of(gh_config("http://127.0.0.1:9"))
    assert obs.error == (f"GET http://127.0.0.1:9/repos/{REPO}/actions/workflows/{WORKFLOW}/runs"
                         ": unreachable: ConnectError: [Errno 111] Connection refused")
    with fake_github([]) as gh:
        obs = runs_of(config.Github(repo="someone/else", api_url=gh.url, token=TOKEN))
    assert obs.error is not None and obs.error.endswith(
        "404 Not Found (Not Found) - check github.repo (someone/else) and github.workflow "
        f"({WORKFLOW}), and that the token can see the repo")
