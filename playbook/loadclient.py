"""The journeys' Locust user: an HTTP/1.1 client at k6's CPU cost per request, and the load plan.

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

The load plan (`Plan`): the stages a run follows and the client settings, as JSON. `playbook
load` writes it for its run; deploy/ ships one in its ConfigMap; a plain `locust -f` reads the
profile named by PLAYBOOK_ENV and PLAYBOOK_LOAD_PROFILE. `PlanShape` is the LoadTestShape that
follows it; `configure()` applies it to the user classes.

Shipped alone: deploy/'s ConfigMap carries this file beside the locustfile (the stock Locust
image has no `playbook` package), so it imports only the standard library, gevent and Locust at
module level, and no ssl before Locust has patched the interpreter.
"""

from __future__ import annotations

import json as _json
import logging
import os
import re
import time
import zlib
from base64 import b64encode
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote, urlencode, urljoin, urlsplit

from gevent import socket as gsocket
from locust import User
from locust.exception import CatchResponseError, LocustError, ResponseError, StopTest
from locust.shape import LoadTestShape

log = logging.getLogger(__name__)

CLIENTS = ("playbook", "fasthttp")
IDEMPOTENT = frozenset(("GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"))  # RFC 9110 9.2.2
REDIRECTS = frozenset((301, 302, 303, 307, 308))
USER_AGENT = "security-dashboard-playbook-load"
MAX_HEAD = 64 * 1024
_NOTHING: frozenset[str] = frozenset()
READ_SIZE = 64 * 1024


class ConnectionClosed(ConnectionError):
    """The server closed (or reset) the connection before the first byte of its answer."""


class ProtocolError(Exception):
    """The server's answer is not HTTP/1.x this client can read."""


class BadStatusCode(Exception):
    """A 4xx/5xx answer (FastHttpUser reports these as failures too)."""


class TooManyRedirects(Exception):
    pass


class RequestTimeout(TimeoutError):
    pass


class Headers(dict[str, str]):
    """Response headers: names lower-cased, looked up case-insensitively; repeated fields
    joined with ", " (Set-Cookie is kept apart, see LoadResponse.set_cookies)."""

    def __getitem__(self, name: str) -> str:
        return dict.__getitem__(self, name.lower())

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self, name.lower() if isinstance(name, str) else name)

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return dict.get(self, name.lower(), default)


# --- the response -----------------------------------------------------------------------------


class LoadResponse:
    """One answer (or the failure to get one: status_code 0, `error` set). With
    catch_response=True it is also the context manager that decides how it is reported."""

    __slots__ = ("_catch", "_entered", "_event", "_head", "_headers", "_manual", "content",
                 "error", "history", "reason", "request_meta", "set_cookies", "status_code",
                 "url", "version")

    def __init__(self, status: int, reason: str, head: bytes, content: bytes, url: str,
                 version: str = "HTTP/1.1") -> None:
        self.status_code, self.reason, self._head = status, reason, head
        self.content, self.url, self.version = content, url, version
        self._headers: Headers | None = None
        self.error: BaseException | None = None
        self.history: list[LoadResponse] = []
        self.set_cookies: list[str] = []
        self.request_meta: dict[str, Any] = {}
        self._catch = self._entered = False
        self._manual: bool | BaseException | None = None
        self._event: Any = None

    @property
    def headers(self) -> Headers:
        """Parsed from the response head at the first access (most checks never look)."""
        if self._headers is None:
            self._headers = _parse_fields(self._head)
        return self._headers

    @headers.setter
    def headers(self, value: Headers) -> None:
        self._headers = value

    @property
    def ok(self) -> bool:
        return 0 < self.status_code < 400

    @property
    def text(self) -> str:
        ctype = self.headers.get("content-type") or ""
        charset = "utf-8"
        for part in ctype.split(";")[1:]:
            k, _, v = part.partition("=")
            if k.strip().lower() == "charset" and v.strip():
                charset = v.strip().strip('"')
        try:
            return self.content.decode(charset, errors="replace")
        except LookupError:
            return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON (bytes straight to json.loads: UTF-8/16/32 detected)."""
        return _json.loads(self.content)

    def raise_for_status(self) -> None:
        if self._manual is not None:
            if isinstance(self._manual, BaseException):
                raise self._manual
            return
        if self.error is not None:
            raise self.error

    # catch_response: Locust's ResponseContextManager semantics
    def __enter__(self) -> LoadResponse:
        if not self._catch:
            raise LocustError("In order to use a with-block for requests, you must also pass "
                              "catch_response=True")
        self._entered = True
        return self

    def __exit__(self, exc: Any, value: Any, tb: Any) -> bool:
        meta = self.request_meta
        if self._manual is not None:
            meta["exception"] = None if self._manual is True else self._manual
            self._event.fire(**meta)
            return exc is None
        if exc:
            if not isinstance(value, ResponseError):
                return False
            meta["exception"] = value
        else:
            meta["exception"] = self.error
        self._event.fire(**meta)
        return True

    def success(self) -> None:
        self._check_entered()
        self._manual = True

    def failure(self, exc: BaseException | str) -> None:
        self._check_entered()
        self._manual = exc if isinstance(exc, BaseException) else CatchResponseError(exc)

    def _check_entered(self) -> None:
        if not self._catch:
            raise LocustError("If you want to change the state of the request, you must pass "
                              "catch_response=True")
        if not self._entered:
            raise LocustError("Tried to set status on a request that has not yet been made; "
                              "use a with-block")


# --- the connection pool and the wire ---------------------------------------------------------


class _Conn:
    __slots__ = ("buf", "sock")

    def __init__(self, sock: Any) -> None:
        self.sock, self.buf = sock, b""

    def close(self) -> None:
        with suppress(OSError):
            self.sock.close()


class _Origin:
    """scheme://host:port, with its Host header and a pool of idle keep-alive connections."""

    __slots__ = ("host", "host_header", "idle", "key", "port", "tls")

    def __init__(self, scheme: str, host: str, port: int) -> None:
        self.tls, self.host, self.port = scheme == "https", host, port
        default = 443 if self.tls else 80
        bracketed = f"[{host}]" if ":" in host else host
        self.host_header = bracketed if port == default else f"{bracketed}:{port}"
        self.key = f"{scheme}://{self.host_header}"
        self.idle: list[_Conn] = []


