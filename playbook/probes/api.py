"""JSON HTTP APIs of the monitoring tools (Prometheus, Alertmanager, a notification sink): one
request, one observation. Never raises for network trouble or a bad answer; `error` says in a
sentence fragment why there is no usable answer (unreachable, refused, throttled, an HTML page,
not JSON, an API error), and `problem()` adds what and where."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from playbook.probes.http import _describe


@dataclass(frozen=True)
class ApiObservation:
    what: str  # "Prometheus", "Alertmanager", "the notification sink"
    method: str
    url: str
    status: int | None = None
    elapsed: float = 0.0
    body: Any = None  # the parsed JSON (or the text when JSON was not expected)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def where(self) -> str:
        return f"{self.method} {self.url}"

    def problem(self) -> str | None:
        return None if self.error is None else f"{self.what} {self.where}: {self.error}"


def _snippet(text: str, n: int = 160) -> str:
    text = " ".join(text.split())
    return text[:n] + ("..." if len(text) > n else "") if text else "(empty)"


def request(client: httpx.Client, what: str, auth_key: str, method: str, url: str,
            expect_json: bool = True, **kwargs: Any) -> ApiObservation:
    """`auth_key` names the profile field to fix when the answer is 401/403."""
    start = time.perf_counter()
    shown = url
    if kwargs.get("params"):
        shown = str(httpx.URL(url, params=kwargs["params"]))
    try:
        resp = client.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        timeout = client.timeout.read or client.timeout.connect or 0
        return ApiObservation(what, method, shown, elapsed=time.perf_counter() - start,
                              error=f"unreachable: {_describe(exc, timeout)}")
    elapsed = time.perf_counter() - start
    ctype = resp.headers.get("content-type", "")
    text = resp.text
    obs = {"what": what, "method": method, "url": shown, "status": resp.status_code,
           "elapsed": elapsed}
    if resp.status_code in (401, 403):
        return ApiObservation(**obs, error=(
            f"HTTP {resp.status_code} {resp.reason_phrase} - the request was refused; check "
            f"{auth_key} (a ${{VAR}} from the environment) - body: {_snippet(text)}"))
    if resp.status_code == 429:
        retry = resp.headers.get("retry-after")
        return ApiObservation(**obs, error=(
            f"HTTP 429 Too Many Requests - throttled"
            f"{f' (Retry-After: {retry} s)' if retry else ''}; retry later or lower the rate"))
    if 300 <= resp.status_code < 400:
        return ApiObservation(**obs, error=(
            f"HTTP {resp.status_code} redirect to {resp.headers.get('location', '?')} - a login "
            "page or proxy in front of the API? point the profile's url at the API itself"))
    if not expect_json:
        if resp.status_code >= 400:
            return ApiObservation(**obs, body=text, error=(
                f"HTTP {resp.status_code} {resp.reason_phrase} - body: {_snippet(text)}"))
        return ApiObservation(**obs, body=text)
    if "html" in ctype or text.lstrip()[:15].lower().startswith(("<!doctype", "<html")):
        return ApiObservation(**obs, error=(
            f"answered an HTML page (HTTP {resp.status_code}, {ctype or 'no content type'}) "
            f"instead of the API's JSON - is the url the {what} server itself, not a login page "
            f"or a proxy? - body: {_snippet(text)}"))
    try:
        body = json.loads(text) if text.strip() else None
    except ValueError:
        if resp.status_code >= 400:
            return ApiObservation(**obs, body=text, error=(
                f"HTTP {resp.status_code} {resp.reason_phrase} - body: {_snippet(text)}"))
        return ApiObservation(**obs, error=(
            f"answered HTTP {resp.status_code} with a body that is not JSON "
            f"({ctype or 'no content type'}): {_snippet(text)}"))
    if isinstance(body, dict) and body.get("status") == "error":
        # Prometheus's API error envelope: {"status": "error", "errorType", "error"}
        return ApiObservation(**obs, body=body, error=(
            f"HTTP {resp.status_code}, API error {body.get('errorType', '?')}: "
            f"{body.get('error', '')}"))
    if resp.status_code >= 400:
        return ApiObservation(**obs, body=body, error=(
            f"HTTP {resp.status_code} {resp.reason_phrase} - body: {_snippet(text)}"))
    warnings = list(body.get("warnings") or []) if isinstance(body, dict) else []
    return ApiObservation(**obs, body=body, warnings=warnings)

