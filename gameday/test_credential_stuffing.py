"""Drill: credential stuffing (playbook "Security Incidents (P0)"). A bounded burst of failed
logins from one source address (127.0.0.66, loopback only) must fire AuthFailureSpike (P0) and
page; the runbook's isolation - the emergency NetworkPolicy refusing that source - must then
refuse the attack while a normal user (from the usual address) still logs in. The fault's
revert stops the burst and removes the policy.

The mitigation verifies its own effect: an attempt from the attacking address must be refused
(403 from the sandbox's front, or no connection where a real CNI drops the packets) within
max(2 s, 120 s / time_scale) of the policy, and the drill's account must still get a token;
otherwise the drill fails at its mitigation stage, saying which.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

import pytest

from playbook import drill
from playbook.actions.isolate import apply_emergency_policy
from playbook.config import Profile
from playbook.control.context import Context
from playbook.faults.security import CredentialStuffing, client_from, login, outcome
from playbook.plugin import attach_json

pytestmark = [pytest.mark.severity("P0"), pytest.mark.incident_type("security"),
              pytest.mark.requires("security")]
ALERT = "AuthFailureSpike"


class NotIsolated(Exception):
    """The isolation did not take: the attack still gets through, or normal users do not."""


def _login_url(profile: Profile) -> str:
    assert profile.security is not None
    return profile.service.url(profile.security.login_endpoint)


def attack_probe(profile: Profile, source: str) -> tuple[bool, str]:
    """One login attempt from the attacking address: (refused?, what was seen)."""
    with client_from(source, min(profile.service.timeout, 3.0)) as client:
        status, detail = login(client, _login_url(profile), "admin", secrets.token_urlsafe(9))
    seen = f"HTTP {status}: {' '.join(detail.split())[:100]}" if status else detail
    return outcome(status) == "refused", seen


def normal_user_problem(profile: Profile) -> str | None:
    """The drill's account logs in from the usual address: None, else why not."""
    sec = profile.security
    assert sec is not None
    url = _login_url(profile)
    with client_from(None, min(profile.service.timeout, 3.0)) as client:
        status, detail = login(client, url, sec.drill_username, sec.drill_password)
    if status == 200 and '"token"' in detail:
        return None
    seen = f"HTTP {status}: {' '.join(detail.split())[:100]}" if status else detail
    return f"{sec.drill_username} cannot log in at POST {url} ({seen})"


def mitigation(profile: Profile, fault: CredentialStuffing, within: float,
               isolate: bool = True) -> Callable[[Context], str]:
    """The runbook action (isolate the attacking source) and the check that it worked.
    `isolate=False` applies nothing: what a drill without the isolation sees."""

    def mitigate(ctx: Context) -> str:
        if isolate:
            did = apply_emergency_policy(ctx.kube, [f"{fault.source}/32"],
                                         fault.isolation_policy)
        else:
            did = "no isolation applied"
        applied = time.time()
        deadline = time.monotonic() + within
        while True:
            refused, seen = attack_probe(profile, fault.source)
            if refused:
                break
            if time.monotonic() >= deadline:
                raise NotIsolated(
                    f"login attempts from {fault.source} still reach POST {_login_url(profile)} "
                    f"({seen}) {within:g} s after the mitigation ({did}) - the attacking source "
                    "is not isolated")
            time.sleep(0.2)
        refused_at = time.time()
        problem = normal_user_problem(profile)
        if problem:
            raise NotIsolated(f"the isolation locks out normal users too: {problem} ({did})")
        burst = fault.burst
        if burst is not None:
            # The attack itself, not only our probe: its next attempts are refused too.
            while burst.running and burst.outcomes(since=refused_at)["refused"] < 3 and \
                    time.monotonic() < deadline + within:
                time.sleep(0.1)
            late = {k: n for k, n in burst.outcomes(since=refused_at + 0.5).items()
                    if k != "refused"}
            if late:
                raise NotIsolated(f"attempts of the burst from {fault.source} still got "
                                  f"through after the isolation took: {late} ({did})")
        after = dict(burst.outcomes(since=applied)) if burst else {}
        user = profile.security.drill_username if profile.security else "the drill's account"
        return (f"{did}; the attack from {fault.source} is refused ({seen}; the burst's "
                f"attempts since: {after}) and {user} still logs in")

    return mitigate


def build(profile: Profile, timing: drill.Timing, isolate: bool = True) -> drill.Drill:
    """The drill (tests/ build variants of it: no alert rule, no isolation)."""
    assert profile.security is not None
    fault = CredentialStuffing(isolation_policy=profile.security.isolation_policy)
    within = max(2.0, timing(120))
    return timing.drill(
        "credential stuffing", fault,
        timing.expect("P0", alert=ALERT, receiver="pagerduty"),
        mitigate=mitigation(profile, fault, within, isolate))


def steady_state(profile: Profile, watchers: drill.Watchers, timing: drill.Timing) -> None:
    """Beyond the service's health: the drill's account logs in, and AuthFailureSpike is not
    active (a real attack, or an earlier burst still in its window) - waited for a while."""
    sec = profile.security
    if sec is None or not sec.drill_username or not sec.drill_password:
        pytest.skip(f"profile {profile.name} has no security.drill_username/drill_password: "
                    "the drill cannot show that normal users still get in")
    # Waited for: an earlier drill's recovery or burst may still be settling.
    deadline = time.monotonic() + max(5.0, timing(900))
    while True:
        state = watchers.alert_state(ALERT)[0]
        problem = normal_user_problem(profile) if state == "inactive" else (
            f"{ALERT} is {state} (an attack in progress, or an earlier burst)")
        if problem is None:
            return
        if time.monotonic() >= deadline:
            pytest.skip(f"steady state does not hold, nothing injected: {problem}")
        time.sleep(0.5)


def test_credential_stuffing(run_drill: Callable[[drill.Drill], drill.Result],
                             timing: drill.Timing, profile: Profile,
                             watchers: drill.Watchers) -> None:
    steady_state(profile, watchers, timing)
    d = build(profile, timing)
    try:
        run_drill(d)
    finally:
        fault = d.fault
        assert isinstance(fault, CredentialStuffing)
        if fault.burst is not None:
            # Evidence: who attacked, how often, and how each attempt ended.
            attach_json("credential-stuffing burst", fault.burst.summary())
