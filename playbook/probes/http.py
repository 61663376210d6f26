"""HTTP observations of the service: what an endpoint answered, never an assertion.

`get()` never raises for network trouble: a refused connection, a timeout or a TLS error is an
observation too, and `problem()` turns any observation into the sentence an on-call engineer
reads: what was expected, what was seen, and where.

`http_client()` is the one way the suite builds an httpx client (playbook.clients, notify, the
drills' synthetic users): the suite's User-Agent, the timeout rule, no redirects followed.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

# Every request of the suite says who it is: the security checks leave their own probes of the
# admin endpoints out of the log-burst count by it.
USER_AGENT = "security-dashboard-playbook"
CONNECT_MAX = 3.0  # seconds: a host that does not accept a connection by then is down


def timeout(seconds: float) -> httpx.Timeout:
    """The profile's timeout for reading, writing and the pool; connecting takes at most
    CONNECT_MAX of it, so that a dead host fails fast."""
    return httpx.Timeout(seconds, connect=min(seconds, CONNECT_MAX))


def http_client(seconds: float, *, bearer_token: str | None = None,
                user_agent: str = USER_AGENT, headers: dict[str, str] | None = None,
                local_address: str | None = None, verify: bool | str = True) -> httpx.Client:
    """An httpx client with the suite's conventions: `timeout(seconds)`, redirects not
    followed (a redirect to a login page is a finding, not a pass), the User-Agent, an
    Authorization: Bearer header when given a token, connections from `local_address`, TLS
    verified (`verify`: a CA bundle's path, or False as a profile's load.tls_verify asks)."""
    all_headers = {"User-Agent": user_agent, **(headers or {})}
    if bearer_token:
        all_headers["Authorization"] = f"Bearer {bearer_token}"
    transport = httpx.HTTPTransport(local_address=local_address) if local_address else None
    return httpx.Client(timeout=timeout(seconds), follow_redirects=False, headers=all_headers,
                        transport=transport, verify=verify)


@dataclass(frozen=True)
class HttpObservation:
    method: str
    url: str
    status: int | None = None  # None: no HTTP answer at all (see error)
    reason: str = ""
    elapsed: float = 0.0  # seconds, including connecting
    content_type: str = ""
    body: str = ""  # the first few KiB
    json: Any = None  # parsed body when it is JSON
    headers: dict[str, str] | None = None
    error: str | None = None  # why there was no answer

    @property
    def where(self) -> str:
        return f"{self.method} {self.url}"

    def snippet(self, n: int = 160) -> str:
        text = " ".join(self.body.split())
        return text[:n] + ("..." if len(text) > n else "")

    def problem(self, expect_status: int = 200, expect_json: dict[str, Any] | None = None,
                max_seconds: float | None = None) -> str | None:
        """None when the answer is as expected, else one sentence saying what is wrong."""
        if self.error:
            return f"{self.where}: {self.error}"
        if self.status != expect_status:
            seen = f"{self.status} {self.reason}".strip()
            body = f" - body: {self.snippet()}" if self.body else ""
            return f"{self.where}: expected HTTP {expect_status}, got {seen}{body}"
        if expect_json is not None:
            if self.json is None:
                kind = self.content_type or "no content type"
                page = " (an HTML error page?)" if "html" in kind else ""
                return (f"{self.where}: expected a JSON body, got {kind}{page}: "
                        f"{self.snippet() or '(empty)'}")
            if not isinstance(self.json, dict):
                return f"{self.where}: expected a JSON object, got {self.snippet()}"
            for key, want in expect_json.items():
                got = self.json.get(key, "<missing>")
                if got != want:
                    return (f"{self.where}: answered {self.status} but {key} is {got!r}, "
                            f"expected {want!r} - body: {self.snippet()}")
        if max_seconds is not None and self.elapsed > max_seconds:
            return (f"{self.where}: took {self.elapsed:.2f} s, above the p95 SLO of "
                    f"{max_seconds:g} s")
        return None


def _describe(exc: httpx.HTTPError, timeout: float) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return f"could not connect within {timeout:g} s (connect timeout; host down or filtered?)"
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within {timeout:g} s (timeout; the service is hanging or overloaded)"
    if isinstance(exc, httpx.ConnectError):
        text = str(exc)
        if "refused" in text.lower():
            return "connection refused - nothing is listening there (service down or wrong URL?)"
        if "certificate" in text.lower() or "ssl" in text.lower():
            return f"TLS handshake failed: {text}"
        if "name" in text.lower() and ("resolution" in text.lower() or "known" in text.lower()):
            return f"DNS lookup failed: {text}"
        return f"could not connect: {text or type(exc).__name__}"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"the server closed the connection without a valid answer ({exc})"
    return f"{type(exc).__name__}: {exc}"


def get(client: httpx.Client, url: str, max_body: int = 4096,
        headers: dict[str, str] | None = None) -> HttpObservation:
    start = time.perf_counter()
    try:
        resp = client.get(url, headers=headers)
    except httpx.HTTPError as exc:
        timeout = client.timeout.read or client.timeout.connect or 0
        return HttpObservation("GET", url, elapsed=time.perf_counter() - start,
                               error=_describe(exc, timeout))
    elapsed = time.perf_counter() - start
    ctype = resp.headers.get("content-type", "")
    body = resp.text[:max_body]
    parsed = None
    if "json" in ctype:
        try:
            parsed = json.loads(resp.text)
        except ValueError:
            parsed = None
    return HttpObservation("GET", url, status=resp.status_code, reason=resp.reason_phrase,
                           elapsed=elapsed, content_type=ctype, body=body, json=parsed,
                           headers=dict(resp.headers))


@dataclass(frozen=True)
class TlsObservation:
    host: str
    port: int
    days_left: float | None = None
    not_after: str = ""
    error: str | None = None


def tls_certificate(url: str, timeout: float) -> TlsObservation:
    """Days until the server certificate of an https URL expires."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    ctx = ssl.create_default_context()
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock, \
                ctx.wrap_socket(sock, server_hostname=host) as tls:
            cert = tls.getpeercert()
    except (OSError, ssl.SSLError) as e:
        return TlsObservation(host, port, error=f"TLS to {host}:{port} failed: {e}")
    not_after = str((cert or {}).get("notAfter", ""))
    expires = dt.datetime.fromtimestamp(ssl.cert_time_to_seconds(not_after), dt.UTC)
    left = (expires - dt.datetime.now(dt.UTC)).total_seconds() / 86400
    return TlsObservation(host, port, days_left=left, not_after=not_after)
