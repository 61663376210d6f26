"""The journeys' Locust user: an HTTP/1.1 client at k6's CPU cost per request.

`LoadUser` is a Locust `User` whose `self.client` speaks the API the journeys use from
FastHttpUser (`get/post/... (path, name=, catch_response=True, headers=, json=, data=,
params=, allow_redirects=)`, `resp.status_code/.content/.text/.json()/.headers/.error`,
`resp.success()/.failure()`), reporting every request through Locust's `events.request` with
its response time, length and exception. `http_client = "fasthttp"` (profile `load.client`)
gives the user Locust's own FastHttpSession instead.

The client (`LoadSession`), why it is cheap and what it does:
- a keep-alive pool per user and origin (at most `concurrency` idle connections, like
  FastHttpUser's), the request head built once per (method, URL) and cached;
- response bodies framed by Content-Length, chunked transfer coding or the end of the
  connection (RFC 9112 6.3); interim 1xx skipped; gzip/deflate decoded; bodies bounded;
- TLS through gevent's ssl with certificate and host name verification unless `insecure`
  (a profile's `load.tls_verify: false`), `ca_file` for a private CA;
- redirects (301/302/303/307/308) when `allow_redirects` (the default, as in FastHttpUser),
  at most `max_redirects`; 303 (and 301/302 after POST) become GET; credentials never follow
  to another origin;
- cookies: a stdlib CookieJar, created at the first Set-Cookie (a stateless API pays nothing);
- `connect_timeout` for the TCP and TLS handshake, `timeout` as a deadline for the whole
  request (not per read: a server that drips a byte a second is cut at the deadline);
- resets and retries as FastHttpUser (geventhttpclient): an idempotent request whose connection
  is reset or closed before the first byte of the answer is sent again on a new connection,
  at most `concurrency + 1` times; a refused connection, a timeout or a connection lost in the
  middle of an answer is reported at once.

The wire (reading and framing responses) is playbook/loadwire.py; the load plan and the shape
are playbook/loadplan.py. deploy/ ships the three beside the locustfile (the stock Locust image
has no `playbook` package), so this imports only the standard library, gevent, Locust and its
sibling at module level, and no ssl before Locust has patched the interpreter.
"""

from __future__ import annotations

import json as _json
import time
import zlib
from base64 import b64encode
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlencode, urljoin, urlsplit

from gevent import socket as gsocket
from locust import User
from locust.exception import StopTest

try:
    from playbook.loadwire import (
        Conn,
        ConnectionClosed,
        LoadResponse,
        Origin,
        ProtocolError,
        RequestTimeout,
        WireReader,
        timeout_error,
    )
except ImportError:  # deploy/: beside the locustfile, without the playbook package
    from loadwire import (  # type: ignore[no-redef]
        Conn,
        ConnectionClosed,
        LoadResponse,
        Origin,
        ProtocolError,
        RequestTimeout,
        WireReader,
        timeout_error,
    )

CLIENTS = ("playbook", "fasthttp")
IDEMPOTENT = frozenset(("GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"))  # RFC 9110 9.2.2
REDIRECTS = frozenset((301, 302, 303, 307, 308))
USER_AGENT = "security-dashboard-playbook-load"
_NOTHING: frozenset[str] = frozenset()


class BadStatusCode(Exception):
    """A 4xx/5xx answer (FastHttpUser reports these as failures too)."""


class TooManyRedirects(Exception):
    pass




# --- the client ------------------------------------------------------------------------------


