"""Secrets out of every output, and what targets say made safe to show.

    REDACTOR          the process's one redactor: every secret the profile loader met (the
                      values of secret ${VAR}s and of the profile's secret fields) and every
                      secret notify sent, plus anything shaped like a secret
    redact(text)      REDACTOR(text)
    remember(*values) teach REDACTOR a secret (the loader and notify do)
    sanitize(text)    what a target sent, safe for a terminal, a report or a file: valid UTF-8,
                      no control bytes or terminal escape sequences, bounded, truncation marked

What counts as shaped like a secret: an Authorization header or bearer/basic credentials, the
password of a URL's userinfo (`scheme://user:***@host`), password/token query parameters,
Slack-style webhook URLs, AWS access key ids, GitHub and Slack tokens, and `key=value` (or
`"key": "value"`) where the key names a secret (password, token, api_key, webhook, dsn ...).
Known values are also found URL-encoded and split across lines.

Standard library only: the load runner imports the profile loader before gevent patches the
standard library.
"""

from __future__ import annotations

import bisect
import re
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit

REDACTED = "***"
MIN_SECRET = 4  # shorter values would blank ordinary words
SANITIZE_LIMIT = 4096  # characters of a target's answer shown by default

# A key that names a secret: DATABASE_PASSWORD, api_key, x-auth-token, slack_webhook_url ...
SECRET_KEY = (r"[\w.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|private[_-]?key"
              r"|credential|webhook|dsn|connection[_-]?string|database[_-]?url|routing[_-]?key"
              r"|access[_-]?key)[\w.-]*")
_SECRET_KEY = re.compile(SECRET_KEY, re.I)

_DATABASES = r"(?:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|rediss?|amqps?|sqlserver)"


_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # Authorization headers and bearer/basic credentials anywhere.
    (re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(?:(bearer|basic|token)\s+)?"
                r"[^\s\"',}]+"), r"\1\2 " + REDACTED),
    # (a credential has a digit or a symbol: "basic authentication" is prose)
    (re.compile(r"(?i)\b(bearer|basic)\s+(?=[A-Za-z]*[0-9._~+/=-])[A-Za-z0-9._~+/=-]{6,}"),
     r"\1 " + REDACTED),
    # The password of a URL's userinfo: scheme://user:***@host. A database URL's password may
    # hold any character: up to the URL's last @. Other URLs: no / in it (a port and a path
    # with an @ are not a password).
    (re.compile(r"(?i)\b(" + _DATABASES + r"://[^\s:/@\"'<>]*):[^\s\"'<>]*@"),
     r"\1:" + REDACTED + "@"),
    (re.compile(r"\b([a-z][a-z0-9+.-]*://[^\s:/@\"'<>]*):(?!\*\*\*@)[^\s/\"'<>]*@"),
     r"\1:" + REDACTED + "@"),
    # Password and token query parameters (?password=..., &access_token=..., &sig=...).
    (re.compile(r"(?i)([?&;](?:[\w.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|apikey"
                r"|signature)|sig|key)=)(?!\*\*\*)[^&#\s\"'<>]+"), r"\1" + REDACTED),
    # Webhook URLs (Slack and alike): the path is the secret.
    (re.compile(r"(?i)(https?://hooks\.slack\.com)/[^\s\"'<>]+"), r"\1/" + REDACTED),
    (re.compile(r"(?i)(https?://[^\s/\"'<>]+)/[^\s\"'<>]*(?:webhook|hooks?|services/T)"
                r"[^\s\"'<>]*"), r"\1/" + REDACTED),
    # Well-known token shapes.
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), REDACTED),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}\b"), REDACTED),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b"), REDACTED),
]


def _secret_value(m: re.Match[str]) -> str:
    """key=value, key: value, "key": "value": the value goes when the key names a secret. A
    bare word followed by a colon may be prose ("a request without a token: it is open"):
    there the value goes only when it looks like one (not a plain word, or a long one)."""
    quote_, key, separator, value = m.group(1), m.group(2), m.group(4), m.group(6)
    if not _SECRET_KEY.fullmatch(key):
        return m.group(0)
    technical = bool(quote_) or "=" in separator or re.search(r"[_.-]", key) or key.isupper()
    if not technical and value.isalpha() and len(value) < 12:
        return m.group(0)
    return m.group(0)[:m.start(6) - m.start(0)] + REDACTED


# key=value, key: value, "key": "value" where the key names a secret: each pair is checked by
# _secret_value, on the lines that mention a secret's name at all (linear in the text).
_KEY_VALUE = re.compile(r"(?<![\w.-])([\"']?)([\w.-]+)([\"']?)(\s*[:=]\s*)([\"']?)"
                        r"(?!\*\*\*)([^\s\"',}]+)")
# (matched against lower-cased text: Python's case-insensitive matching is several times slower)
_NAMES_A_SECRET = re.compile(r"password|passwd|pwd|secret|token|api[_-]?key|apikey|"
                             r"private[_-]?key|credential|webhook|dsn|connection[_-]?string|"
                             r"database[_-]?url|routing[_-]?key|access[_-]?key")


def _secret_pairs(text: str) -> str:
    if not _NAMES_A_SECRET.search(text.lower()):
        return text
    return "".join(_KEY_VALUE.sub(_secret_value, line) if _NAMES_A_SECRET.search(line.lower())
                   else line for line in text.splitlines(keepends=True))


# What may split a known value: a line break (a log wrapped, a YAML scalar folded with a
# trailing backslash, JSON's escaped \n) and the next line's indentation.
_BREAKS = re.compile(r"(?:\\?\r?\n|\\n)[ \t]*")


