"""Login and admin endpoints of the stand-in backend: the signals a security incident leaves.

Users live in the database with salted PBKDF2 hashes. A failed login is logged as one JSON
line with the event `authentication_failed` (user, source address, time) and counted in
`security_dashboard_auth_failures_total`. Admin endpoints demand a bearer token of an admin.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import time
from typing import Any

from prometheus_client import Counter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ITERATIONS = 20_000  # PBKDF2 rounds: real cost per guess, cheap enough for a sandbox
TOKEN_TTL = 3600
SECRET = os.environ.get("SANDBOX_TOKEN_SECRET", "").encode() or secrets.token_bytes(32)

AUTH_ATTEMPTS = Counter("security_dashboard_auth_attempts_total", "Login attempts", ["result"])
AUTH_FAILURES = Counter("security_dashboard_auth_failures_total", "Failed logins")


def hash_password(password: str, salt: bytes | None = None) -> tuple[str, str]:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, ITERATIONS)
    return salt.hex(), digest.hex()


def verify(password: str, salt_hex: str, hash_hex: str) -> bool:
    _, digest = hash_password(password, bytes.fromhex(salt_hex))
    return hmac.compare_digest(digest, hash_hex)


def issue_token(user: str, role: str) -> str:
    body = base64.urlsafe_b64encode(json.dumps(
        {"sub": user, "role": role, "exp": int(time.time()) + TOKEN_TTL}).encode()).decode()
    sig = hmac.new(SECRET, body.encode(), hashlib.sha256).hexdigest()
    return f"{body}.{sig}"


def read_token(header: str) -> dict[str, Any] | None:
    if not header.lower().startswith("bearer "):
        return None
    token = header[7:].strip()
    body, _, sig = token.rpartition(".")
    want = hmac.new(SECRET, body.encode(), hashlib.sha256).hexdigest()
    if not body or not hmac.compare_digest(sig, want):
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(body.encode()))
    except ValueError:
        return None
    return claims if claims.get("exp", 0) > time.time() else None


def source_address(request: Request) -> str:
    # Behind the front, the client's address is the first hop of X-Forwarded-For.
    forwarded = request.headers.get("x-forwarded-for", "")
    return forwarded.split(",")[0].strip() or (request.client.host if request.client else "")


def security_event(event: str, **fields: Any) -> None:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    print(json.dumps({"time": stamp, "event": event, **fields}), flush=True)


def make_routes(query: Any) -> list[Route]:
    async def login(request: Request) -> Response:
        try:
            body = await request.json()
            user, password = str(body["username"]), str(body["password"])
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "expected JSON with username and password"},
                                status_code=400)
        rows = await query("SELECT salt, hash, role FROM users WHERE username = %s", user)
        ok = bool(rows) and await asyncio.to_thread(verify, password, rows[0]["salt"],
                                                    rows[0]["hash"])
        if not ok:
            AUTH_ATTEMPTS.labels("failure").inc()
            AUTH_FAILURES.inc()
            security_event("authentication_failed", user=user, source=source_address(request),
                           reason="unknown user" if not rows else "bad password")
            return JSONResponse({"error": "invalid credentials"}, status_code=401)
        AUTH_ATTEMPTS.labels("success").inc()
        return JSONResponse({"token": issue_token(user, rows[0]["role"]),
                             "expires_in": TOKEN_TTL})

    def admin(sql: str):
        async def handler(request: Request) -> Response:
            claims = read_token(request.headers.get("authorization", ""))
            if claims is None:
                security_event("unauthorized_request", path=request.url.path,
                               source=source_address(request),
                               agent=request.headers.get("user-agent", ""))
                return JSONResponse({"error": "authentication required"}, status_code=401,
                                    headers={"WWW-Authenticate": "Bearer"})
            if claims.get("role") != "admin":
                security_event("forbidden_request", path=request.url.path,
                               user=claims.get("sub"), source=source_address(request),
                               agent=request.headers.get("user-agent", ""))
                return JSONResponse({"error": "admin role required"}, status_code=403)
            rows = await query(sql)
            return Response(json.dumps({"items": rows}, default=str),
                            media_type="application/json")

        return handler

    return [
        Route("/api/auth/login", login, methods=["POST"]),
        Route("/api/admin/users", admin("SELECT username, role FROM users ORDER BY username")),
        Route("/api/admin/audit", admin(
            "SELECT id, title, severity, source, created_at FROM alerts ORDER BY id LIMIT 20")),
    ]