class LoadSession(WireReader):
    """A Locust user's HTTP/1.1 client. Not shared between greenlets (one per user)."""

    def __init__(self, base_url: str, request_event: Any, user: User | None = None, *,
                 timeout: float = 60.0, connect_timeout: float | None = None,
                 insecure: bool = False, ca_file: str | None = None, max_redirects: int = 10,
                 concurrency: int = 10, max_body_bytes: int = 64 * 1024 * 1024,
                 cookies: bool = True, headers: dict[str, str] | None = None) -> None:
        split = urlsplit(base_url)
        if split.scheme not in ("http", "https") or not split.hostname:
            raise ValueError(f"{base_url!r} is not an http:// or https:// URL")
        self.base_url = base_url.rstrip("/")
        self.request_event, self.user = request_event, user
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout if connect_timeout else timeout)
        self.insecure, self.ca_file = insecure, ca_file
        self.max_redirects, self.concurrency = max_redirects, concurrency
        self.max_body_bytes, self.cookies_enabled = max_body_bytes, cookies
        self.request_name: str | None = None
        self.cookiejar: Any = None  # http.cookiejar.CookieJar, made at the first Set-Cookie
        self.auth_header: str | None = None
        if split.username is not None:  # like FastHttpSession: credentials in the URL
            from urllib.parse import unquote

            self.auth_header = _basic_auth(unquote(split.username), unquote(split.password or ""))
            netloc = split.netloc.rpartition("@")[2]
            self.base_url = split._replace(netloc=netloc).geturl().rstrip("/")
        # lower-cased name -> header line; a request's own header replaces one of these
        self._defaults = {"user-agent": f"User-Agent: {USER_AGENT}", "accept": "Accept: */*",
                          "accept-encoding": "Accept-Encoding: gzip, deflate"}
        for k, v in (headers or {}).items():
            self._defaults[k.lower()] = f"{_field(k)}: {_value(v)}"
        self._default_headers = "".join(line + "\r\n" for line in self._defaults.values())
        self._origins: dict[str, Origin] = {}
        self._heads: dict[tuple[str, str], tuple[Origin, str, bytes]] = {}
        self._tls: Any = None

    # -- the public API (FastHttpSession's) --

    @contextmanager
    def rename_request(self, name: str) -> Iterator[None]:
        self.request_name = name
        try:
            yield
        finally:
            self.request_name = None

    def get(self, url: str, **kw: Any) -> LoadResponse:
        return self.request("GET", url, **kw)

    def head(self, url: str, **kw: Any) -> LoadResponse:
        return self.request("HEAD", url, **kw)

    def options(self, url: str, **kw: Any) -> LoadResponse:
        return self.request("OPTIONS", url, **kw)

    def delete(self, url: str, **kw: Any) -> LoadResponse:
        return self.request("DELETE", url, **kw)

    def post(self, url: str, data: Any = None, json: Any = None, **kw: Any) -> LoadResponse:
        return self.request("POST", url, data=data, json=json, **kw)

    def put(self, url: str, data: Any = None, **kw: Any) -> LoadResponse:
        return self.request("PUT", url, data=data, **kw)

    def patch(self, url: str, data: Any = None, **kw: Any) -> LoadResponse:
        return self.request("PATCH", url, data=data, **kw)

    def request(self, method: str, url: str, name: str | None = None,
                catch_response: bool = False, headers: dict[str, str] | None = None,
                data: Any = None, json: Any = None, params: dict[str, Any] | None = None,
                auth: tuple[str, str] | None = None, allow_redirects: bool = True,
                timeout: float | None = None, context: dict[str, Any] | None = None
                ) -> LoadResponse:
        """Send one request (following redirects when allowed) and report it to Locust: at
        once, or at the end of the with-block when catch_response=True."""
        start_time = time.time()
        t0 = time.perf_counter()
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params, doseq=True)
        extra = ""
        body: bytes | Iterable[bytes] | None = None
        if headers:
            extra = "".join(f"{_field(k)}: {_value(v)}\r\n" for k, v in headers.items())
        lowered = {k.lower() for k in headers} if headers else ()
        if json is not None and data is None:
            body = _json.dumps(json).encode()
            if "content-type" not in lowered:
                extra += "Content-Type: application/json\r\n"
        elif data is not None:
            if isinstance(data, dict):
                body = urlencode(data, doseq=True).encode()
                if "content-type" not in lowered:
                    extra += "Content-Type: application/x-www-form-urlencoded\r\n"
            elif isinstance(data, str):
                body = data.encode()
            else:
                body = data
        if auth is not None:
            extra += f"Authorization: {_basic_auth(*auth)}\r\n"
        elif self.auth_header and "authorization" not in lowered:
            extra += f"Authorization: {self.auth_header}\r\n"
        method = method.upper()
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = b""  # Content-Length: 0 (some servers answer 411 without it)
        seconds = self.timeout if timeout is None else float(timeout)
        deadline = time.monotonic() + seconds
        try:
            replaced = frozenset(lowered) & (self._defaults.keys() | {"host"}) if headers else \
                _NOTHING
            resp = self._follow(method, url, extra, body, deadline, seconds, allow_redirects,
                                replaced)
            if resp.status_code >= 400:
                resp.error = BadStatusCode(f"HTTP {resp.status_code} {resp.reason}".rstrip())
        except (OSError, ProtocolError, TooManyRedirects, ValueError, zlib.error) as e:
            resp = LoadResponse(0, "", b"", b"", url)
            resp.error = e
        ctx = self.user.context() if self.user is not None else {}
        if context:
            ctx = {**ctx, **context}
        meta = {"request_type": method, "name": name or self.request_name or url,
                "response_time": (time.perf_counter() - t0) * 1000,
                "response_length": len(resp.content), "exception": resp.error,
                "context": ctx, "response": resp, "url": resp.url, "start_time": start_time}
        if catch_response:
            resp._catch, resp._event, resp.request_meta = True, self.request_event, meta
            return resp
        resp.request_meta = meta
        self.request_event.fire(**meta)
        return resp

    def close(self) -> None:
        for origin in self._origins.values():
            for conn in origin.idle:
                conn.close()
            origin.idle.clear()

    # -- redirects, cookies --

    def _follow(self, method: str, url: str, extra: str, body: Any, deadline: float,
                seconds: float, allow_redirects: bool, replaced: frozenset[str]
                ) -> LoadResponse:
        history: list[LoadResponse] = []
        first_origin: Origin | None = None
        for _hop in range(self.max_redirects + 1):
            origin, full_url, head = self._head(method, url, replaced)
            if first_origin is None:
                first_origin = origin
            jar = self.cookiejar
            if jar is not None and len(jar):
                cookie = _cookie_header(jar, full_url, method)
                extra_now = extra + f"Cookie: {cookie}\r\n" if cookie else extra
            else:
                extra_now = extra
            if body is None:
                wire = head + (extra_now.encode("latin-1") + b"\r\n" if extra_now else b"\r\n")
                chunked = False
            elif isinstance(body, (bytes, bytearray, memoryview)):
                wire = (head + f"{extra_now}Content-Length: {len(body)}\r\n\r\n"
                        .encode("latin-1") + bytes(body))
                chunked = False
            else:  # an iterable of bytes: chunked transfer coding
                wire = head + f"{extra_now}Transfer-Encoding: chunked\r\n\r\n".encode("latin-1")
                chunked = True
            resp = self._exchange(origin, method, wire, body if chunked else None, deadline,
                                  seconds, full_url)
            if resp.set_cookies and self.cookies_enabled:
                self._store_cookies(resp, full_url, method)
            location = resp.headers.get("location") if resp.status_code in REDIRECTS else None
            if not allow_redirects or not location:
                resp.history = history
                return resp
            history.append(resp)
            url = urljoin(full_url, location)
            if (resp.status_code == 303 and method != "HEAD") or \
                    (resp.status_code in (301, 302) and method == "POST"):
                method, body = "GET", None
                extra = "".join(line + "\r\n" for line in extra.split("\r\n") if line and not
                                line.lower().startswith(("content-type:", "content-length:")))
            if self._origin_of(url) is not first_origin and "Authorization:" in extra:
                extra = "".join(line + "\r\n" for line in extra.split("\r\n")
                                if line and not line.startswith("Authorization:"))
        raise TooManyRedirects(f"stopped after {self.max_redirects} redirects (last: {url})")

    def _store_cookies(self, resp: LoadResponse, url: str, method: str) -> None:
        import urllib.request
        from http.cookiejar import CookieJar

        if self.cookiejar is None:
            self.cookiejar = CookieJar()
        self.cookiejar.extract_cookies(_CookieResponse(resp.set_cookies),  # type: ignore[arg-type]
                                       urllib.request.Request(url, method=method))

    # -- request heads, origins --

    def _origin_of(self, url: str) -> Origin:
        split = urlsplit(url)
        scheme = split.scheme.lower()
        if scheme not in ("http", "https") or not split.hostname:
            raise ValueError(f"{url!r}: only http:// and https:// URLs can be requested")
        port = split.port or (443 if scheme == "https" else 80)
        key = f"{scheme}://{split.hostname}:{port}"
        origin = self._origins.get(key)
        if origin is None:
            origin = self._origins[key] = Origin(scheme, split.hostname, port)
        return origin

    def _head(self, method: str, url: str, replaced: frozenset[str] = _NOTHING
              ) -> tuple[Origin, str, bytes]:
        """The request line and fixed headers for (method, url), built once and cached;
        without the default headers (or Host) the request sets itself (`replaced`)."""
        cached = None if replaced else self._heads.get((method, url))
        if cached is not None:
            return cached
        full = url if url.startswith(("http://", "https://", "HTTP://", "HTTPS://")) else \
            self.base_url + (url if url.startswith("/") else "/" + url)
        origin = self._origin_of(full)
        split = urlsplit(full)
        target = quote(split.path or "/", safe="/%:@!$&'()*+,;=-._~")
        if split.query:
            target += "?" + quote(split.query, safe="/?%:@!$&'()*+,;=-._~")
        fixed = self._default_headers if not replaced else "".join(
            line + "\r\n" for name, line in self._defaults.items() if name not in replaced)
        host = "" if "host" in replaced else f"Host: {origin.host_header}\r\n"
        head = f"{method} {target} HTTP/1.1\r\n{host}{fixed}".encode("latin-1")
        cached = (origin, full, head)
        if not replaced and len(self._heads) < 1024:  # a journey requests a few URLs
            self._heads[(method, url)] = cached
        return cached

    # -- one exchange on the wire, with FastHttpUser's retry rule --

    def _exchange(self, origin: Origin, method: str, wire: bytes, chunks: Any,
                  deadline: float, seconds: float, url: str) -> LoadResponse:
        attempts_left = self.concurrency + 1
        while True:
            conn = origin.idle.pop() if origin.idle else self._connect(origin, deadline, seconds)
            sock = conn.sock
            try:
                sock.settimeout(max(deadline - time.monotonic(), 1e-3))
                # send() first: a request head fits the socket buffer in one call, and gevent's
                # sendall() costs a getsockopt() system call each time
                sent = sock.send(wire)
                if sent < len(wire):
                    sock.sendall(wire[sent:])
                if chunks is not None:
                    for chunk in chunks:
                        if chunk:
                            sock.sendall(b"%x\r\n%b\r\n" % (len(chunk), bytes(chunk)))
                    sock.sendall(b"0\r\n\r\n")
            except TimeoutError:
                conn.close()
                raise timeout_error("the request was not sent", seconds) from None
            except (ConnectionResetError, BrokenPipeError):
                # The server may have answered before it closed (e.g. a 413 on a large body).
                try:
                    return self._read(conn, origin, method, deadline, seconds, url)
                except ConnectionClosed:
                    if attempts_left > 0 and method in IDEMPOTENT and chunks is None:
                        attempts_left -= 1
                        continue
                    raise
            except BaseException:
                conn.close()
                raise
            try:
                return self._read(conn, origin, method, deadline, seconds, url)
            except ConnectionClosed:
                if attempts_left > 0 and method in IDEMPOTENT and chunks is None:
                    attempts_left -= 1
                    continue
                raise

    def _connect(self, origin: Origin, deadline: float, seconds: float) -> Conn:
        limit = min(self.connect_timeout, deadline - time.monotonic())
        if limit <= 0:
            raise timeout_error("no connection", seconds)
        try:
            sock = gsocket.create_connection((origin.host, origin.port), timeout=limit)
        except TimeoutError:
            raise RequestTimeout(f"connecting to {origin.key} timed out after {limit:g} s"
                                 ) from None
        sock.setsockopt(gsocket.IPPROTO_TCP, gsocket.TCP_NODELAY, 1)
        if origin.tls:
            try:
                sock = self._tls_context().wrap_socket(sock, server_hostname=origin.host)
            except TimeoutError:
                sock.close()
                raise RequestTimeout(f"TLS handshake with {origin.key} timed out after "
                                     f"{limit:g} s") from None
            except BaseException:
                sock.close()
                raise
        return Conn(sock)

    def _tls_context(self) -> Any:
        if self._tls is None:
            from gevent import ssl  # here, not at import: ssl only after Locust's patching

            if self.insecure:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            else:
                ctx = ssl.create_default_context(cafile=self.ca_file or None)
            ctx.set_alpn_protocols(["http/1.1"])
            self._tls = ctx
        return self._tls


