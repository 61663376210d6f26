"""playbook/notify.py against local servers that answer like Slack's incoming webhooks and
PagerDuty's Events API v2, including their error answers."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from playbook import cli, notify
from playbook import config as profiles

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
SLACK_TOKEN = "T0SECRET/B0SECRET/xoxWebhookSecret42"
ROUTING_KEY = "R0UTINGKEYsecret0123456789abcdef"
START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

# PLAYBOOK.md "Communication Templates", verbatim.
TEMPLATES = {
    "declared": """🚨 INCIDENT DECLARED - [P0/P1] Security Dashboard

Severity: [P0/P1/P2]
Status: Investigating
Impact: [Brief description of user impact]
Affected Services: Security Dashboard
Started: [Timestamp]
Incident Commander: @[username]
Response Team: @[team-members]

Incident Bridge: [Meeting link]
Status Page: https://status.candlefish.ai
Runbook: [Link to this playbook]

Next update in 15 minutes.""",
    "update": """📋 INCIDENT UPDATE - [Incident ID]

Status: [Investigating/Identified/Fixing/Monitoring]
Duration: [X minutes]
Progress: [Brief description of progress]
ETA to Resolution: [Estimate if available]
Next Steps: [What's being done next]

Next update in 15 minutes or when status changes.""",
    "resolved": """✅ INCIDENT RESOLVED - [Incident ID]

Duration: [Total duration]
Root Cause: [Brief technical explanation]
Fix Applied: [What was done to resolve]
Validation: [How we confirmed the fix]

Services are now fully operational.
Post-incident review scheduled for [Date/Time].

Thank you to everyone who helped resolve this incident! 👏""",
}


# --- fake Slack / PagerDuty ------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    ctype: str = "text/plain"


@dataclass
class FakeService:
    url: str
    answers: list[Answer]
    requests: list[dict] = field(default_factory=list)

    def bodies(self) -> list[dict]:
        return [json.loads(r["body"]) for r in self.requests]


@contextmanager
def fake_service(answers: list[Answer], path: str = "/") -> Iterator[FakeService]:
    """Answers POSTs in order; the last answer repeats. Loopback only."""
    svc = FakeService("", list(answers))
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length)
            with lock:
                svc.requests.append({"path": self.path, "body": raw.decode(),
                                     "ctype": self.headers.get("content-type")})
                n = len(svc.requests)
                ans = svc.answers[min(n, len(svc.answers)) - 1]
            if ans.delay:
                time.sleep(ans.delay)
            data = ans.body.encode()
            try:
                self.send_response(ans.status)
                self.send_header("content-type", ans.ctype)
                for k, v in ans.headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass  # the client gave up (timeout test)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    svc.url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    try:
        yield svc
    finally:
        server.shutdown()
        server.server_close()


def slack(status: int, text: str, **kw: object) -> Answer:
    return Answer(status, text, **kw)  # type: ignore[arg-type]


def pd(status: int, data: dict, **kw: object) -> Answer:
    return Answer(status, json.dumps(data), ctype="application/json", **kw)  # type: ignore[arg-type]


PD_OK = {"status": "success", "message": "Event processed",
         "dedup_key": "security-dashboard/INC-1"}
PD_BAD = {"status": "invalid event", "message": "Event object is invalid",
          "errors": ["'payload.severity' is invalid (must be one of: critical, error, warning, "
                     "info)"]}


def cfg(slack_url: str = "", pd_url: str = "http://127.0.0.1:9/v2/enqueue",
        **kw: object) -> profiles.Notify:
    base = profiles.Notify(slack_webhook_url=slack_url, pagerduty_routing_key=ROUTING_KEY,
                           pagerduty_url=pd_url, timeout=1.0, retries=2, backoff_seconds=0.05,
                           max_backoff_seconds=2.0, response_team=["platform-team"],
                           bridge_url="https://meet.google.com/incident-bridge")
    return replace(base, **kw)


def incident(**kw: object) -> notify.Incident:
    args = {"id": "INC-1", "severity": "P0", "impact": "Complete service outage",
            "started": START}
    return notify.Incident(**{**args, **kw})  # type: ignore[arg-type]


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def msg(kind: str, c: profiles.Notify, channel: str, inc: notify.Incident | None = None
        ) -> notify.Message:
    found = [m for m in notify.messages(kind, inc or incident(), c) if m.channel == channel]
    assert found, f"no {channel} message for {kind}"
    return found[0]


# --- templates -------------------------------------------------------------------------------


def _playbook() -> Path | None:
    for p in (ROOT / "PLAYBOOK.md", ROOT.parent / "shared" / "PLAYBOOK.md"):
        if p.is_file():
            return p
    return None


def test_templates_are_the_playbooks() -> None:
    """The copies above are the playbook's own blocks (when PLAYBOOK.md is beside the project)."""
    path = _playbook()
    if path is None:
        pytest.skip("PLAYBOOK.md is not beside the project; the embedded copy is used")
    text = path.read_text()
    section = text.split("## Communication Templates", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```\n(.*?)\n```", section, re.S)
    assert blocks == [TEMPLATES["declared"], TEMPLATES["update"], TEMPLATES["resolved"]]


def _pattern(template_line: str) -> re.Pattern[str]:
    """A playbook line as a regex: each [placeholder] is any non-empty text."""
    parts = re.split(r"\[[^\]]+\]", template_line)
    return re.compile("^" + ".+".join(re.escape(p) for p in parts) + "$")


@pytest.mark.parametrize("kind", notify.KINDS)
def test_rendered_messages_follow_the_playbook_templates(kind: str) -> None:
    inc = incident(progress="Rolled back to v1.4.1", eta="20 minutes",
                   next_steps="Watch the error rate", root_cause="Bad config in v1.4.2",
                   fix_applied="Rollback", validation="playbook gate passed",
                   review_at="2024-05-02 14:00 PST", resolved=START + timedelta(minutes=72))
    text = notify.render(kind, inc, cfg(), now=START + timedelta(minutes=25))
    rendered = text.splitlines()
    template = TEMPLATES[kind].splitlines()
    # Every template line, blank lines included, matches the rendered line in the same order;
    # the only extra line is the declaration's incident id.
    extra = [line for line in rendered if line.startswith("Incident ID: ")]
    assert extra == (["Incident ID: INC-1"] if kind == "declared" else [])
    body = [line for line in rendered if line not in extra]
    assert len(body) == len(template), text
    for want, got in zip(template, body, strict=True):
        assert _pattern(want).match(got), f"{got!r} does not follow the playbook's {want!r}"
    assert "[" not in text  # no placeholder left


def test_rendered_values() -> None:
    c = cfg()
    declared = notify.render("declared", incident(), c)
    assert declared.startswith("🚨 INCIDENT DECLARED - P0 Security Dashboard\n")
    assert "Started: 2024-05-01 12:00 UTC" in declared
    assert "Incident Commander: @oncall-engineer" in declared
    assert "Response Team: @platform-team" in declared
    assert "Incident Bridge: https://meet.google.com/incident-bridge" in declared
    assert f"Runbook: {notify.PLAYBOOK_URL}" in declared
    update = notify.render("update", incident(status="Fixing"), c,
                           now=START + timedelta(minutes=25))
    assert "Duration: 25 minutes" in update and "Status: Fixing" in update
    resolved = notify.render("resolved", incident(resolved=START + timedelta(minutes=72)), c)
    assert resolved.startswith("✅ INCIDENT RESOLVED - INC-1\n")
    assert "Duration: 1 h 12 min" in resolved


def test_bad_input_is_one_sentence() -> None:
    with pytest.raises(notify.NotifyError, match="incident id"):
        notify.Incident(id="INC 1; rm -rf /")
    with pytest.raises(notify.NotifyError, match="severity must be one of"):
        notify.Incident(id="INC-1", severity="P9")
    with pytest.raises(notify.NotifyError, match="unknown message kind"):
        notify.render("closed", incident())


# --- escalation ------------------------------------------------------------------------------


@pytest.mark.parametrize("severity, minutes, due", [
    ("P0", 0, ["pagerduty"]),
    ("P0", 4.9, ["pagerduty"]),
    ("P0", 5, ["pagerduty", "slack"]),
    ("P0", 12, ["pagerduty", "slack", "email"]),
    ("P0", 20, ["pagerduty", "slack", "email", "phone"]),
    ("P0", 45, ["pagerduty", "slack", "email", "phone", "executive_briefing"]),
    ("P1", 14, ["pagerduty"]),
    ("P1", 15, ["pagerduty", "slack"]),
    ("P1", 60, ["pagerduty", "slack", "email"]),
    ("P1", 239, ["pagerduty", "slack", "email"]),
    ("P1", 240, ["pagerduty", "slack", "email", "status_review"]),
    ("P2", 0, ["slack"]),
])
def test_due_steps_follow_the_escalation_matrix(severity: str, minutes: float,
                                                due: list[str]) -> None:
    assert [s.action for s in notify.due_steps(severity, minutes)] == due


def test_escalation_matrix_from_the_profile(tmp_path: Path) -> None:
    prod = profiles.load("production", environ={})
    assert prod.notify is not None
    assert notify.escalation("P0", prod.notify) == profiles.default_escalation()["P0"]
    assert notify.describe_step(notify.escalation("P1", prod.notify)[3]) == \
        "+4 hours: Status review -> Director of Engineering"
    nxt = notify.next_step("P0", 7, prod.notify)
    assert nxt is not None and (nxt.after_minutes, nxt.action) == (10, "email")
    assert notify.next_step("P0", 31, prod.notify) is None

    raw = yaml.safe_load((profiles.BUNDLED / "staging.yaml").read_text())
    raw["notify"]["escalation"] = {"P1": [{"after_minutes": 0, "action": "slack",
                                          "stakeholder": "Team"},
                                         {"after_minutes": 2, "action": "pagerduty",
                                          "stakeholder": "On-call"}]}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    custom = profiles.load(str(path), environ={})
    assert [s.action for s in notify.due_steps("P1", 1, custom.notify)] == ["slack"]
    assert not notify.pages("P1", custom.notify)  # no page at +0: no PagerDuty trigger
    assert [m.channel for m in notify.messages("declared", incident(severity="P1"),
                                               custom.notify)] == ["slack"]
    # P0 is not in the profile's matrix: the playbook's applies.
    assert notify.pages("P0", custom.notify)

    raw["notify"]["escalation"] = {"P1": [{"after_minutes": 0, "action": "carrier_pigeon",
                                          "stakeholder": "Team"}]}
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    bad = profiles.load(str(path), environ={})
    with pytest.raises(notify.NotifyError, match=r"escalation\.P1\[0\]\.action: unknown action"):
        notify.due_steps("P1", 0, bad.notify)
    raw["notify"]["escalation"] = {"P1": [{"after_minutes": 0, "action": "slack"}]}
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    with pytest.raises(profiles.ProfileError, match="stakeholder: required key is missing"):
        profiles.load(str(path), environ={})


def test_profile_secrets_come_from_the_environment() -> None:
    p = profiles.load("staging", environ={"SLACK_INCIDENT_WEBHOOK": "https://hooks.example/x",
                                          "PAGERDUTY_ROUTING_KEY": ROUTING_KEY})
    assert p.notify is not None
    assert p.notify.slack_webhook_url == "https://hooks.example/x"
    assert p.notify.pagerduty_routing_key == ROUTING_KEY
    local = profiles.load("local", environ={})
    assert local.notify is not None and local.notify.slack_webhook_url == ""  # not configured


# --- PagerDuty events ------------------------------------------------------------------------


def test_pagerduty_events_and_dedup_key() -> None:
    c = cfg()
    a = incident(started=START)
    b = incident(started=START + timedelta(hours=1), impact="something else")
    assert a.dedup_key == b.dedup_key == "security-dashboard/INC-1"
    assert incident(id="INC-2").dedup_key != a.dedup_key
    trigger = msg("declared", c, "pagerduty", a).body
    resolve = msg("resolved", c, "pagerduty", a).body
    assert trigger["dedup_key"] == resolve["dedup_key"] == a.dedup_key
    assert (trigger["event_action"], resolve["event_action"]) == ("trigger", "resolve")
    assert trigger["routing_key"] == resolve["routing_key"] == ROUTING_KEY
    assert trigger["payload"]["summary"].startswith("[P0] INC-1 Security Dashboard")
    assert trigger["payload"]["source"] and len(trigger["payload"]["summary"]) <= 1024
    for level, pd_sev in [("P0", "critical"), ("P1", "error")]:
        body = msg("declared", c, "pagerduty", incident(severity=level)).body
        assert body["payload"]["severity"] == pd_sev
    assert notify.PD_SEVERITY == {"P0": "critical", "P1": "error", "P2": "warning",
                                  "P3": "info"}
    # Updates are Slack only; P2 does not page by the playbook's matrix.
    assert [m.channel for m in notify.messages("update", a, c)] == ["slack"]
    assert [m.channel for m in notify.messages("declared", incident(severity="P2"), c)] == \
        ["slack"]


def test_pagerduty_trigger_accepted() -> None:
    with fake_service([pd(202, PD_OK)], "/v2/enqueue") as svc:
        c = cfg(pd_url=svc.url)
        d = notify.deliver(msg("declared", c, "pagerduty"), c, sleep=Sleeps())
    assert d.ok and d.attempts == 1 and d.status == 202 and d.detail == "success"
    assert d.dedup_key == "security-dashboard/INC-1"
    (sent,) = svc.bodies()
    assert sent["routing_key"] == ROUTING_KEY and sent["event_action"] == "trigger"
    assert svc.requests[0]["ctype"] == "application/json"


def test_pagerduty_5xx_then_success_backs_off_exponentially() -> None:
    sleeps = Sleeps()
    with fake_service([pd(500, {"status": "error"}), pd(503, {"status": "error"}),
                       pd(202, PD_OK)]) as svc:
        c = cfg(pd_url=svc.url, backoff_seconds=1.0, retries=3)
        d = notify.deliver(msg("resolved", c, "pagerduty"), c, sleep=sleeps)
    assert d.ok and d.attempts == 3
    assert len(svc.requests) == 3
    assert [b["event_action"] for b in svc.bodies()] == ["resolve"] * 3
    assert 0.8 <= sleeps[0] <= 1.0 and 1.6 <= sleeps[1] <= 2.0  # 1 s, 2 s, with jitter


def test_pagerduty_gives_up_with_a_sentence() -> None:
    sleeps = Sleeps()
    with fake_service([pd(500, {"status": "error", "message": "internal"})]) as svc:
        c = cfg(pd_url=svc.url, retries=2)
        d = notify.deliver(msg("declared", c, "pagerduty"), c, sleep=sleeps)
    assert not d.ok and d.attempts == 3 and len(svc.requests) == 3 and len(sleeps) == 2
    assert d.problem.startswith(f"PagerDuty Events API (trigger) {svc.url} did not take the "
                                "message after 3 attempts; last: HTTP 500")


def test_pagerduty_invalid_event_is_not_retried() -> None:
    with fake_service([pd(400, PD_BAD)]) as svc:
        c = cfg(pd_url=svc.url)
        d = notify.deliver(msg("declared", c, "pagerduty"), c, sleep=Sleeps())
    assert not d.ok and d.attempts == 1 and len(svc.requests) == 1
    assert "rejected the message: HTTP 400 'invalid event': Event object is invalid" in d.problem
    assert "payload.severity" in d.problem and d.problem.endswith("not retried.")


def test_pagerduty_429_is_retried() -> None:
    sleeps = Sleeps()
    with fake_service([pd(429, {"status": "throttle"}), pd(202, PD_OK)]) as svc:
        c = cfg(pd_url=svc.url)
        d = notify.deliver(msg("declared", c, "pagerduty"), c, sleep=sleeps)
    assert d.ok and d.attempts == 2 and len(sleeps) == 1


# --- Slack -----------------------------------------------------------------------------------


def test_slack_accepted() -> None:
    with fake_service([slack(200, "ok")], f"/services/{SLACK_TOKEN}") as svc:
        c = cfg(slack_url=svc.url)
        m = msg("declared", c, "slack")
        d = notify.deliver(m, c, sleep=Sleeps())
    assert d.ok and d.attempts == 1 and d.detail == "ok"
    assert svc.bodies() == [{"text": notify.render("declared", incident(), c)}]
    assert svc.requests[0]["path"] == f"/services/{SLACK_TOKEN}"
    assert svc.requests[0]["body"].encode() == m.payload()  # the dry run shows these bytes


def test_slack_429_honours_retry_after_capped() -> None:
    sleeps = Sleeps()
    with fake_service([slack(429, "rate_limited", headers={"Retry-After": "1"}),
                       slack(429, "rate_limited", headers={"Retry-After": "3600"}),
                       slack(200, "ok")], f"/services/{SLACK_TOKEN}") as svc:
        c = cfg(slack_url=svc.url, retries=3, max_backoff_seconds=2.0)
        d = notify.deliver(msg("update", c, "slack"), c, sleep=sleeps)
    assert d.ok and d.attempts == 3
    assert sleeps == [1.0, 2.0]  # Retry-After as said, then capped at max_backoff_seconds


@pytest.mark.parametrize("status, answer, hint", [
    (400, "invalid_payload", "the message is malformed"),
    (404, "no_service", "check SLACK_INCIDENT_WEBHOOK"),
    (403, "action_prohibited", "an admin restricted posting"),
    (410, "channel_is_archived", "archived"),
])
def test_slack_errors_are_final_and_explained(status: int, answer: str, hint: str) -> None:
    with fake_service([slack(status, answer)], f"/services/{SLACK_TOKEN}") as svc:
        c = cfg(slack_url=svc.url)
        d = notify.deliver(msg("declared", c, "slack"), c, sleep=Sleeps())
    assert not d.ok and d.attempts == 1 and len(svc.requests) == 1
    where = svc.url.split("/services/")[0] + "/***"
    assert d.problem.startswith(f"Slack webhook {where} rejected the message: "
                                f"HTTP {status} '{answer}'")
    assert hint in d.problem and SLACK_TOKEN not in d.problem


def test_timeout_is_retried_then_given_up() -> None:
    with fake_service([slack(200, "ok", delay=1.5)], f"/services/{SLACK_TOKEN}") as svc:
        c = cfg(slack_url=svc.url, timeout=0.3, retries=1)
        t0 = time.monotonic()
        d = notify.deliver(msg("declared", c, "slack"), c, sleep=Sleeps())
        took = time.monotonic() - t0
    assert not d.ok and d.attempts == 2
    assert "last: no answer within 0.3 s" in d.problem
    assert took < 1.5  # two timeouts, no hang


def test_unreachable_and_malformed_urls() -> None:
    c = cfg(slack_url=f"http://127.0.0.1:9/services/{SLACK_TOKEN}", retries=1)
    d = notify.deliver(msg("declared", c, "slack"), c, sleep=Sleeps())
    assert not d.ok and d.attempts == 2 and "could not connect" in d.problem
    assert d.problem.startswith("Slack webhook http://127.0.0.1:9/*** did not take")
    for bad in (f"hooks.slack.com/services/{SLACK_TOKEN}",
                f"http://127.0.0.1:notaport/services/{SLACK_TOKEN}"):
        c = cfg(slack_url=bad)
        d = notify.deliver(msg("declared", c, "slack"), c, sleep=Sleeps())
        assert not d.ok and "nothing was sent" in d.problem and SLACK_TOKEN not in d.problem


def test_secrets_never_shown(caplog: pytest.LogCaptureFixture,
                             capsys: pytest.CaptureFixture[str]) -> None:
    """Dry run, success, retries, refusal, give-up and timeout: the webhook URL's secret part
    and the routing key appear in no output, log record or returned text."""
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    with fake_service([slack(429, "rate_limited", headers={"Retry-After": "0"}),
                       slack(200, "ok")], f"/services/{SLACK_TOKEN}") as ok_slack, \
         fake_service([pd(500, {"status": "error"}), pd(202, PD_OK)]) as ok_pd, \
         fake_service([slack(404, "no_service")], f"/services/{SLACK_TOKEN}") as bad_slack, \
         fake_service([pd(400, PD_BAD)]) as bad_pd, \
         fake_service([slack(200, "ok", delay=1.0)], f"/services/{SLACK_TOKEN}") as slow:
        for s_url, p_url, timeout in [(ok_slack.url, ok_pd.url, 1.0),
                                      (bad_slack.url, bad_pd.url, 1.0),
                                      (slow.url, ok_pd.url, 0.2)]:
            c = cfg(slack_url=s_url, pd_url=p_url, timeout=timeout, retries=1,
                    backoff_seconds=0.01)
            profile = profiles.Profile(name="test", service=profiles.Service(
                base_url="http://127.0.0.1:1"), notify=c)
            for kind in notify.KINDS:
                notify.announce(kind, incident(), profile, send=False)
                texts += [d.problem + d.line() for d in
                          notify.announce(kind, incident(), profile, send=True)]
        assert len(ok_slack.requests) >= 2 and bad_pd.requests  # the traffic really happened
    out = capsys.readouterr()
    everything = "\n".join([out.out, out.err, caplog.text, *texts,
                            *(str(r.args) for r in caplog.records)])
    assert "dry run: would POST to Slack webhook http://127.0.0.1:" in everything
    assert '"routing_key":"***"' in everything
    assert "rejected the message" in everything and "no answer within 0.2 s" in everything
    assert "HTTP Request: POST http://127.0.0.1:" in caplog.text  # httpx's own log, scrubbed
    for secret in (SLACK_TOKEN, "xoxWebhookSecret42", ROUTING_KEY):
        assert secret not in everything


# --- the command -----------------------------------------------------------------------------


def _profile_file(tmp_path: Path) -> Path:
    raw = yaml.safe_load((profiles.BUNDLED / "staging.yaml").read_text())
    raw["notify"].update(retries=1, backoff_seconds=0.01, timeout=1.0,
                         pagerduty_url="${PAGERDUTY_URL}")
    path = tmp_path / "notify-profile.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    return path


def test_cli_dry_run_and_send(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    path = _profile_file(tmp_path)
    with fake_service([slack(200, "ok")], f"/services/{SLACK_TOKEN}") as s, \
         fake_service([pd(202, PD_OK)], "/v2/enqueue") as p:
        monkeypatch.setenv("SLACK_INCIDENT_WEBHOOK", s.url)
        monkeypatch.setenv("PAGERDUTY_ROUTING_KEY", ROUTING_KEY)
        monkeypatch.setenv("PAGERDUTY_URL", p.url)
        argv = ["--env", str(path), "notify", "declared", "--incident", "INC-7",
                "--severity", "P0", "--impact", "Complete service outage"]
        assert cli.main(argv) == 0
        dry = capsys.readouterr().out
        assert not s.requests and not p.requests  # a dry run sends nothing
        assert "🚨 INCIDENT DECLARED - P0 Security Dashboard" in dry
        assert "escalation for P0" in dry and "+30 minutes: Executive briefing" in dry
        assert "dry run: nothing was sent" in dry
        assert cli.main([*argv, "--send"]) == 0
        sent = capsys.readouterr().out
        assert "slack: delivered (HTTP 200, ok; 1 attempt)" in sent
        assert "pagerduty: delivered (HTTP 202, success" in sent
        assert len(s.requests) == 1 and p.bodies()[0]["dedup_key"] == "security-dashboard/INC-7"
        assert cli.main(["--env", str(path), "notify", "resolved", "--incident", "INC-7",
                         "--root-cause", "bad deploy", "--started", "2024-05-01T12:00:00Z",
                         "--resolved", "2024-05-01T13:05:00Z", "--send"]) == 0
        assert "Duration: 1 h 5 min" in s.bodies()[1]["text"]
        assert p.bodies()[1] == {"routing_key": ROUTING_KEY, "event_action": "resolve",
                                 "dedup_key": "security-dashboard/INC-7"}
        for text in (dry, sent):
            assert SLACK_TOKEN not in text and ROUTING_KEY not in text


def test_cli_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture[str]) -> None:
    path = _profile_file(tmp_path)
    monkeypatch.setenv("PAGERDUTY_URL", "http://127.0.0.1:9/v2/enqueue")
    monkeypatch.delenv("SLACK_INCIDENT_WEBHOOK", raising=False)
    monkeypatch.delenv("PAGERDUTY_ROUTING_KEY", raising=False)
    base = ["--env", str(path), "notify"]
    assert cli.main([*base, "declared", "--incident", "INC-8"]) == 2  # no severity
    assert "needs --severity" in capsys.readouterr().err
    assert cli.main([*base, "update", "--incident", "bad id!"]) == 2
    assert "incident id" in capsys.readouterr().err
    # Nothing configured: a send has nowhere to go.
    assert cli.main([*base, "update", "--incident", "INC-8", "--send"]) == 2
    assert "no channel is configured" in capsys.readouterr().err
    with fake_service([slack(404, "no_service")], f"/services/{SLACK_TOKEN}") as s:
        monkeypatch.setenv("SLACK_INCIDENT_WEBHOOK", s.url)
        assert cli.main([*base, "update", "--incident", "INC-8", "--send"]) == 1
        out = capsys.readouterr().out
    assert "slack: FAILED - Slack webhook" in out and "no_service" in out
    assert SLACK_TOKEN not in out


def test_profile_repr_hides_the_secrets() -> None:
    """Tracebacks (and so Allure) show `profile = Profile(...)`: no secret in it."""
    p = profiles.load("staging", environ={"SLACK_INCIDENT_WEBHOOK": f"https://x/{SLACK_TOKEN}",
                                          "PAGERDUTY_ROUTING_KEY": ROUTING_KEY})
    assert SLACK_TOKEN not in repr(p) and ROUTING_KEY not in repr(p)
