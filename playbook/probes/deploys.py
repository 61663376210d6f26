"""Recent deploys (playbook 1.2 and 3.3: `gh run list --workflow=security-dashboard-production-
deploy.yml --limit 10 --json createdAt,conclusion,headSha`) through the GitHub REST API:
GET {api_url}/repos/{repo}/actions/workflows/{workflow}/runs. Read-only; never asserts.

One request per call with the profile's timeout and no retry. A failure - 401 bad credentials,
403 rate limit (x-ratelimit-remaining: 0, reset at x-ratelimit-reset) or forbidden, 404, an
unreachable API, a body that is not the API's JSON - is an observation whose `error` is one
sentence. The token is sent as `Authorization: Bearer` and never appears in a sentence.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from playbook import config


@dataclass(frozen=True)
class DeployRun:
    id: int
    run_number: int
    status: str  # queued | in_progress | completed ...
    conclusion: str  # success | failure | cancelled ... ("" while running)
    created_at: dt.datetime | None
    head_sha: str
    head_branch: str
    event: str
    actor: str
    url: str

    def describe(self) -> str:
        when = self.created_at.strftime("%Y-%m-%d %H:%M:%SZ") if self.created_at else "?"
        outcome = self.conclusion or self.status
        return (f"run #{self.run_number} {outcome} at {when} ({self.head_branch}@"
                f"{self.head_sha[:7]}, {self.url})")


@dataclass(frozen=True)
class DeploysObservation:
    where: str  # "workflow X of owner/repo at https://api.github.com"
    runs: list[DeployRun] = field(default_factory=list)  # newest first
    error: str | None = None

    def failed_since(self, since: dt.datetime) -> list[DeployRun]:
        return [r for r in self.runs if r.conclusion == "failure" and r.created_at is not None
                and r.created_at >= since]


def _time(value: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def _run(raw: dict[str, Any]) -> DeployRun:
    return DeployRun(int(raw.get("id") or 0), int(raw.get("run_number") or 0),
                     str(raw.get("status") or ""), str(raw.get("conclusion") or ""),
                     _time(raw.get("created_at")), str(raw.get("head_sha") or ""),
                     str(raw.get("head_branch") or ""), str(raw.get("event") or ""),
                     str((raw.get("actor") or {}).get("login") or ""),
                     str(raw.get("html_url") or ""))


def recent_runs(section: config.Github, client: httpx.Client,
                limit: int | None = None) -> DeploysObservation:
    """The workflow's last `limit` runs (default: the profile's `runs`), through `client`
    (playbook.clients.github_client: the token, the API's headers, the timeout)."""
    limit = limit or section.runs
    base = section.api_url.rstrip("/")
    url = (f"{base}/repos/{section.repo}/actions/workflows/{quote(section.workflow, safe='')}"
           "/runs")
    where = f"GET {url}"
    timeout = section.timeout
    try:
        resp = client.get(url, params={"per_page": max(1, min(limit, 100))})
    except httpx.TimeoutException:
        return DeploysObservation(where, error=f"{where}: no answer within {timeout:g} s "
                                  "(timeout) - is the GitHub API reachable from here?")
    except httpx.HTTPError as e:
        return DeploysObservation(where, error=f"{where}: unreachable: {type(e).__name__}: "
                                  f"{str(e).replace(section.token, '***') if section.token else e}")
    problem = _problem(resp, section)
    if problem:
        return DeploysObservation(where, error=f"{where}: {problem}")
    try:
        body = resp.json()
        runs = [_run(r) for r in body["workflow_runs"][:limit]]
    except (ValueError, KeyError, TypeError, AttributeError):
        text = " ".join(resp.text.split())[:120]
        return DeploysObservation(where, error=f"{where}: expected the API's JSON with "
                                  f"`workflow_runs`, got: {text or '(empty)'}")
    return DeploysObservation(where, runs)


def _message(resp: httpx.Response) -> str:
    try:
        return str(resp.json().get("message") or "")
    except (ValueError, AttributeError):
        return " ".join(resp.text.split())[:120]


def _problem(resp: httpx.Response, section: config.Github) -> str | None:
    if resp.status_code == 200:
        return None
    msg = _message(resp)
    if resp.status_code == 401:
        return (f"401 Unauthorized ({msg or 'Bad credentials'}) - the token in GITHUB_TOKEN "
                "is wrong or expired")
    if resp.status_code in (403, 429) and (resp.headers.get("x-ratelimit-remaining") == "0"
                                           or resp.status_code == 429
                                           or "rate limit" in msg.lower()):
        reset = resp.headers.get("x-ratelimit-reset", "")
        when = ""
        if reset.isdigit():
            t = dt.datetime.fromtimestamp(int(reset), dt.UTC)
            when = f"; it resets at {t:%H:%M:%S}Z"
        retry = resp.headers.get("retry-after")
        if retry:
            when += f" (retry after {retry} s)"
        return (f"{resp.status_code}: the API rate limit is used up ({msg or 'rate limited'})"
                f"{when} - use a token with its own quota or query less often")
    if resp.status_code == 403:
        return (f"403 Forbidden ({msg}) - the token may not read Actions of {section.repo} "
                "(it needs actions:read)")
    if resp.status_code == 404:
        return (f"404 Not Found ({msg}) - check github.repo ({section.repo}) and "
                f"github.workflow ({section.workflow}), and that the token can see the repo")
    return f"expected HTTP 200, got {resp.status_code} {resp.reason_phrase}: {msg}"
