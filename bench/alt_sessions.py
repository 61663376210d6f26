"""The other approaches to the journeys' client, for bench/run_bench.py (BENCH_SESSION).

Both keep playbook.loadclient.LoadSession's request path (request building and caching,
catch_response, the report to `events.request`) and swap only what issue 15 asked to compare:
- `ghc`: the wire through geventhttpclient's HTTPClient (its connection pool and C parser),
  a leaner path than FastHttpSession over the same library;
- `httptools`: llhttp (httptools) parsing the answers read from the same gevent sockets as
  LoadSession's own pure-Python parser.
Bench only: GET with Content-Length or chunked answers, no redirects or cookies needed here.
"""

from __future__ import annotations

from typing import Any

from geventhttpclient import HTTPClient

from playbook.loadclient import LoadSession
from playbook.loadwire import Conn, ConnectionClosed, Headers, LoadResponse, Origin, ProtocolError


class GhcSession(LoadSession):
    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._clients: dict[str, HTTPClient] = {}

    def _exchange(self, origin: Origin, method: str, wire: bytes, chunks: Any,
                  deadline: float, seconds: float, url: str) -> LoadResponse:
        client = self._clients.get(origin.key)
        if client is None:
            client = self._clients[origin.key] = HTTPClient(
                origin.host, origin.port, ssl=origin.tls, concurrency=self.concurrency,
                network_timeout=self.timeout, connection_timeout=self.connect_timeout)
        # the request line's target, from the cached head (what LoadSession would send)
        target = wire[wire.index(b" ") + 1:wire.index(b" HTTP/1.1")].decode("latin-1")
        resp = client.request(method, target)
        body = resp.read()
        headers = Headers()
        for k, v in resp.items():
            dict.__setitem__(headers, k.lower(), v)
        out = LoadResponse(resp.status_code, "", b"", body, url)
        out.headers = headers
        return out

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        super().close()


class _Protocol:
    __slots__ = ("done", "headers", "keep", "parser", "parts")

    def __init__(self) -> None:
        self.headers = Headers()
        self.parts: list[bytes] = []
        self.done = self.keep = False
        self.parser: Any = None

    def on_headers_complete(self) -> None:
        self.keep = self.parser.should_keep_alive()  # llhttp forgets it after the message

    def on_header(self, name: bytes, value: bytes) -> None:
        dict.__setitem__(self.headers, name.decode("latin-1").lower(), value.decode("latin-1"))

    def on_body(self, body: bytes) -> None:
        self.parts.append(body)

    def on_message_complete(self) -> None:
        self.done = True


class HttptoolsSession(LoadSession):
    def __init__(self, *args: Any, **kw: Any) -> None:
        import httptools

        super().__init__(*args, **kw)
        self._parser = httptools.HttpResponseParser
        self._error = httptools.HttpParserError

    def _read(self, conn: Conn, origin: Origin, method: str, deadline: float,
              seconds: float, url: str) -> LoadResponse:
        proto = _Protocol()
        parser = proto.parser = self._parser(proto)
        first = True
        try:
            while not proto.done:
                data = self._recv(conn, deadline, seconds, "no response")
                if not data:
                    if first:
                        raise ConnectionClosed("the server closed the connection before "
                                               "answering")
                    raise ProtocolError("the server closed the connection mid-response")
                first = False
                try:
                    parser.feed_data(data)
                except self._error as e:
                    raise ProtocolError(str(e)) from None
        except BaseException:
            conn.close()
            raise
        if proto.keep and len(origin.idle) < self.concurrency:
            origin.idle.append(conn)
        else:
            conn.close()
        body = b"".join(proto.parts)
        out = LoadResponse(parser.get_status_code(), "", b"", body, url)
        out.headers = proto.headers
        return out


SESSIONS: dict[str, type[LoadSession]] = {"ghc": GhcSession, "httptools": HttptoolsSession}