def _field(name: str) -> str:
    if not name or any(c in name for c in " \t\r\n:"):
        raise ValueError(f"invalid header name {name!r}")
    return name


def _value(value: Any) -> str:
    text = str(value)
    if "\r" in text or "\n" in text:
        raise ValueError(f"invalid header value {text[:40]!r} (line break)")
    return text


def _basic_auth(user: str | bytes, password: str | bytes) -> str:
    u = user.encode("latin1") if isinstance(user, str) else user
    p = password.encode("latin1") if isinstance(password, str) else password
    return "Basic " + b64encode(u + b":" + p).decode("ascii")


class _CookieResponse:
    """What http.cookiejar reads from a response: info().get_all("Set-Cookie")."""

    def __init__(self, values: list[str]) -> None:
        self.values = values

    def info(self) -> _CookieResponse:
        return self

    def get_all(self, name: str, default: Any = None) -> Any:
        return list(self.values) if name.lower() == "set-cookie" else default


def _cookie_header(jar: Any, url: str, method: str) -> str | None:
    import urllib.request

    req = urllib.request.Request(url, method=method)
    jar.add_cookie_header(req)
    return req.get_header("Cookie")




# --- the Locust user --------------------------------------------------------------------------


class LoadUser(User):
    """A Locust user with `self.client`: LoadSession, or FastHttpSession when
    `http_client = "fasthttp"`. The settings below are class attributes, like FastHttpUser's;
    `configure()` sets them from the load plan."""

    abstract = True
    http_client: str = "playbook"  # "playbook" | "fasthttp"
    timeout: float = 60.0  # seconds for the whole request (FastHttpUser: per socket read)
    connect_timeout: float | None = None  # seconds for TCP + TLS; None: `timeout`
    insecure: bool = False  # True: no TLS certificate verification
    ca_file: str | None = None  # trust this CA bundle instead of the system's
    max_redirects: int = 10
    concurrency: int = 10  # idle connections kept per origin; bounds the reset retries
    cookies: bool = True
    default_headers: dict[str, str] | None = None

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        if self.host is None:
            raise StopTest("You must specify the base host. Either in the host attribute in "
                           "the User class, or on the command line using the --host option.")
        if self.http_client == "fasthttp":
            from locust.contrib.fasthttp import FastHttpSession

            factory = None
            if not self.insecure and self.ca_file:
                from gevent import ssl

                def factory() -> Any:
                    return ssl.create_default_context(cafile=self.ca_file)

            self.client: Any = FastHttpSession(
                base_url=self.host, request_event=environment.events.request, user=self,
                network_timeout=self.timeout,
                connection_timeout=self.connect_timeout or self.timeout,
                max_redirects=self.max_redirects, max_retries=0, insecure=self.insecure,
                concurrency=self.concurrency, ssl_context_factory=factory,
                headers=self.default_headers)
            if not self.cookies:
                self.client.cookiejar = self.client.client.cookiejar = None
        elif self.http_client == "playbook":
            self.client = LoadSession(
                self.host, environment.events.request, self, timeout=self.timeout,
                connect_timeout=self.connect_timeout, insecure=self.insecure,
                ca_file=self.ca_file, max_redirects=self.max_redirects,
                concurrency=self.concurrency, cookies=self.cookies,
                headers=self.default_headers)
        else:
            raise StopTest(f"http_client {self.http_client!r} is not one of "
                           f"{', '.join(CLIENTS)}")

    def on_stop(self) -> None:
        close = getattr(self.client, "close", None)
        if close is not None:
            close()
