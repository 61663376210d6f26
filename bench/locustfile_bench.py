"""The Locust side of bench/run_bench.py: the same journey as bench/k6_script.js.

GET /api/health with no think time and the same two checks as k6 (status 200, JSON body
status "ok", parsed as JSON like k6's r.json()), counted the way loadtests/locustfile.py counts
them, so the runner judges a `checks` threshold exactly as in a real run. Every microsecond of
Python per request shows up as generator CPU, so BENCH_CLIENT picks how the request is made:

- fasthttp (default): FastHttpUser + catch_response, as loadtests/locustfile.py does;
- nocookies: the same with the session's cookie jar switched off (a stateless API sends no
  cookies; the jar costs a cookie-header pass and a Set-Cookie scan on every request);
- raw: geventhttpclient's HTTPClient (the connection pool under FastHttpUser) called
  directly, and the request reported to Locust with events.request - no URL building,
  redirect/retry handling, cookie jar or response wrapper;
- lean: a minimal HTTP/1.1 keep-alive client on a gevent socket (one pre-built request,
  Content-Length bodies only: no chunked encoding, redirects or TLS), reporting with
  events.request. Not a general client - it is here to show what Locust's own machinery
  (users, gevent, events, statistics) costs per request once the HTTP layer is thin.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any
from urllib.parse import urlsplit

from gevent import socket
from geventhttpclient import HTTPClient
from locust import FastHttpUser, User, constant, events, task

HEALTH = "/api/health"
ENDPOINTS = (HEALTH,)
CLIENT = os.environ.get("BENCH_CLIENT", "fasthttp")


_env: dict[str, Any] = {}


@events.init.add_listener
def _init(environment: Any, **_: Any) -> None:
    if not hasattr(environment, "checks"):
        environment.checks = {}
    _env["env"] = environment


# Distributed mode: check counts travel with the stats (as in loadtests/locustfile.py).
@events.report_to_master.add_listener
def _report_checks(client_id: str, data: dict[str, Any]) -> None:
    data["checks"], _env["env"].checks = _env["env"].checks, {}


@events.worker_report.add_listener
def _merge_checks(client_id: str, data: dict[str, Any]) -> None:
    for name, (passed, failed) in data.get("checks", {}).items():
        counts = _env["env"].checks.setdefault(name, [0, 0])
        counts[0] += passed
        counts[1] += failed


def _count(environment: Any, ok_status: bool, ok_body: bool) -> None:
    counts = environment.checks.get(HEALTH)
    if counts is None:
        counts = environment.checks[HEALTH] = [0, 0]
    counts[0] += ok_status + ok_body
    counts[1] += (not ok_status) + (not ok_body)


class HealthPoller(FastHttpUser):
    abstract = CLIENT not in ("fasthttp", "nocookies")
    wait_time = constant(0)

    def on_start(self) -> None:
        if CLIENT == "nocookies":
            self.client.cookiejar = None
            self.client.client.cookiejar = None  # the geventhttpclient UserAgent under it

    @task
    def health(self) -> None:
        with self.client.get(HEALTH, name=HEALTH, catch_response=True) as resp:
            ok_status = resp.status_code == 200
            ok_body = ok_status and json.loads(resp.content).get("status") == "ok"
            _count(self.environment, ok_status, ok_body)
            if not ok_body:
                resp.failure(f"{HEALTH}: HTTP {resp.status_code} or body not ok")


class RawHealthPoller(User):
    abstract = CLIENT != "raw"
    wait_time = constant(0)
    network_timeout = connection_timeout = 5.0

    def on_start(self) -> None:
        url = urlsplit(self.host)
        self.http = HTTPClient(url.hostname, url.port or 80, concurrency=1,
                               network_timeout=self.network_timeout,
                               connection_timeout=self.connection_timeout)
        self.fire = self.environment.events.request.fire

    def on_stop(self) -> None:
        self.http.close()

    @task
    def health(self) -> None:
        start, t0, body, status = time.time(), time.perf_counter(), b"", 0
        exc: Exception | None = None
        try:
            resp = self.http.get(HEALTH)
            status, body = resp.status_code, resp.read()
        except Exception as e:  # reported as a failed request, like FastHttpUser does
            exc = e
        ok_status = status == 200
        ok_body = ok_status and json.loads(body).get("status") == "ok"
        _count(self.environment, ok_status, ok_body)
        if exc is None and not ok_body:
            exc = AssertionError(f"{HEALTH}: HTTP {status} or body not ok")
        self.fire(request_type="GET", name=HEALTH, response_time=(time.perf_counter() - t0) * 1e3,
                  response_length=len(body), exception=exc, context={}, start_time=start,
                  response=None, url=HEALTH)


class LeanHealthPoller(User):
    abstract = CLIENT != "lean"
    wait_time = constant(0)
    network_timeout = connection_timeout = 5.0

    def on_start(self) -> None:
        url = urlsplit(self.host)
        self.addr = (url.hostname, url.port or 80)
        self.request = (f"GET {HEALTH} HTTP/1.1\r\nHost: {url.netloc}\r\n"
                        "User-Agent: locust-bench\r\nAccept: */*\r\n\r\n").encode()
        self.sock: Any = None
        self.buf = b""
        self.fire = self.environment.events.request.fire

    def on_stop(self) -> None:
        if self.sock is not None:
            self.sock.close()

    def _get(self) -> tuple[int, bytes]:
        if self.sock is None:
            self.sock = socket.create_connection(self.addr, timeout=self.connection_timeout)
            self.sock.settimeout(self.network_timeout)
            self.buf = b""
        self.sock.sendall(self.request)
        buf = self.buf
        while (i := buf.find(b"\r\n\r\n")) < 0:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed by the server")
            buf += chunk
        head = buf[:i].lower()
        j = head.find(b"content-length:")
        if j < 0:
            raise ValueError("no Content-Length (the lean client reads no chunked bodies)")
        end = i + 4 + int(head[j + 15:head.find(b"\r\n", j) if head.find(b"\r\n", j) > 0
                                else None])
        while len(buf) < end:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed by the server")
            buf += chunk
        self.buf = buf[end:]
        if b"connection: close" in head:
            self.sock.close()
            self.sock = None
        return int(buf[9:12]), buf[i + 4:end]

    @task
    def health(self) -> None:
        start, t0, body, status = time.time(), time.perf_counter(), b"", 0
        exc: Exception | None = None
        try:
            status, body = self._get()
        except Exception as e:
            exc = e
            if self.sock is not None:
                self.sock.close()
                self.sock = None
        ok_status = status == 200
        ok_body = ok_status and json.loads(body).get("status") == "ok"
        _count(self.environment, ok_status, ok_body)
        if exc is None and not ok_body:
            exc = AssertionError(f"{HEALTH}: HTTP {status} or body not ok")
        self.fire(request_type="GET", name=HEALTH, response_time=(time.perf_counter() - t0) * 1e3,
                  response_length=len(body), exception=exc, context={}, start_time=start,
                  response=None, url=HEALTH)
