"""The Locust side of bench/run_bench.py: the journeys' own user on bench/k6_script.js's journey.

GET /api/health with no think time, through `DashboardUser.visit` of loadtests/locustfile.py -
the journeys' code path itself: catch_response, the status check and the body check (parsed as
JSON, like k6's `r.json("status")`), counted as k6-style checks - and its `Ramp` shape. The
client is the profile's `load.client` (bench/profile.yaml: BENCH_CLIENT, playbook or fasthttp).

BENCH_SESSION swaps the playbook client's wire layer for another approach, to compare them on
the same request path (bench/alt_sessions.py): `ghc` (geventhttpclient's HTTPClient and C
parser under LoadSession's API), `httptools` (llhttp over the same gevent sockets; needs
`uv pip install httptools`).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from locust import constant, task

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("journeys", HERE.parent / "loadtests" /
                                               "locustfile.py")
assert _spec and _spec.loader
journeys = importlib.util.module_from_spec(_spec)
sys.modules["journeys"] = journeys
_spec.loader.exec_module(journeys)

HEALTH = journeys.HEALTH
ENDPOINTS = (HEALTH,)
SESSION = os.environ.get("BENCH_SESSION", "")


class HealthPoller(journeys.DashboardUser):
    wait_time = constant(0)

    def on_start(self) -> None:
        if SESSION:
            sys.path.insert(0, str(HERE))
            import alt_sessions

            old: Any = self.client
            self.client = alt_sessions.SESSIONS[SESSION](
                self.host, self.environment.events.request, self, timeout=self.timeout)
            old.close()

    @task
    def health(self) -> None:
        self.visit(HEALTH)


class Ramp(journeys.Ramp):
    pass
