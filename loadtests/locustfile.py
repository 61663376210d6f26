"""Synthetic user journeys of the Security Dashboard (replaces the playbook's k6 script).

Two kinds of users, modelled on who really uses the dashboard:
- OnCallEngineer: keeps /api/health and /api/ready open in a loop, as the on-call does during
  an incident (playbook 1.2 and 6.2);
- Viewer: opens the status page (/api/status) and browses the read endpoints.

Every request is named by its endpoint and checked on status AND body: a 200 whose body is
wrong is a failed request (response.failure) and a failed check. Checks are also counted per
endpoint, like k6's `checks` metric, so a "check pass rate" exists; in distributed mode the
workers send their counts to the master with their stats.

The users are `LoadUser`s (playbook/loadclient.py, its wire playbook/loadwire.py): the
playbook's HTTP/1.1 client, at k6's CPU cost per request (bench/RESULTS.md), or Locust's
FastHttpSession with the profile's `load.client: fasthttp`.

The ramp is `Ramp`, a LoadTestShape that follows the load plan (playbook/loadplan.py), so
`playbook load`, a plain `locust -f` and the master in deploy/ run the same stages. Where the
plan comes from:
- PLAYBOOK_LOAD_PLAN=<file.json>: a plan file (`playbook load` writes one into its run's
  report directory; deploy/'s ConfigMap ships one, made by deploy/make_configmap.py);
- otherwise the profile PLAYBOOK_ENV (a bundled name or a path; default `local`) and its load
  profile PLAYBOOK_LOAD_PROFILE (default `smoke`), read with the playbook package.
The plan also gives the client's settings (client, timeout, TLS verification) and the default
host (--host wins). With a shape, Locust ignores -u, -r and --run-time.

Standalone:  PLAYBOOK_ENV=staging PLAYBOOK_LOAD_PROFILE=gate locust -f loadtests/locustfile.py
(web UI on :8089; --headless to start at once). The runner (`playbook load`) loads this file as
a library and reads from it: ENDPOINTS (the request names a threshold may select), the shape,
and `environment.checks` (endpoint -> [passed, failed]).

Only `locust` and the client's modules are imported here: deploy/'s ConfigMap ships this file
with playbook/loadclient.py, loadwire.py and loadplan.py beside it.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from locust import between, constant_pacing, events, task

try:
    from playbook.loadclient import LoadUser
    from playbook.loadplan import PlanError, PlanShape, configure, current_plan
except ImportError:  # deploy/: the stock image has no playbook package; the ConfigMap ships it
    from loadclient import LoadUser  # type: ignore[no-redef]
    from loadplan import PlanError, PlanShape, configure, current_plan  # type: ignore[no-redef]

HEALTH, READY, STATUS = "/api/health", "/api/ready", "/api/status"
READ_ENDPOINTS = ("/api/vulnerabilities", "/api/assets", "/api/alerts")
ENDPOINTS = (HEALTH, READY, STATUS, *READ_ENDPOINTS)


# --- checks (k6's `checks`: a rate of passed assertions) --------------------------------------


def _checks(environment: Any) -> dict[str, list[int]]:
    if not hasattr(environment, "checks"):
        environment.checks = {}
    return environment.checks


@events.init.add_listener
def _init(environment: Any, **_: Any) -> None:
    _checks(environment)
    try:  # the plan's client settings (and default host) for every user class
        configure(environment.user_classes, current_plan())
    except PlanError as e:
        logging.getLogger("locustfile").error("%s", e)
        sys.exit(2)


@events.report_to_master.add_listener
def _report_checks(client_id: str, data: dict[str, Any]) -> None:
    # Workers send what they counted since the last report, then start again from zero
    # (the same delta scheme Locust uses for its own stats).
    env = _worker_env.get("env")
    if env is not None:
        data["checks"] = env.checks
        env.checks = {}


@events.worker_report.add_listener
def _merge_checks(client_id: str, data: dict[str, Any]) -> None:
    env = _worker_env.get("env")
    if env is None:
        return
    totals = _checks(env)
    for name, (passed, failed) in data.get("checks", {}).items():
        counts = totals.setdefault(name, [0, 0])
        counts[0] += passed
        counts[1] += failed


_worker_env: dict[str, Any] = {}


@events.init.add_listener
def _remember_env(environment: Any, **_: Any) -> None:
    _worker_env["env"] = environment


def _body_problem(name: str, body: Any) -> str | None:
    """What is wrong with an endpoint's JSON body, or None. Cheap: runs on every response."""
    if not isinstance(body, dict):
        return "body is not a JSON object"
    if name in (HEALTH, READY):
        return None if body.get("status") == "ok" else f"status is {body.get('status')!r}"
    if name == STATUS:
        return None if body.get("status") == "operational" else \
            f"status is {body.get('status')!r}, expected 'operational'"
    items = body.get("items")
    if not isinstance(items, list):
        return "no `items` list in the body"
    if body.get("count") != len(items):
        return f"count {body.get('count')!r} does not match {len(items)} items"
    return None


class DashboardUser(LoadUser):
    abstract = True

    def visit(self, path: str) -> None:
        """GET `path`, named by endpoint; two checks: status is 200, body is right."""
        with self.client.get(path, name=path, catch_response=True) as resp:
            ok_status = resp.status_code == 200
            problem = None
            if ok_status:
                try:
                    problem = _body_problem(path, resp.json())
                except ValueError:
                    problem = "body is not JSON"
            elif resp.status_code:
                problem = f"HTTP {resp.status_code}"
            else:  # no HTTP answer: connection refused, timeout...
                problem = f"no answer: {resp.error}"
            # Look the counters up after the response: a worker may have sent and replaced
            # them while this request was in flight.
            checks = _checks(self.environment)
            counts = checks.get(path)
            if counts is None:
                counts = checks[path] = [0, 0]
            # status check + body check (the body check fails when the status already did)
            counts[0] += ok_status + (problem is None)
            counts[1] += (not ok_status) + (problem is not None)
            if problem is not None:
                resp.failure(f"{path}: {problem}")
            else:
                resp.success()


class OnCallEngineer(DashboardUser):
    """Polls health and readiness about once a second, as an engineer watching a fix does."""

    weight = 1
    wait_time = constant_pacing(1.0)

    @task
    def poll(self) -> None:
        self.visit(HEALTH)
        self.visit(READY)


class Viewer(DashboardUser):
    """Opens the status page, then browses the read endpoints with a short think time."""

    weight = 2
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        self.visit(STATUS)

    @task(3)
    def browse(self) -> None:
        for path in READ_ENDPOINTS:
            self.visit(path)

    @task(1)
    def status_page(self) -> None:
        self.visit(STATUS)


class Ramp(PlanShape):
    """The load plan's stages (see the docstring): users and spawn rate for each second."""


@events.quit.add_listener
def _print_checks(exit_code: int, **_: Any) -> None:
    # Standalone runs (`locust -f`) have no runner summary: print the check pass rate.
    env = _worker_env.get("env")
    if env is None or not getattr(env, "checks", None) or getattr(env, "playbook_runner", False):
        return
    if type(env.runner).__name__ == "WorkerRunner":  # its counts went to the master
        return
    passed = sum(c[0] for c in env.checks.values())
    total = passed + sum(c[1] for c in env.checks.values())
    if total:
        print(f"checks: {passed / total:.2%} passed ({passed}/{total})")
