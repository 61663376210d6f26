"""The wire under the journeys' client (playbook/loadclient.py): one HTTP/1.1 response read from
a gevent socket within a deadline, framed by Content-Length, chunked transfer coding or the end
of the connection (RFC 9112 6.3), interim 1xx skipped, gzip/deflate decoded, bounded; the
response object with Locust's catch_response semantics.

Cheap on purpose: only the fields that frame the body are looked for (one regex over the
lower-cased head); `resp.headers` is parsed when someone reads it (bench/RESULTS.md).

Shipped beside the locustfile by deploy/ (the stock image has no playbook package): imports
only the standard library, gevent and Locust.
"""

from __future__ import annotations

import json as _json
import re
import time
import zlib
from contextlib import suppress
from typing import Any

from locust.exception import CatchResponseError, LocustError, ResponseError

MAX_HEAD = 64 * 1024
READ_SIZE = 64 * 1024


class ConnectionClosed(ConnectionError):
    """The server closed (or reset) the connection before the first byte of its answer."""


class ProtocolError(Exception):
    """The server's answer is not HTTP/1.x this client can read."""




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


class Conn:
    __slots__ = ("buf", "sock")

    def __init__(self, sock: Any) -> None:
        self.sock, self.buf = sock, b""

    def close(self) -> None:
        with suppress(OSError):
            self.sock.close()


class Origin:
    """scheme://host:port, with its Host header and a pool of idle keep-alive connections."""

    __slots__ = ("host", "host_header", "idle", "key", "port", "tls")

    def __init__(self, scheme: str, host: str, port: int) -> None:
        self.tls, self.host, self.port = scheme == "https", host, port
        default = 443 if self.tls else 80
        bracketed = f"[{host}]" if ":" in host else host
        self.host_header = bracketed if port == default else f"{bracketed}:{port}"
        self.key = f"{scheme}://{self.host_header}"
        self.idle: list[Conn] = []


def timeout_error(what: str, seconds: float) -> RequestTimeout:
    return RequestTimeout(f"{what} within the {seconds:g} s timeout")


class WireReader:
    """Reads responses for LoadSession; `concurrency` bounds the idle connections kept per
    origin, `max_body_bytes` every body."""

    concurrency: int
    max_body_bytes: int

    def _recv(self, conn: Conn, deadline: float, seconds: float, what: str) -> bytes:
        left = deadline - time.monotonic()
        if left <= 0:
            raise timeout_error(what, seconds)
        sock = conn.sock
        sock.settimeout(left)
        try:
            return sock.recv(READ_SIZE)
        except TimeoutError:
            raise timeout_error(what, seconds) from None
        except OSError as e:  # ssl's "The read operation timed out" is an OSError too
            if time.monotonic() >= deadline:
                raise timeout_error(what, seconds) from None
            raise e

    def _read(self, conn: Conn, origin: Origin, method: str, deadline: float,
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

    def _exactly(self, conn: Conn, buf: bytes, n: int, deadline: float, seconds: float
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

    def _until_close(self, conn: Conn, buf: bytes, deadline: float, seconds: float) -> bytes:
        out = bytearray(buf)
        while True:
            data = self._recv(conn, deadline, seconds, "no complete response body")
            if not data:
                return bytes(out)
            out += data
            if len(out) > self.max_body_bytes:
                raise ProtocolError(f"the response body is larger than {self.max_body_bytes} "
                                    "bytes")

    def _chunked(self, conn: Conn, buf: bytes, deadline: float, seconds: float
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
