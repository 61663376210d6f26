"""The stand-in Security Dashboard backend: one replica process ("pod") of an ASGI app.

Configured by environment variables set by the sandbox's deployment controller:
DATABASE_URL, REDIS_URL, POD_NAME, APP_VERSION, SANDBOX_CHAOS (a JSON file the sandbox's
control planes write: injected latency/errors, maintenance mode).

Image tags that misbehave, for bad-deploy drills (APP_VERSION is the image tag): a tag ending
in `bad-crash` exits at start (CrashLoopBackOff); `bad-5xx` answers 500 to every request;
`bad-slow` answers every request after BAD_SLOW_SECONDS. Readiness (/api/ready) and /metrics
stay correct for the last two, like a bad build that passes its readiness probe.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
import redis.asyncio as aioredis
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from playbook.sandbox import auth

VERSION = os.environ.get("APP_VERSION", "dev")
POD = os.environ.get("POD_NAME", "local")
DATABASE_URL = os.environ.get("DATABASE_URL", "")
REDIS_URL = os.environ.get("REDIS_URL", "")
CHAOS_FILE = Path(os.environ.get("SANDBOX_CHAOS", "/nonexistent"))
DEPENDENCY_TIMEOUT = 1.0  # seconds; readiness must answer well inside a probe's timeout
BAD_SLOW_SECONDS = 3.0  # above the playbook's 2 s p95 SLO
PROBE_PATHS = frozenset({"/api/ready", "/ready", "/metrics"})


def log(message: str) -> None:
    """One timestamped line on stdout (the pod's log: `kubectl logs --since` reads the stamp)."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    print(f"{stamp} {message}", flush=True)


log(f"pod {POD} version {VERSION} starting")
if VERSION.endswith("bad-crash"):
    log(f"FATAL version {VERSION}: bad build (bad-crash), exiting")
    sys.exit(1)

REQUESTS = Counter("http_requests_total", "HTTP requests", ["method", "handler", "status"])
LATENCY = Histogram(
    "http_request_duration_seconds", "HTTP request latency", ["handler"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 2.5, 3, 5, 10),
)
DB_ACTIVE = Gauge("security_dashboard_db_connections_active", "Database connections in use")
# Refreshed by every readiness probe (every 0.25 s in the sandbox): alerts on a dependency
# outage need no user traffic to fire.
DEPENDENCY_UP = Gauge("security_dashboard_dependency_up",
                      "1 when the last readiness check reached the dependency", ["dependency"])


class Chaos:
    """Faults the control planes asked for, re-read from a file at most every 0.2 s."""

    def __init__(self, path: Path) -> None:
        self.path, self.checked, self.mtime, self.data = path, 0.0, 0.0, {}

    def current(self) -> dict[str, Any]:
        now = time.monotonic()
        if now - self.checked > 0.2:
            self.checked = now
            try:
                mtime = self.path.stat().st_mtime
                if mtime != self.mtime:
                    self.mtime, self.data = mtime, json.loads(self.path.read_text())
            except (OSError, ValueError):
                self.mtime, self.data = 0.0, {}
        return self.data


chaos = Chaos(CHAOS_FILE)
state: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(app: Starlette):
    pool = AsyncConnectionPool(
        DATABASE_URL, min_size=0, max_size=8, timeout=DEPENDENCY_TIMEOUT, open=False,
        kwargs={"connect_timeout": 2, "autocommit": True},
    )
    await pool.open(wait=False)
    state["pool"] = pool
    state["redis"] = aioredis.from_url(
        REDIS_URL, socket_timeout=DEPENDENCY_TIMEOUT, socket_connect_timeout=DEPENDENCY_TIMEOUT)
    yield
    await pool.close()
    await state["redis"].aclose()


async def query(sql: str, *args: Any) -> list[dict[str, Any]]:
    await partitioned("database")
    pool: AsyncConnectionPool = state["pool"]
    async with pool.connection() as conn:
        DB_ACTIVE.set(pool.get_stats().get("pool_size", 0) - pool.get_stats().get(
            "pool_available", 0))
        cur = conn.cursor(row_factory=psycopg.rows.dict_row)
        await cur.execute(sql, args or None)
        return await cur.fetchall()


async def partitioned(dependency: str) -> None:
    """A NetworkChaos partition: packets to the dependency vanish, so connecting times out."""
    if dependency in chaos.current().get("partition", ()):
        # Half the dependency budget: /api/ready still answers (503, naming it) in time.
        await asyncio.sleep(DEPENDENCY_TIMEOUT / 2)
        raise TimeoutError(f"connection to the {dependency} timed out")


async def check_database() -> str:
    try:
        await asyncio.wait_for(query("SELECT 1 AS ok"), DEPENDENCY_TIMEOUT * 1.5)
        return "ok"
    except Exception as e:  # any failure is "not ready"; the text says which
        return f"error: {type(e).__name__}: {str(e).strip()[:160] or 'timed out'}"


async def check_cache() -> str:
    try:
        await partitioned("cache")
        await asyncio.wait_for(state["redis"].ping(), DEPENDENCY_TIMEOUT * 1.5)
        return "ok"
    except Exception as e:
        return f"error: {type(e).__name__}: {str(e).strip()[:160] or 'timed out'}"


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok", "version": VERSION, "pod": POD})


async def ready(request: Request) -> Response:
    db, cache = await asyncio.gather(check_database(), check_cache())
    checks = {"database": db, "cache": cache}
    for name, result in checks.items():
        DEPENDENCY_UP.labels(name).set(1 if result == "ok" else 0)
    failed = [name for name, result in checks.items() if result != "ok"]
    if failed:
        return JSONResponse(
            {"status": "unavailable", "failed": failed, "checks": checks, "pod": POD},
            status_code=503)
    return JSONResponse({"status": "ok", "checks": checks, "pod": POD})


async def status(request: Request) -> Response:
    db, cache = await asyncio.gather(check_database(), check_cache())
    components = {"api": "operational",
                  "database": "operational" if db == "ok" else "outage",
                  "cache": "operational" if cache == "ok" else "outage"}
    overall = "operational" if all(v == "operational" for v in components.values()) else \
        "degraded"
    return JSONResponse({"status": overall, "version": VERSION, "components": components},
                        status_code=200 if overall == "operational" else 503)


def read_endpoint(sql: str):
    async def handler(request: Request) -> Response:
        limit = min(int(request.query_params.get("limit", "50")), 200)
        rows = await query(sql + " LIMIT %s", limit)
        body = json.dumps({"items": rows, "count": len(rows)}, default=str)
        return Response(body, media_type="application/json")

    return handler


async def metrics(request: Request) -> Response:
    pool: AsyncConnectionPool = state["pool"]
    stats = pool.get_stats()
    DB_ACTIVE.set(stats.get("pool_size", 0) - stats.get("pool_available", 0))
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


routes = [
    Route("/api/health", health),
    Route("/health", health),
    Route("/api/ready", ready),
    Route("/ready", ready),
    Route("/api/status", status),
    Route("/api/vulnerabilities", read_endpoint(
        "SELECT id, cve, title, severity, asset_id, status, first_seen FROM vulnerabilities "
        "ORDER BY id")),
    Route("/api/assets", read_endpoint(
        "SELECT id, hostname, kind, environment, owner FROM assets ORDER BY id")),
    Route("/api/alerts", read_endpoint(
        "SELECT id, title, severity, source, created_at FROM alerts ORDER BY created_at DESC")),
    Route("/metrics", metrics),
    *auth.make_routes(query),
]


# What a hardened service sends on every answer (HSTS belongs to the TLS terminator).
SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"), (b"cache-control", b"no-store")]


class Instrumented:
    """Counts and times every request, and applies the faults the control planes injected."""

    UNMEASURED = frozenset({"/metrics"})

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in self.UNMEASURED:
            return await self.app(scope, receive, send)
        path, start = scope["path"], time.perf_counter()
        handler = path if any(r.path == path for r in routes) else "other"
        status_holder = {"status": 500}
        fault = chaos.current()

        async def send_wrapper(message: dict) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        try:
            if fault.get("maintenance") and path not in ("/api/health", "/health"):
                resp = JSONResponse({"status": "maintenance",
                                     "message": "Security Dashboard is in maintenance mode"},
                                    status_code=503, headers={"Retry-After": "60"})
                return await resp(scope, receive, send_wrapper)
            if path not in PROBE_PATHS and VERSION.endswith("bad-slow"):
                await asyncio.sleep(BAD_SLOW_SECONDS)
            if path not in PROBE_PATHS and VERSION.endswith("bad-5xx"):
                resp = JSONResponse({"error": f"bad build {VERSION}"}, status_code=500)
                return await resp(scope, receive, send_wrapper)
            # Injected faults hit every request on the service port, the kubelet's readiness
            # probes included (as an HTTPChaos on that port does); /metrics is not on it.
            delay = float(fault.get("latency_seconds", 0))
            if delay:
                await asyncio.sleep(delay)
            if random.random() < float(fault.get("error_rate", 0)):
                code = int(fault.get("error_status", 500))
                resp = JSONResponse({"error": "injected fault", "status": code},
                                    status_code=code)
                return await resp(scope, receive, send_wrapper)
            await self.app(scope, receive, send_wrapper)
        finally:
            REQUESTS.labels(scope["method"], handler, str(status_holder["status"])).inc()
            LATENCY.labels(handler).observe(time.perf_counter() - start)


app = Instrumented(Starlette(routes=routes, lifespan=lifespan))
