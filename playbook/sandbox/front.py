"""The sandbox's load balancer: one port in front of the backend's replicas.

Like a Kubernetes Service behind an ALB, it routes round-robin to the replicas whose readiness
probe passes (the controller publishes them in endpoints.json). When none is ready it fails
open to the running ones, as an ALB does when every target is unhealthy, so that /api/ready
still tells *why*. With no replica at all it answers 502 with an HTML page, like a real one.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from playbook.sandbox.kube.netpol import NETPOL_FILE, admits

ENDPOINTS = Path(os.environ.get("SANDBOX_ENDPOINTS", "/nonexistent"))
# NetworkPolicies compiled by the Kubernetes API addon (kube/netpol.py); beside endpoints.json.
NETPOL = ENDPOINTS.parent / NETPOL_FILE
HOP_BY_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"te", b"upgrade",
              b"proxy-connection"}
BAD_GATEWAY = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
               b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>front</center>\r\n"
               b"</body>\r\n</html>\r\n")


class Upstreams:
    def __init__(self, path: Path) -> None:
        self.path, self.checked, self.mtime = path, 0.0, -1.0
        self.targets: list[str] = []
        self.cycle = itertools.cycle([""])

    def pick(self) -> list[str]:
        """The targets to try for one request, starting at the next in round-robin order."""
        now = time.monotonic()
        if now - self.checked > 0.1:
            self.checked = now
            try:
                mtime = self.path.stat().st_mtime
                if mtime != self.mtime:
                    data = json.loads(self.path.read_text())
                    self.mtime = mtime
                    self.targets = data.get("ready") or data.get("running") or []
                    self.cycle = itertools.cycle(range(len(self.targets)))
            except (OSError, ValueError):
                pass
        if not self.targets:
            return []
        start = next(self.cycle)
        return self.targets[start:] + self.targets[:start]


class Policies:
    """netpol.json, re-read at most every 0.1 s (like the endpoints)."""

    def __init__(self, path: Path) -> None:
        self.path, self.checked, self.mtime = path, 0.0, -1.0
        self.pods: dict[str, Any] = {}

    def current(self) -> dict[str, Any]:
        now = time.monotonic()
        if now - self.checked > 0.1:
            self.checked = now
            try:
                mtime = self.path.stat().st_mtime
                if mtime != self.mtime:
                    self.pods = json.loads(self.path.read_text()).get("pods", {})
                    self.mtime = mtime
            except FileNotFoundError:
                self.pods, self.mtime = {}, -1.0
            except (OSError, ValueError):
                pass
        return self.pods


upstreams = Upstreams(ENDPOINTS)
policies = Policies(NETPOL)
# Prometheus scrapes the front itself here (job security-dashboard-front); a path of its own so
# that it never shadows a route of the backend.
METRICS_PATH = "/-/metrics"
responses: Counter[int] = Counter()
refused: Counter[str] = Counter()  # requests refused by a NetworkPolicy, by source address
client = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=0.5),
                           limits=httpx.Limits(max_connections=200,
                                               max_keepalive_connections=50))


async def _read_body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def app(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = await _read_body(receive)
    if scope["path"] == METRICS_PATH:
        return await _metrics(send)
    path = scope["raw_path"].decode() or scope["path"]
    if scope.get("query_string"):
        path += "?" + scope["query_string"].decode()
    # The front is the edge: what a client claims in X-Forwarded-For is dropped, and the
    # address it connected from is what the backend logs as the source.
    headers = [(k, v) for k, v in scope["headers"]
               if k.lower() not in HOP_BY_HOP | {b"host", b"content-length", b"x-forwarded-for"}]
    client_ip = (scope.get("client") or ("", 0))[0]
    headers.append((b"x-forwarded-for", client_ip.encode()))
    targets = upstreams.pick()
    isolated = policies.current()
    if isolated:
        admitted = [t for t in targets if admits(isolated.get(t), client_ip)]
        if targets and not admitted:
            return await _refuse(send, client_ip, sorted({
                n for t in targets for n in (isolated.get(t) or {}).get("policies", [])}))
        targets = admitted
    for target in targets[:3]:
        try:
            resp = await client.request(scope["method"], target + path, headers=headers,
                                        content=body)
        except httpx.TransportError:
            continue  # a replica that died between probes: try the next one
        out = [(k, v) for k, v in resp.headers.raw if k.lower() not in HOP_BY_HOP]
        responses[resp.status_code] += 1
        await send({"type": "http.response.start", "status": resp.status_code, "headers": out})
        await send({"type": "http.response.body", "body": resp.content})
        return
    responses[502] += 1
    await send({"type": "http.response.start", "status": 502,
                "headers": [(b"content-type", b"text/html")]})
    await send({"type": "http.response.body", "body": BAD_GATEWAY})


async def _refuse(send: Any, client_ip: str, names: list[str]) -> None:
    """No pod admits this client: 403 naming the policies (a CNI would drop the packets)."""
    responses[403] += 1
    refused[client_ip] += 1
    body = json.dumps({"error": "forbidden by NetworkPolicy", "source": client_ip,
                       "policies": names}).encode()
    await send({"type": "http.response.start", "status": 403,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


async def _metrics(send: Any) -> None:
    """Prometheus text format: what the front answered, and how many replicas it routes to."""
    upstreams.pick()  # refresh the target list
    lines = ["# HELP security_dashboard_front_responses_total Responses the front sent, by status.",
             "# TYPE security_dashboard_front_responses_total counter"]
    lines += [f'security_dashboard_front_responses_total{{status="{code}"}} {n}'
              for code, n in sorted(responses.items())]
    lines += ["# HELP security_dashboard_front_upstreams Backend replicas the front routes to.",
              "# TYPE security_dashboard_front_upstreams gauge",
              f"security_dashboard_front_upstreams {len(upstreams.targets)}",
              "# HELP security_dashboard_front_netpol_refused_total Requests a NetworkPolicy "
              "refused, by source address.",
              "# TYPE security_dashboard_front_netpol_refused_total counter"]
    lines += [f'security_dashboard_front_netpol_refused_total{{source="{ip}"}} {n}'
              for ip, n in sorted(refused.items())]
    lines += [""]
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain; version=0.0.4")]})
    await send({"type": "http.response.body", "body": "\n".join(lines).encode()})
