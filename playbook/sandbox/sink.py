"""The sandbox's webhook sink: where its Alertmanager's PagerDuty and Slack receivers deliver.

Every POST/PUT is recorded with its arrival time (unix seconds, taken when the request
arrives), path and body, kept in memory and appended to SINK_LOG (JSON lines) for post-mortems.
Read back:
    GET    /received[?path=PREFIX][&contains=TEXT][&since=UNIX]  -> {"count": n, "received": [...]}
    DELETE /received                                              -> {"deleted": n}
    GET    /-/ready
It answers like the real services do: PagerDuty's Events API v2 with 202 and a dedup_key,
Slack's incoming webhook with 200 "ok".
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

LOG = Path(os.environ["SINK_LOG"]) if os.environ.get("SINK_LOG") else None
MAX_KEPT = 5000  # a bound on memory; the log file keeps everything

_received: list[dict[str, Any]] = []
_lock = threading.Lock()
_next_id = 1


async def ready(request: Request) -> Response:
    return PlainTextResponse("ok")


async def received(request: Request) -> Response:
    if request.method == "DELETE":
        with _lock:
            n = len(_received)
            _received.clear()
        return JSONResponse({"deleted": n})
    prefix = request.query_params.get("path", "")
    contains = request.query_params.get("contains", "")
    try:
        since = float(request.query_params.get("since", "0"))
    except ValueError:
        return JSONResponse({"error": "since must be a unix time in seconds"}, status_code=400)
    with _lock:
        items = [r for r in _received if r["path"].startswith(prefix)
                 and r["received_at"] >= since and (not contains or contains in r["raw"])]
    out = [{k: v for k, v in r.items() if k != "raw"} for r in items]
    return JSONResponse({"count": len(out), "received": out})


async def record(request: Request) -> Response:
    global _next_id
    arrived = time.time()
    raw = (await request.body()).decode("utf-8", "replace")
    try:
        body: Any = json.loads(raw)
    except ValueError:
        body = raw
    path = request.url.path
    with _lock:
        entry = {"id": _next_id, "received_at": arrived, "method": request.method,
                 "path": path, "content_type": request.headers.get("content-type", ""),
                 "body": body, "raw": raw}
        _next_id += 1
        _received.append(entry)
        del _received[:-MAX_KEPT]
    if LOG is not None:
        with LOG.open("a") as f:
            f.write(json.dumps({k: v for k, v in entry.items() if k != "raw"}) + "\n")
    if path.startswith("/pagerduty"):
        dedup = body.get("dedup_key", "") if isinstance(body, dict) else ""
        return JSONResponse({"status": "success", "message": "Event processed",
                             "dedup_key": dedup}, status_code=202)
    if path.startswith("/slack"):
        return PlainTextResponse("ok")
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[
    Route("/-/ready", ready),
    Route("/received", received, methods=["GET", "DELETE"]),
    Route("/{path:path}", record, methods=["POST", "PUT"]),
])
