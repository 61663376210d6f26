"""Drives a real Locust user (playbook.loadclient.LoadUser, either client) for
tests/test_loadclient.py, in its own process: Locust patches the interpreter with gevent, which
must not happen inside pytest.

Reads one JSON request per line on stdin:
    {"settings": {"http_client": "playbook", "timeout": 1, ...}, "base": "http://127.0.0.1:P",
     "plan": {...a load plan: its settings instead...},
     "calls": [{"method": "GET", "url": "/x", "kwargs": {...}, "catch": "fail"|"success"}]}
(the calls share one user, so its keep-alive pool and cookies); writes one JSON line back:
    {"results": [{"status", "length", "body", "error", "elapsed", "events": [...]}]}
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from typing import Any

import locust  # noqa: F401 - gevent's patching first
from locust.env import Environment

from playbook.loadclient import LoadUser
from playbook.loadplan import Plan, configure


def _run(spec: dict[str, Any]) -> dict[str, Any]:
    settings = spec.get("settings", {})
    cls = type("DriverUser", (LoadUser,), {"abstract": False, "host": spec["base"], **settings})
    if "plan" in spec:  # the settings as a load plan gives them
        configure([cls], Plan.from_json(json.dumps(spec["plan"]), "the test's plan"))
    env = Environment(user_classes=[cls])
    events: list[dict[str, Any]] = []

    def record(**kw: Any) -> None:
        exc = kw.get("exception")
        events.append({"name": kw["name"], "request_type": kw["request_type"],
                       "response_time": kw["response_time"],
                       "response_length": kw["response_length"],
                       "exception": None if exc is None else f"{type(exc).__name__}: {exc}",
                       "url": kw.get("url")})

    env.events.request.add_listener(record)
    user = cls(env)
    results = []
    for call in spec["calls"]:
        before = len(events)
        t0 = time.monotonic()
        kwargs = dict(call.get("kwargs", {}))
        if call.get("rename"):
            with user.client.rename_request(call["rename"]):
                resp = user.client.request(call.get("method", "GET"), call["url"], **kwargs)
        elif call.get("catch"):
            with user.client.request(call.get("method", "GET"), call["url"],
                                     catch_response=True, **kwargs) as resp:
                if call["catch"] == "fail":
                    resp.failure("the check said no")
                else:
                    resp.success()
        else:
            resp = user.client.request(call.get("method", "GET"), call["url"], **kwargs)
        elapsed = time.monotonic() - t0
        content = resp.content or b""
        error = getattr(resp, "error", None)
        results.append({
            "status": resp.status_code, "length": len(content),
            "sha1": hashlib.sha1(content).hexdigest(),
            "body": content[:4000].decode("latin-1"),
            "error": None if error is None else f"{type(error).__name__}: {error}",
            "elapsed": elapsed, "events": events[before:],
            "client": type(user.client).__name__})
    user.on_stop()
    return {"results": results}


def main() -> int:
    for line in sys.stdin:
        try:
            out = _run(json.loads(line))
        except Exception as e:  # the test shows it; the driver keeps serving
            out = {"crash": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