def names_a_secret(name: str) -> bool:
    """Does this variable or profile key name a secret (GITHUB_TOKEN, database.url,
    notify.slack_webhook_url ...)?"""
    return _SECRET_KEY.search(name.replace(".", "_")) is not None


class Redactor:
    """Scrubs known secret values (as written, URL-encoded, or split across lines), then
    anything shaped like a secret. Thread-safe; `add` may be called at any time."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        self._forms: tuple[str, ...] = ()
        self._lock = threading.Lock()
        self.add(*values)

    def add(self, *values: str) -> None:
        fresh = {v for v in values if isinstance(v, str) and len(v.strip()) >= MIN_SECRET}
        with self._lock:
            if fresh - self._values:
                self._values |= fresh
                forms = set()
                for v in self._values:
                    forms |= {v, quote(v, safe=""), quote_plus(v), quote(v)}
                # Longest first: a URL before the password inside it.
                self._forms = tuple(sorted(forms, key=len, reverse=True))

    def known(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._values)

    def _scrub_known(self, text: str) -> str:
        """Every known value replaced, also where line breaks split it: the values are looked
        for in the text without its breaks, and what they cover is cut from the original."""
        forms = self._forms
        if not forms:
            return text
        parts, break_at, shift = [], [], []  # joined index of each break, removed so far
        prev = removed = 0
        for m in _BREAKS.finditer(text):
            parts.append(text[prev:m.start()])
            break_at.append(m.start() - removed)
            removed += m.end() - m.start()
            shift.append(removed)
            prev = m.end()
        parts.append(text[prev:])
        joined = "".join(parts)

        def original(j: int) -> int:
            k = bisect.bisect_right(break_at, j)
            return j + (shift[k - 1] if k else 0)

        taken: list[tuple[int, int]] = []
        for form in forms:
            start = joined.find(form)
            while start != -1:
                end = start + len(form)
                if not any(a < end and start < b for a, b in taken):
                    taken.append((start, end))
                start = joined.find(form, end)
        if not taken:
            return text
        out, last = [], 0
        for a, b in sorted(taken):
            lo, hi = original(a), original(b - 1) + 1
            out += [text[last:lo], REDACTED]
            last = hi
        out.append(text[last:])
        return "".join(out)

    def __call__(self, text: str) -> str:
        text = self._scrub_known(text)
        for rx, repl in _PATTERNS:
            text = rx.sub(repl, text)
        return _secret_pairs(text)

    def data(self, value: Any) -> Any:
        """A JSON-like structure with every string redacted, and every value under a key that
        names a secret (DATABASE_PASSWORD, api_key...) replaced - before it is serialised, so
        YAML folding or quoting cannot split a secret."""
        if isinstance(value, dict):
            return {k: REDACTED if isinstance(k, str) and _SECRET_KEY.fullmatch(k)
                    and isinstance(v, (str, int, float)) and v != "" else self.data(v)
                    for k, v in value.items()}
        if isinstance(value, (list, tuple, set)):
            return [self.data(v) for v in value]
        if isinstance(value, str):
            return self(value)
        return value


REDACTOR = Redactor()


def remember(*values: str) -> None:
    """Teach the process's redactor secrets (too short ones are ignored)."""
    REDACTOR.add(*values)


def redact(text: str) -> str:
    return REDACTOR(text)


def remember_url(url: str, path_is_secret: bool = False) -> None:
    """A secret URL: the whole of it, the password of its userinfo (as written and decoded),
    and - for a webhook, whose path is the credential - its path and query."""
    remember(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return
    if parts.password:
        remember(parts.password, unquote(parts.password))
    # A short path is not a credential, and scrubbing it would blank ordinary words.
    if path_is_secret and len(parts.path) >= 12:
        remember(parts.path)
    if path_is_secret and parts.query:
        remember(parts.query)


# --- what targets say ----------------------------------------------------------------------

_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, ESC[2K (erase line), ESC[8m
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\|(?=\x1b)|$)"  # OSC: titles, links, OSC 52 (clipboard)
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\|$)"  # DCS, SOS, PM, APC strings
    r"|\x1b[ -/]*[0-~]?"  # two- and three-byte escapes (ESC c resets the terminal), a lone ESC
    r"|\x9b[0-?]*[ -/]*[@-~]"  # the 8-bit CSI
    r"|\x9d[^\x07\x9c]*(?:\x07|\x9c|$)"  # the 8-bit OSC
)
# Control characters but tab and newline (C0, DEL, C1), and the bidirectional overrides and
# isolates that reorder what a reader sees (Trojan Source).
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def sanitize(text: str | bytes, limit: int | None = SANITIZE_LIMIT, *,
             keep_newlines: bool = True) -> str:
    """What a target sent, safe to show: bytes are read as UTF-8 (invalid sequences become
    U+FFFD), terminal escape sequences (CSI, OSC, DCS ...) go entirely, other control
    characters (NUL, BEL, BS, CR, DEL, C1) and bidi overrides go too; tabs and - unless
    keep_newlines is False, when they become spaces - newlines stay. At most `limit`
    characters (None: no bound); a cut is marked `... [N more characters]`."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    else:  # lone surrogates would not encode: replace them too
        text = text.encode("utf-8", errors="replace").decode("utf-8")
    text = _CONTROLS.sub("", _ESCAPES.sub("", text).replace("\r\n", "\n"))
    if not keep_newlines:
        text = text.replace("\n", " ")
    if limit is not None and len(text) > limit:
        text = f"{text[:limit]}... [{len(text) - limit} more characters]"
    return text


def shown(text: str | bytes, limit: int | None = SANITIZE_LIMIT) -> str:
    """sanitize() then redact(): what any output may show of a target's answer."""
    return redact(sanitize(text, limit))

