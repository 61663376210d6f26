"""Security faults for game days: a bounded credential-stuffing burst against the login endpoint.

The attacker is a second loopback address (127.0.0.66 by default: Linux routes all of
127.0.0.0/8 to `lo`, so a client socket can be bound to it), so that the isolation can refuse
the attack while normal users (127.0.0.1) still get in. Loopback only: the fault refuses a
service or a source address that is not on loopback. Bounded: at most `max_attempts` logins in
at most `max_seconds`, paced at `rate` per second; it stops by itself.

inject() starts the burst in a background thread; revert() stops it and removes the drill's
emergency NetworkPolicy (`isolation_policy`, the mitigation's), so that after a SIGKILL
`playbook gameday revert` leaves neither behind.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx

from playbook.config import loopback_host as is_loopback_host
from playbook.control.context import Context
from playbook.faults.base import Fault, FaultRefused
from playbook.probes.http import http_client

ATTACKER = "127.0.0.66"
# The attack's own User-Agent: not the suite's, which the security checks leave out of the
# log-burst count (the attack must be counted).
DRILL_USER_AGENT = "security-dashboard-playbook-drill"
# Leaked-list user names: some exist (the attack's target), most do not.
USERS = ["admin", "analyst", "root", "administrator", "support", "j.smith", "ops", "test"]


def outcome(status: int | None) -> str:
    """How a login attempt ended: rejected (401: reached the login), refused (403 or no
    connection: isolated), success, throttled (429), error (other)."""
    if status is None or status == 403:
        return "refused"
    return {401: "rejected", 200: "success", 429: "throttled"}.get(status, "error")


def login(client: httpx.Client, url: str, user: str, password: str) -> tuple[int | None, str]:
    """One login attempt: (status or None, detail). Never raises for network trouble: a
    connection refused, reset or timed out is what an isolated client sees on a real CNI."""
    try:
        resp = client.post(url, json={"username": user, "password": password})
    except httpx.HTTPError as e:
        return None, f"{type(e).__name__}: {e}"
    return resp.status_code, resp.text[:200]


def client_from(source: str | None, timeout: float) -> httpx.Client:
    """An HTTP client whose connections leave from `source` (None: the default address)."""
    return http_client(timeout, user_agent=DRILL_USER_AGENT, local_address=source)


class Burst:
    """The attack: one thread, sequential attempts paced at `rate`, bounded in count and time."""

    def __init__(self, url: str, source: str, max_attempts: int, max_seconds: float,
                 rate: float, users: list[str], timeout: float) -> None:
        self.url, self.source = url, source
        self.max_attempts, self.max_seconds, self.rate = max_attempts, max_seconds, rate
        self.users, self.timeout = users, timeout
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.attempts: list[tuple[float, str]] = []  # (time.time(), outcome)
        self.started = 0.0
        self.ended: float | None = None
        self.thread = threading.Thread(target=self._run, daemon=True, name="credential-stuffing")

    def start(self) -> None:
        self.started = time.time()
        self.thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        pause = 1.0 / self.rate if self.rate > 0 else 0.0
        with client_from(self.source, self.timeout) as client:
            for _ in range(self.max_attempts):
                if self.stop.is_set() or time.monotonic() >= deadline:
                    break
                began = time.monotonic()
                status, _ = login(client, self.url, random.choice(self.users),
                                  secrets.token_urlsafe(9))
                with self.lock:
                    self.attempts.append((time.time(), outcome(status)))
                rest = pause - (time.monotonic() - began)
                if rest > 0 and self.stop.wait(min(rest, max(0.0, deadline - time.monotonic()))):
                    break
        self.ended = time.time()

    def halt(self, timeout: float = 5.0) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout)

    @property
    def running(self) -> bool:
        return self.thread.is_alive()

    def outcomes(self, since: float = 0.0) -> Counter[str]:
        with self.lock:
            return Counter(o for t, o in self.attempts if t >= since)

    def summary(self) -> dict[str, Any]:
        with self.lock:
            total = len(self.attempts)
        return {"source": self.source, "url": self.url, "attempts": total,
                "outcomes": dict(self.outcomes()), "started": self.started,
                "ended": self.ended, "running": self.running}


@dataclass
class CredentialStuffing(Fault):
    """Failed logins from one source address, fast enough to be an attack."""

    kind: ClassVar[str] = "credential-stuffing"
    source: str = ATTACKER
    max_attempts: int = 300
    max_seconds: float = 20.0
    rate: float = 15.0  # attempts per second
    isolation_policy: str = "emergency-isolate"  # the mitigation's policy, removed on revert
    users: list[str] = field(default_factory=lambda: list(USERS))

    @property
    def description(self) -> str:
        return (f"credential-stuffing burst from {self.source}: at most {self.max_attempts} "
                f"failed logins in {self.max_seconds:g} s at {self.rate:g}/s")

    @property
    def burst(self) -> Burst | None:
        return getattr(self, "_burst", None)

    def login_url(self, ctx: Context) -> str:
        sec = ctx.profile.security
        return ctx.profile.service.url(sec.login_endpoint if sec else "/api/auth/login")

    def check_allowed(self, ctx: Context) -> None:
        host = urlsplit(ctx.profile.service.base_url).hostname or ""
        if not is_loopback_host(host):
            raise FaultRefused(f"{self.kind} runs against loopback only; "
                               f"{ctx.profile.service.base_url} is not (a real attack on a "
                               "shared environment needs its owner's written approval and a "
                               "different tool)")
        if not is_loopback_host(self.source):
            raise FaultRefused(f"{self.kind}: source {self.source} is not a loopback address")
        if self.max_attempts > 1000 or self.max_seconds > 60:
            raise FaultRefused(f"{self.kind}: bounded to 1000 attempts and 60 s, asked for "
                               f"{self.max_attempts} in {self.max_seconds:g} s")

    def inject(self, ctx: Context) -> None:
        self.check_allowed(ctx)  # also when rebuilt from a journal
        burst = Burst(self.login_url(ctx), self.source, self.max_attempts, self.max_seconds,
                      self.rate, self.users, min(ctx.profile.service.timeout, 3.0))
        self._burst = burst
        burst.start()

    def revert(self, ctx: Context) -> None:
        if self.burst is not None:
            self.burst.halt()
        if ctx.profile.kubernetes is not None and self.isolation_policy:
            from playbook.control import kube as control  # the kubernetes client: only here

            control.delete_network_policy(ctx.kube, self.isolation_policy)
