"""The one redactor and the one sanitizer (playbook.secrets): hostile inputs, known values in
every disguise, and the profile loader teaching the redactor what it loaded."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest

from playbook import config, secrets
from playbook.secrets import Redactor, sanitize

pytestmark = pytest.mark.unit

# Built from parts so that no secret scanner mistakes the fixtures for real ones.
HOOK = "https://hooks.slack.com/services/" + "T0TEST/B0TEST/h00kS3cretV4lue"
KNOWN = "kn0wn-S3cret/Value+1234"


@pytest.mark.parametrize("text, expected", [
    ("x kn0wn-S3cret/Value+1234 y", "x *** y"),
    # URL-encoded, as in a query string or a form body
    (f"GET /x?next={quote(KNOWN, safe='')}", "GET /x?next=***"),
    (f"path /a/{quote(KNOWN)}/b", "path /a/***/b"),
    # split across lines: a wrapped log line, a YAML-folded scalar, JSON's escaped newline
    ("token kn0wn-S3cret/Val\nue+1234 end", "token *** end"),
    ("token kn0wn-S3cr\\\n    et/Value+1234 end", "token *** end"),
    ('{"v": "kn0wn-S3cret/Val\\nue+1234"}', '{"v": "***"}'),
], ids=["plain", "url-encoded", "url-encoded-path", "newline", "yaml-fold", "json-newline"])
def test_known_values_in_every_disguise(text: str, expected: str) -> None:
    assert Redactor([KNOWN])(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("Authorization: Bearer abc.def.ghi", "Authorization: Bearer ***"),
    ('{"authorization": "Basic dXNlcjpwYXNz"}', '{"authorization": "Basic ***"}'),
    ("curl -H 'authorization: token ghx123456'", "curl -H 'authorization: token ***'"),
    ("sent bearer eyJhbGciOi.payload.sig", "sent bearer ***"),
    ("url=https://user:pw1234@example.com/x", "url=https://user:***@example.com/x"),
    ("mysql://root:toor@db/x and done", "mysql://root:***@db/x and done"),
    ("redis://:p/a@ss@cache:6379/0", "redis://:***@cache:6379/0"),
    ("GET /x?password=abc&user=1", "GET /x?password=***&user=1"),
    ("https://api.test/x?access_token=abcdef&sig=zzz", "https://api.test/x?access_token=***&sig=***"),
    (f"hook {HOOK} end", "hook https://hooks.slack.com/*** end"),
    ('"api_key": "abcd1234"', '"api_key": "***"'),
    ("PASSWORD=hunter22 next", "PASSWORD=*** next"),
    ("key AKIA" + "ABCDEFGHIJKLMNOP here", "key *** here"),
    # Not secrets: ordinary sentences, ports and paths, names that only mention a secret.
    ("GET /api/health 200 (the token in GITHUB_TOKEN is wrong)",
     "GET /api/health 200 (the token in GITHUB_TOKEN is wrong)"),
    ("a request without a token: it is open", "a request without a token: it is open"),
    ("uses basic authentication; token: expired", "uses basic authentication; token: expired"),
    ("password: hunter22 and token: correcthorsebattery", "password: *** and token: ***"),
    ("http://127.0.0.1:8080/users/@me", "http://127.0.0.1:8080/users/@me"),
    ("postgresql://dashboard:***@127.0.0.1:5432/db", "postgresql://dashboard:***@127.0.0.1:5432/db"),
])
def test_shapes_of_secrets(text: str, expected: str) -> None:
    assert Redactor()(text) == expected


def test_short_values_are_not_secrets_and_structures_are_redacted_before_serialising() -> None:
    r = Redactor(["abc", "", "   "])
    assert r("abc abc") == "abc abc"
    data = {"DATABASE_PASSWORD": "x" * 5, "nested": [{"api_key": 12345678}], "note": "fine",
            "empty_token": ""}
    assert r.data(data) == {"DATABASE_PASSWORD": "***", "nested": [{"api_key": "***"}],
                            "note": "fine", "empty_token": ""}


def test_the_loader_teaches_the_redactor(tmp_path: Path) -> None:
    """Every secret ${VAR} value and every secret field of a loaded profile is redacted
    afterwards; values of other ${VAR}s (names, URLs) stay readable."""
    profile = tmp_path / "p.yaml"
    profile.write_text(
        "name: t\nservice:\n  base_url: ${T_BASE_URL}\n"
        "database:\n  url: postgresql://app:${T_DB_PASSWORD}@db.test/app\n"
        "github:\n  repo: o/r\n  token: ${T_GITHUB_TOKEN}\n"
        "notify:\n  slack_webhook_url: ${T_HOOK}\n"
        "prometheus:\n  url: http://prom.test\n  bearer_token: literal-token-in-file\n"
        "aws:\n  resources:\n    rds_instance: ${T_RDS:-rds-name-1}\n")
    env = {"T_BASE_URL": "http://127.0.0.1:9", "T_DB_PASSWORD": "db-Pa55-w0rd",
           "T_GITHUB_TOKEN": "tok-0123456789", "T_HOOK": HOOK}
    config.load(str(profile), environ=env)
    text = ("db-Pa55-w0rd tok-0123456789 literal-token-in-file h00kS3cretV4lue "
            "http://127.0.0.1:9 rds-name-1 postgresql://app:db-Pa55-w0rd@db.test/app")
    assert secrets.redact(text) == "*** *** *** h00kS3cretV4lue http://127.0.0.1:9 rds-name-1 ***"
    assert secrets.redact(HOOK) == "***"


@pytest.mark.parametrize("hostile, expected", [
    ("\x1b[2Kerased line", "erased line"),  # erase the line a reader is looking at
    ("\x1b]52;c;ZXZpbCBjb21tYW5k\x07after", "after"),  # OSC 52: write the clipboard
    ("\x1b]52;c;ZXZpbA==\x1b\\after", "after"),  # OSC terminated by ST
    ("\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\", "link"),  # a hyperlink
    ("\x1b[8mhidden\x1b[0m text", "hidden text"),  # concealed text is shown, not hidden
    ("a\x00b\x07c\x08d\x7fe", "abcde"),  # NUL, BEL, backspace, DEL
    ("ok\r\nline\rover", "ok\nlineover"),  # a bare CR would overwrite the line
    ("\x9b31mC1 CSI", "C1 CSI"),  # the 8-bit CSI
    ("\x1bcreset", "reset"),  # ESC c resets the terminal
    ("\u202eevil\u202c txt", "evil txt"),  # right-to-left override
    ("tab\tand\nnewline kept, é ü 日本", "tab\tand\nnewline kept, é ü 日本"),
], ids=["erase-line", "osc52-bel", "osc52-st", "hyperlink", "conceal", "nul-bel-bs-del",
        "carriage-return", "c1-csi", "reset", "bidi", "kept"])
def test_sanitize_strips_what_a_terminal_would_obey(hostile: str, expected: str) -> None:
    assert sanitize(hostile) == expected


def test_sanitize_keeps_utf8_valid_and_bounds_length() -> None:
    assert sanitize(b"caf\xc3\xa9 \xff\xfe end") == "café \ufffd\ufffd end"
    assert sanitize("lone \ud800 surrogate") == "lone ? surrogate"
    out = sanitize("日本" * 3000, limit=10)
    assert out == "日本日本日本日本日本... [5990 more characters]"
    out.encode("utf-8")  # valid
    assert sanitize("one\ntwo", keep_newlines=False) == "one two"
    assert sanitize("x" * 50, limit=None) == "x" * 50


def test_shown_sanitizes_then_redacts() -> None:
    secrets.remember("sh0wn-secret-value")
    assert secrets.shown("\x1b[31msh0wn-secret-value\x1b[0m said") == "*** said"
