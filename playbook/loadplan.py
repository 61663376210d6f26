"""The load plan: the stages a run follows and the client's settings, as JSON, and the
LoadTestShape that runs them.

`playbook load` writes the plan of its --profile for its run (plan.json, and PLAYBOOK_LOAD_PLAN
for its workers); deploy/ ships one in its ConfigMap; a plain `locust -f` reads the profile named
by PLAYBOOK_ENV (default local) and its load profile PLAYBOOK_LOAD_PROFILE (default smoke).
`PlanShape` follows it (the locustfile's `Ramp`); `configure()` gives its client settings to the
user classes. Shipped beside the locustfile by deploy/, like playbook/loadclient.py.
"""

from __future__ import annotations

import json as _json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from locust import User
from locust.shape import LoadTestShape

try:
    from playbook.loadclient import CLIENTS, LoadUser
except ImportError:  # deploy/: beside the locustfile, without the playbook package
    from loadclient import CLIENTS, LoadUser  # type: ignore[no-redef]


class PlanError(Exception):
    """No usable load plan. One sentence."""


@dataclass(frozen=True)
class Stage:
    duration: float  # seconds
    users: int  # reached at this rate, then held until the stage ends
    spawn_rate: float  # users per second


@dataclass(frozen=True)
class Plan:
    """What a run does: the stages (a profile's `users`/`run_time` is one stage) and the
    client's settings. The JSON of `asdict()` is what PLAYBOOK_LOAD_PLAN names."""

    stages: tuple[Stage, ...]
    source: str = ""  # "<profile file> load.profiles.<name>"
    host: str | None = None
    client: str = "playbook"
    timeout: float = 5.0
    tls_verify: bool = True
    ca_file: str | None = None

    @property
    def duration(self) -> float:
        return sum(s.duration for s in self.stages)

    def at(self, elapsed: float) -> tuple[int, float] | None:
        """(users, spawn rate) at `elapsed` seconds into the run; None when it is over."""
        end = 0.0
        for s in self.stages:
            end += s.duration
            if elapsed < end:
                return s.users, s.spawn_rate
        return None

    def to_json(self) -> str:
        return _json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> Plan:
        try:
            raw = _json.loads(text)
            stages = tuple(Stage(float(s["duration"]), int(s["users"]), float(s["spawn_rate"]))
                           for s in raw["stages"])
            plan = cls(stages, str(raw.get("source", where)), raw.get("host"),
                       str(raw.get("client", "playbook")), float(raw.get("timeout", 5.0)),
                       bool(raw.get("tls_verify", True)), raw.get("ca_file"))
        except (ValueError, KeyError, TypeError) as e:
            raise PlanError(f"{where}: not a load plan ({type(e).__name__}: {e})") from None
        if not plan.stages or plan.duration <= 0 or any(
                s.duration < 0 or s.users < 0 or s.spawn_rate <= 0 for s in plan.stages):
            raise PlanError(f"{where}: the plan's stages must last > 0 s with users >= 0 and "
                            "spawn rates > 0")
        if plan.client not in CLIENTS:
            raise PlanError(f"{where}: client {plan.client!r} is not one of "
                            f"{', '.join(CLIENTS)}")
        return plan

    @classmethod
    def from_profile(cls, profile: Any, name: str) -> Plan:
        """The plan of `profile.load.profiles[name]` (a playbook.config.Profile)."""
        section = profile.load
        lp = section.profiles[name] if section is not None else None
        if lp is None:
            raise PlanError(f"{profile.source}: no load profile {name!r}")
        if lp.stages:  # k6's stages: a linear ramp from the previous stage's users
            stages, current = [], 0
            for st in lp.stages:
                rate = (abs(st.users - current) / st.duration if st.duration > 0
                        else float(st.users or 1))
                stages.append(Stage(st.duration, st.users, round(max(rate, 0.01), 4)))
                current = st.users
        else:
            stages = [Stage(lp.run_time, lp.users, lp.spawn_rate)]
        return cls(tuple(stages), f"{profile.source} load.profiles.{name}",
                   profile.service.base_url, section.client, profile.service.timeout,
                   section.tls_verify, section.ca_file or None)


PLAN_VARIABLE = "PLAYBOOK_LOAD_PLAN"
_plans: dict[tuple[str, ...], Plan] = {}


def current_plan(environ: dict[str, str] | None = None) -> Plan:
    """The plan of this process: the JSON file named by PLAYBOOK_LOAD_PLAN; else the
    profile PLAYBOOK_ENV (default: local) and its load profile PLAYBOOK_LOAD_PROFILE (default:
    smoke), which needs the playbook package."""
    env = os.environ if environ is None else environ
    path = env.get(PLAN_VARIABLE)
    key = (path or "", env.get("PLAYBOOK_ENV", ""), env.get("PLAYBOOK_LOAD_PROFILE", ""))
    if key in _plans:
        return _plans[key]
    if path:
        try:
            text = open(path, encoding="utf-8").read()  # noqa: SIM115 - read at once
        except OSError as e:
            raise PlanError(f"{PLAN_VARIABLE}={path}: cannot read the load plan: "
                            f"{e.strerror}") from None
        plan = Plan.from_json(text, path)
    else:
        name = env.get("PLAYBOOK_LOAD_PROFILE") or "smoke"
        try:
            from playbook import config
        except ImportError:
            raise PlanError(f"no load plan: set {PLAN_VARIABLE} to a plan file (deploy/ ships "
                            "one), or install the playbook package to read PLAYBOOK_ENV's "
                            "profile") from None
        try:
            profile = config.load(env.get("PLAYBOOK_ENV") or None, env)
        except config.ProfileError as e:
            raise PlanError(str(e)) from None
        if profile.load is None or name not in profile.load.profiles:
            known = ", ".join(profile.load.profiles) if profile.load else "none"
            raise PlanError(f"{profile.source}: no load profile {name!r} for "
                            f"PLAYBOOK_LOAD_PROFILE (known: {known})")
        plan = Plan.from_profile(profile, name)
    _plans[key] = plan
    return plan


def configure(user_classes: Iterable[type[User]], plan: Plan) -> None:
    """Give the plan's client settings to every LoadUser class (and its host, as the default
    that --host or the environment's host overrides)."""
    for cls in user_classes:
        if not issubclass(cls, LoadUser):
            continue
        cls.http_client = plan.client
        cls.timeout = plan.timeout
        cls.insecure = not plan.tls_verify
        cls.ca_file = plan.ca_file
        if cls.host is None and plan.host:
            cls.host = plan.host


class PlanShape(LoadTestShape):
    """The plan's stages as a LoadTestShape; a locustfile subclasses it (`class Ramp(PlanShape):
    pass`) so that `locust -f`, its master in deploy/ and `playbook load` run the same ramp."""

    abstract = True
    plan: Plan | None = None  # None: current_plan() at the first tick

    def tick(self) -> tuple[int, float] | None:
        if self.plan is None:
            self.plan = current_plan()
        return self.plan.at(self.get_run_time())
