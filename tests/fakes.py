"""Small local HTTP servers that misbehave on purpose (loopback only, stopped by the test)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# path -> (status, content type, body, delay in seconds)
Route = tuple[int, str, str, float]


@contextmanager
def serve(routes: dict[str, Route], default: Route | None = None,
          headers: dict[str, str] | None = None) -> Iterator[str]:
    """Serve `routes` on a free port of 127.0.0.1; yields the base URL. `headers` are sent
    with every answer (BaseHTTPRequestHandler also sends its own Server: BaseHTTP/x Python/y)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, ctype, body, delay = routes.get(self.path.split("?")[0],
                                                    default or (404, "text/plain", "no", 0))
            if delay:
                time.sleep(delay)
            data = body.encode()
            try:
                self.send_response(status)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass  # the client gave up (timeout test)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
