"""A local GitHub REST API for the deploy-history tests: GET /repos/{owner}/{repo}/actions/
workflows/{workflow}/runs with GitHub's JSON, its 401 (Bad credentials) and its rate-limit 403
(x-ratelimit-remaining: 0, x-ratelimit-reset)."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "ghp_fakeTokenForTheTests0123456789abcdef"
REPO = "candlefish-ai/security-dashboard"
WORKFLOW = "security-dashboard-production-deploy.yml"


def run(n: int, conclusion: str, minutes_ago: float, sha: str = "0123456789abcdef") -> dict:
    created = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes_ago)
    stamp = created.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"id": 9000 + n, "name": "Production Deploy", "run_number": n,
            "head_branch": "main", "head_sha": sha, "event": "workflow_dispatch",
            "status": "completed", "conclusion": conclusion, "created_at": stamp,
            "updated_at": stamp, "run_started_at": stamp,
            "html_url": f"https://github.com/{REPO}/actions/runs/{9000 + n}",
            "actor": {"login": "deployer"}}


@dataclass
class FakeGithub:
    url: str = ""
    runs: list[dict] = field(default_factory=list)
    mode: str = "ok"  # ok | ratelimit | html
    requests: list[dict[str, Any]] = field(default_factory=list)


@contextmanager
def fake_github(runs: list[dict] | None = None) -> Iterator[FakeGithub]:
    state = FakeGithub(runs=list(runs or []))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append({"path": self.path, "headers": dict(self.headers)})
            path = self.path.split("?")[0]
            want = f"/repos/{REPO}/actions/workflows/{WORKFLOW}/runs"
            headers = {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "4999"}
            if self.headers.get("authorization") != f"Bearer {TOKEN}":
                status, body = 401, {"message": "Bad credentials",
                                     "documentation_url": "https://docs.github.com/rest"}
            elif state.mode == "ratelimit":
                reset = int(time.time()) + 600
                headers = {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0",
                           "x-ratelimit-reset": str(reset)}
                status, body = 403, {"message": "API rate limit exceeded for user ID 1.",
                                     "documentation_url": "https://docs.github.com/rest"}
            elif state.mode == "html":
                self._send(200, b"<html>proxy login</html>", "text/html", headers)
                return
            elif path != want:
                status, body = 404, {"message": "Not Found"}
            else:
                status, body = 200, {"total_count": len(state.runs),
                                     "workflow_runs": state.runs}
            self._send(status, json.dumps(body).encode(), "application/json", headers)

        def _send(self, status: int, data: bytes, ctype: str, headers: dict[str, str]) -> None:
            self.send_response(status)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def github_section(url: str, token: str = "${GITHUB_TOKEN:-}") -> dict[str, Any]:
    return {"api_url": url, "repo": REPO, "workflow": WORKFLOW, "token": token,
            "timeout": 2.0}