def _timeout_error(what: str, seconds: float) -> RequestTimeout:
    return RequestTimeout(f"{what} within the {seconds:g} s timeout")


class LoadSession:
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
        self._origins: dict[str, _Origin] = {}
        self._heads: dict[tuple[str, str], tuple[_Origin, str, bytes]] = {}
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
        first_origin: _Origin | None = None
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

    def _origin_of(self, url: str) -> _Origin:
        split = urlsplit(url)
        scheme = split.scheme.lower()
        if scheme not in ("http", "https") or not split.hostname:
            raise ValueError(f"{url!r}: only http:// and https:// URLs can be requested")
        port = split.port or (443 if scheme == "https" else 80)
        key = f"{scheme}://{split.hostname}:{port}"
        origin = self._origins.get(key)
        if origin is None:
            origin = self._origins[key] = _Origin(scheme, split.hostname, port)
        return origin

    def _head(self, method: str, url: str, replaced: frozenset[str] = _NOTHING
              ) -> tuple[_Origin, str, bytes]:
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

    def _exchange(self, origin: _Origin, method: str, wire: bytes, chunks: Any,
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
                raise _timeout_error("the request was not sent", seconds) from None
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

    def _connect(self, origin: _Origin, deadline: float, seconds: float) -> _Conn:
        limit = min(self.connect_timeout, deadline - time.monotonic())
        if limit <= 0:
            raise _timeout_error("no connection", seconds)
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
        return _Conn(sock)

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

    def _recv(self, conn: _Conn, deadline: float, seconds: float, what: str) -> bytes:
        left = deadline - time.monotonic()
        if left <= 0:
            raise _timeout_error(what, seconds)
        sock = conn.sock
        sock.settimeout(left)
        try:
            return sock.recv(READ_SIZE)
        except TimeoutError:
            raise _timeout_error(what, seconds) from None
        except OSError as e:  # ssl's "The read operation timed out" is an OSError too
            if time.monotonic() >= deadline:
                raise _timeout_error(what, seconds) from None
            raise e

    def _read(self, conn: _Conn, origin: _Origin, method: str, deadline: float,
              seconds: float, url: str) -> LoadResponse:
        """Read one response from `conn`; put the connection back in the pool or close it."""
        try:
            buf, conn.buf = conn.buf, b""
            first = not buf
            while True:  # interim 1xx answers are skipped
                end = buf.find(b"\r\n\r\n")
                while end < 0:
                    if len(buf) > MAX_HEAD:
                        raise ProtocolError(f"the response head from {origin.key} is larger "
                                            f"than {MAX_HEAD // 1024} KiB")
                    try:
                        data = self._recv(conn, deadline, seconds, "no response")
                    except ConnectionResetError:
                        if first:
                            raise ConnectionClosed("the connection was reset before the "
                                                   "response") from None
                        raise
                    if not data:
                        if first:
                            raise ConnectionClosed("the server closed the connection before "
                                                   "answering")
                        raise ProtocolError("the server closed the connection in the middle "
                                            "of the response head")
                    first = False
                    scan = max(0, len(buf) - 3)
                    buf += data
                    end = buf.find(b"\r\n\r\n", scan)
                head = buf[:end]
                status, reason, version = _status_line(head)
                buf = buf[end + 4:]
                if status >= 200 or status == 101:
                    break
            # The fields that frame the body, found in one pass; the rest is parsed only
            # when someone reads resp.headers.
            length = chunked = encoding = None
            keep = version == "HTTP/1.1"
            cookies = False
            if b"\r\n " in head or b"\r\n\t" in head:  # obsolete line folding: slow path
                fields = [(k.encode(), v.lower().encode("latin-1")) for k, v in
                          _parse_fields(head).items() if k in _FRAMING_NAMES]
            else:
                fields = _FRAMING.findall(head.lower())
            for name, value in fields:
                if name == b"content-length":
                    length = _content_length(value, length)
                elif name == b"transfer-encoding":
                    chunked = value.rsplit(b",", 1)[-1].strip() == b"chunked"
                elif name == b"connection":
                    keep = b"close" not in value and (keep or b"keep-alive" in value)
                elif name == b"content-encoding":
                    encoding = value.strip()
                else:
                    cookies = True
            if method == "HEAD" or status in (204, 304) or status == 101:
                body = b""
            elif chunked is not None:
                if chunked:
                    body, buf = self._chunked(conn, buf, deadline, seconds)
                else:  # a transfer coding other than chunked last: the body ends at close
                    body, buf, keep = self._until_close(conn, buf, deadline, seconds), b"", False
            elif length is not None:
                if length > self.max_body_bytes:
                    raise ProtocolError(f"the response body ({length} bytes) is larger than "
                                        f"{self.max_body_bytes} bytes")
                if len(buf) >= length:
                    body, buf = buf[:length], buf[length:]
                else:
                    body, buf = self._exactly(conn, buf, length, deadline, seconds), b""
            else:
                body, buf, keep = self._until_close(conn, buf, deadline, seconds), b"", False
            if encoding is not None and body and encoding != b"identity":
                body = self._decode(body, encoding)
        except BaseException:
            conn.close()
            raise
        if keep and not buf and len(origin.idle) < self.concurrency:
            origin.idle.append(conn)
        else:
            conn.close()
        resp = LoadResponse(status, reason, head, body, url, version)
        if cookies:
            resp.set_cookies = [v.decode("latin-1").strip() for v in _SET_COOKIE.findall(head)]
        return resp

    def _exactly(self, conn: _Conn, buf: bytes, n: int, deadline: float, seconds: float
                 ) -> bytes:
        out = bytearray(buf)
        while len(out) < n:
            data = self._recv(conn, deadline, seconds, "no complete response body")
            if not data:
                raise ProtocolError(f"the server closed the connection after {len(out)} of "
                                    f"{n} body bytes")
            out += data
        if len(out) > n:  # a pipelined extra answer we never asked for: the connection is bad
            raise ProtocolError("the server sent more bytes than its Content-Length")
        return bytes(out)

    def _until_close(self, conn: _Conn, buf: bytes, deadline: float, seconds: float) -> bytes:
        out = bytearray(buf)
        while True:
            data = self._recv(conn, deadline, seconds, "no complete response body")
            if not data:
                return bytes(out)
            out += data
            if len(out) > self.max_body_bytes:
                raise ProtocolError(f"the response body is larger than {self.max_body_bytes} "
                                    "bytes")

    def _chunked(self, conn: _Conn, buf: bytes, deadline: float, seconds: float
                 ) -> tuple[bytes, bytes]:
        """Decode a chunked body from buf + the socket; return (body, bytes left over)."""
        out = bytearray()
        data = bytearray(buf)
        pos = 0

        def more() -> None:
            got = self._recv(conn, deadline, seconds, "no complete chunked body")
            if not got:
                raise ProtocolError("the server closed the connection in the middle of a "
                                    "chunked body")
            data.extend(got)

        while True:
            eol = data.find(b"\r\n", pos)
            while eol < 0:
                if len(data) - pos > 4096:
                    raise ProtocolError("a chunk size line is longer than 4 KiB")
                more()
                eol = data.find(b"\r\n", pos)
            size_text = bytes(data[pos:eol]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise ProtocolError(f"bad chunk size {size_text[:20]!r}") from None
            if size < 0 or size_text.startswith((b"-", b"+", b"0x", b"0X")):
                raise ProtocolError(f"bad chunk size {size_text[:20]!r}")
            pos = eol + 2
            if size == 0:  # trailers, then an empty line
                while True:
                    eol = data.find(b"\r\n", pos)
                    while eol < 0:
                        if len(data) - pos > MAX_HEAD:
                            raise ProtocolError("the chunked trailers are too long")
                        more()
                        eol = data.find(b"\r\n", pos)
                    line, pos = data[pos:eol], eol + 2
                    if not line:
                        return bytes(out), bytes(data[pos:])
            if len(out) + size > self.max_body_bytes:
                raise ProtocolError(f"the response body is larger than {self.max_body_bytes} "
                                    "bytes")
            while len(data) < pos + size + 2:
                more()
            out += data[pos:pos + size]
            if data[pos + size:pos + size + 2] != b"\r\n":
                raise ProtocolError("a chunk does not end with CRLF")
            pos += size + 2
            if pos > READ_SIZE:  # keep the buffer small on large bodies
                del data[:pos]
                pos = 0

    def _decode(self, body: bytes, coding: bytes) -> bytes:
        if coding in (b"gzip", b"x-gzip"):
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif coding == b"deflate":
            d = zlib.decompressobj(zlib.MAX_WBITS if body[:1] == b"\x78" else -zlib.MAX_WBITS)
        else:  # identity, or a coding we did not ask for: the body as sent
            return body
        out = d.decompress(body, self.max_body_bytes + 1)
        if len(out) > self.max_body_bytes:
            raise ProtocolError(f"the decoded response body is larger than "
                                f"{self.max_body_bytes} bytes")
        return out


_FRAMING_NAMES = ("content-length", "transfer-encoding", "connection", "content-encoding",
                  "set-cookie")
_FRAMING = re.compile(rb"\r\n(" + b"|".join(n.encode() for n in _FRAMING_NAMES) +
                      rb")[ \t]*:[ \t]*([^\r\n]*)")
_SET_COOKIE = re.compile(br"\r\nset-cookie[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE)


def _status_line(head: bytes) -> tuple[int, str, str]:
    line_end = head.find(b"\r\n")
    line = head if line_end < 0 else head[:line_end]
    code = line[9:12]
    if line[:7] != b"HTTP/1." or line[8:9] != b" " or not code.isdigit() or \
            line[12:13] not in (b"", b" "):
        raise ProtocolError(f"not an HTTP/1.x status line: {line[:60]!r}")
    return int(code), line[13:].decode("latin-1"), line[:8].decode("latin-1")


def _parse_fields(head: bytes) -> Headers:
    """Every field of a response head; repeated fields joined with ", ". Lines that are not
    fields are skipped (the status line and the framing fields were checked already)."""
    headers = Headers()
    name = ""
    for line in head.decode("latin-1").split("\r\n")[1:]:
        if line[:1] in (" ", "\t"):  # obsolete line folding: part of the previous value
            if name:
                dict.__setitem__(headers, name, dict.__getitem__(headers, name) + " " +
                                 line.strip())
            continue
        name, sep, value = line.partition(":")
        name = name.strip().lower()
        if not sep or not name:
            name = ""
            continue
        value = value.strip()
        previous = dict.get(headers, name)
        dict.__setitem__(headers, name, value if previous is None else f"{previous}, {value}")
    return headers


def _content_length(value: bytes, before: int | None) -> int:
    """One Content-Length field; repeated ones ("42, 42" or two fields) must agree."""
    parts = {p.strip() for p in value.split(b",")}
    if len(parts) == 1 and (only := parts.pop()).isdigit() and len(only) < 19 and \
            before in (None, int(only)):
        return int(only)
    raise ProtocolError(f"bad or conflicting Content-Length {value[:40]!r}")


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


# --- the load plan: stages and client settings ------------------------------------------------


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
