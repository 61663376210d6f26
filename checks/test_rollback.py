"""Playbook 4.2 (Emergency Rollback) and 4.3 (route traffic to stable): can the backend be rolled
back right now, without changing anything? And 1.2/3.3: what did the last deploys do?

Severities:
- no rollback possible - revisionHistoryLimit 0, no previous revision to go back to, the stable
  selector matching no running pod, or the rollback refused by the API server's dry run: P1.
  The emergency rollback is the playbook's main mitigation for a bad deploy; a service that
  cannot be rolled back is not degraded yet, but the next bad deploy becomes a long outage
  instead of a five-minute one - the on-call team must fix this within the P1 response time,
  not at P0 (nothing is down because of it) nor P2 (the exposure is every deploy).
- a run of the production deploy workflow that failed in the last hour: P2 - a half-applied
  deploy is a likely cause of whatever else is red, and limited in impact by itself.
- the GitHub API cannot be read with a configured token (401, rate limit, unreachable): P3 -
  the deploy history is context for the on-call engineer, not a health signal.
An unreachable or refusing Kubernetes API fails the rollback checks at P1 (the cluster is blind).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import httpx
import pytest

from playbook import severity as sev
from playbook.config import Profile
from playbook.plugin import attach_json
from playbook.severity import CheckFailed

needs_kube = pytest.mark.requires("kubernetes")
p1 = pytest.mark.severity("P1")
outage = pytest.mark.incident_type("service outage")


@pytest.fixture(scope="module")
def rollback(kube: Any) -> Any:
    """One observation for the module: the workload, its revisions, the stable selector and
    the dry run (the probe sends nothing but reads and one dryRun=All patch)."""
    from playbook.probes.rollback import observe

    obs = observe(kube)
    attach_json("rollback readiness", dataclasses.asdict(obs))
    return obs


def _fail_on_api_error(obs: Any) -> None:
    if obs.error:
        raise CheckFailed(f"cannot tell whether a rollback is possible: {obs.error}",
                          sev.unobserved("P1"))


@outage
@needs_kube
@p1
def test_revision_history_kept(rollback: Any) -> None:
    """revisionHistoryLimit > 0: old ReplicaSets are kept, so there is something to undo to."""
    _fail_on_api_error(rollback)
    if not rollback.history_limit or rollback.history_limit <= 0:
        raise CheckFailed(
            f"{rollback.workload} has spec.revisionHistoryLimit {rollback.history_limit} - "
            "old ReplicaSets are deleted, so the emergency rollback (playbook 4.2) has nothing "
            "to go back to; set it to 10 (the default)", "P1")


@outage
@needs_kube
@p1
def test_previous_revision_exists(rollback: Any) -> None:
    """A previous stable revision (an older ReplicaSet with another image, or Argo's stableRS
    while a rollout is under way) that `rollout undo` goes back to."""
    _fail_on_api_error(rollback)
    if rollback.target is None:
        seen = ", ".join(f"revision {r.number} {r.image}" for r in rollback.revisions) or "none"
        raise CheckFailed(
            f"{rollback.workload} has no previous revision to roll back to (current revision "
            f"{rollback.current_revision}, image {rollback.current_image or '?'}; ReplicaSets "
            f"kept: {seen}) - `rollout undo` would fail; a rollback needs a redeploy of the "
            "last good image", "P1")


@outage
@needs_kube
@p1
def test_stable_selector_has_running_pods(rollback: Any) -> None:
    """Playbook 4.3: the Service's selector with version=stable matches Running, Ready pods."""
    _fail_on_api_error(rollback)
    from playbook.probes.rollback import selector_text

    if rollback.selector_error:
        raise CheckFailed(f"cannot resolve the stable selector: {rollback.selector_error}",
                          sev.unobserved("P1"))
    if not rollback.service_selector:
        raise CheckFailed(f"{rollback.service_where} has no spec.selector - routing traffic "
                          "to stable (playbook 4.3) cannot select any pod", "P1")
    if not rollback.selected_pods:
        raise CheckFailed(
            f"the stable selector {selector_text(rollback.selector)} ({rollback.service_where}"
            f" spec.selector {selector_text(rollback.service_selector)} plus playbook 4.3's "
            "version=stable) matches no Running and Ready pod - routing to stable would send "
            "traffic nowhere; fix the Service's selector or the pods' labels", "P1")


@outage
@needs_kube
@p1
def test_rollback_accepted_by_dry_run(rollback: Any) -> None:
    """The rollback itself - the workload's pod template patched back to the target revision's -
    is accepted by the API server with dryRun=All (nothing is changed)."""
    _fail_on_api_error(rollback)
    if rollback.target is None:
        raise CheckFailed(f"no rollback to try on {rollback.workload}: there is no previous "
                          "revision (see test_previous_revision_exists)", "P1")
    if rollback.dry_run != "accepted":
        t = rollback.target
        raise CheckFailed(
            f"the rollback of {rollback.workload} to revision {t.number} ({t.image}) was "
            f"refused by the server-side dry run (PATCH dryRun=All): {rollback.dry_run_error}",
            "P1")


# --- recent deploys (GitHub) -----------------------------------------------------------------


@pytest.mark.incident_type("third-party")
@pytest.mark.playbook_section("3.3 Recent Changes Analysis")
@pytest.mark.requires("github")
@pytest.mark.severity("P2")
def test_no_failed_deploy_in_the_last_hour(profile: Profile, github: httpx.Client) -> None:
    """`gh run list --workflow=security-dashboard-production-deploy.yml`: the last runs are
    attached as context; one that failed within github.failed_window_minutes is a finding."""
    gh = profile.github
    assert gh is not None
    if not gh.token:
        pytest.skip("github.token is empty (set GITHUB_TOKEN): recent deploys not read")
    from playbook.probes.deploys import recent_runs

    obs = recent_runs(gh, github)
    attach_json("recent deploys", [dataclasses.asdict(r) for r in obs.runs]
                if not obs.error else {"where": obs.where, "error": obs.error})
    if obs.error:
        raise CheckFailed(f"recent deploys unknown: {obs.error}", "P3")
    now = dt.datetime.now(dt.UTC)
    failed = obs.failed_since(now - dt.timedelta(minutes=gh.failed_window_minutes))
    if failed:
        more = f" (+{len(failed) - 1} more)" if len(failed) > 1 else ""
        raise CheckFailed(
            f"the production deploy workflow {gh.workflow} of {gh.repo} failed in the last "
            f"{gh.failed_window_minutes:g} min: {failed[0].describe()}{more} - a half-applied "
            "deploy; check whether it explains the incident and roll back if so", "P2")
