"""PostgreSQL observations for the playbook's "Database Issues" section: `SELECT 1`, active
connections, lock waits, replication lag and the slowest statements. Read-only; never asserts.

`Database` holds one connection for the run (built once by the `database` fixture), opened
lazily with the profile's connect timeout and a statement timeout, autocommit so that nothing
the suite reads is held in a transaction. Any failure is an observation whose `error` is one
sentence. The URL carries the password: every sentence shows it redacted (`redact`), and the
password's text is scrubbed from server messages too.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import psycopg
from psycopg.rows import dict_row

from playbook import config

APPLICATION = "security-dashboard-playbook"


def redact(url: str) -> str:
    """The URL with its password replaced by ***, for every sentence and attachment."""
    if "://" not in url:  # key=value conninfo
        return re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", url)
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def _password(url: str) -> str:
    if "://" in url:
        return unquote(urlsplit(url).password or "")
    m = re.search(r"password\s*=\s*('([^']*)'|\S+)", url)
    return (m.group(2) if m and m.group(2) is not None else m.group(1)) if m else ""


@dataclass(frozen=True)
class DbObservation:
    what: str  # the query's purpose, e.g. "SELECT 1"
    where: str  # the redacted URL
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    elapsed: float = 0.0
    unavailable: str | None = None  # the feature is not there (e.g. pg_stat_statements)


class Database:
    def __init__(self, cfg: config.Database) -> None:
        self.cfg = cfg
        self.where = redact(cfg.url) if cfg.url else "(database.url is empty)"
        self._secret = _password(cfg.url)
        self._conn: psycopg.Connection[dict[str, Any]] | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _scrub(self, text: str) -> str:
        text = " ".join(text.split())
        return text.replace(self._secret, "***") if self._secret else text

    def _connect(self) -> psycopg.Connection[dict[str, Any]]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            ms = int(self.cfg.statement_timeout_seconds * 1000)
            self._conn = psycopg.connect(
                self.cfg.url, autocommit=True, row_factory=dict_row,
                connect_timeout=max(1, round(self.cfg.connect_timeout)),
                application_name=APPLICATION,
                # Probes never change anything: the session refuses writes, too.
                options=f"-c statement_timeout={ms} -c default_transaction_read_only=on")
        return self._conn

    def describe(self, exc: Exception, what: str) -> str:
        """One sentence: what failed, where (redacted), and the likely cause."""
        text = self._scrub(str(exc)) or type(exc).__name__
        low = text.lower()
        if isinstance(exc, psycopg.OperationalError) and self._conn is None:
            if "password authentication failed" in low or "no password supplied" in low:
                return (f"PostgreSQL at {self.where} rejected the credentials for {what}: "
                        f"{_core(text)} - check the user and password in DATABASE_URL")
            if "refused" in low:
                return (f"cannot connect to PostgreSQL at {self.where} for {what}: connection "
                        "refused - the database is down or not listening there")
            if "timeout" in low:
                return (f"cannot connect to PostgreSQL at {self.where} for {what}: no answer "
                        f"within {self.cfg.connect_timeout:g} s (connect timeout)")
            return f"cannot connect to PostgreSQL at {self.where} for {what}: {_core(text)}"
        if isinstance(exc, psycopg.errors.QueryCanceled):
            return (f"{what} on {self.where} was cancelled after the statement timeout of "
                    f"{self.cfg.statement_timeout_seconds:g} s - the database is overloaded or "
                    "blocked")
        return f"{what} on {self.where} failed: {type(exc).__name__}: {_core(text)}"

    def query(self, what: str, sql: str, params: tuple[Any, ...] = ()) -> DbObservation:
        start = time.perf_counter()
        if not self.cfg.url:
            return DbObservation(what, self.where, error=(
                f"{what}: database.url is empty - set DATABASE_URL in the environment"))
        for attempt in (1, 2):
            fresh = self._conn is None or self._conn.closed or self._conn.broken
            try:
                conn = self._connect()
            except psycopg.Error as exc:
                self._conn = None
                return DbObservation(what, self.where, error=self.describe(exc, what),
                                     elapsed=time.perf_counter() - start)
            try:
                rows = conn.execute(sql, params).fetchall()  # type: ignore[arg-type]
                return DbObservation(what, self.where, rows=[dict(r) for r in rows],
                                     elapsed=time.perf_counter() - start)
            except psycopg.OperationalError as exc:
                # A connection that died since the last check: one reconnect, then report.
                if attempt == 1 and not fresh and conn.broken:
                    self._conn = None
                    continue
                return DbObservation(what, self.where, error=self.describe(exc, what),
                                     elapsed=time.perf_counter() - start)
            except psycopg.Error as exc:
                return DbObservation(what, self.where, error=self.describe(exc, what),
                                     elapsed=time.perf_counter() - start)
        raise AssertionError("unreachable")


def _core(text: str) -> str:
    """psycopg's message without the 'connection to server ... failed:' preamble."""
    text = re.sub(r"^connection failed: ", "", text)
    text = re.sub(r'connection to server at "[^"]*"(?: \([^)]*\))?, port \d+ failed: ', "",
                  text)
    return text.replace("FATAL: ", "").strip()


# --- the playbook's queries --------------------------------------------------------------------


def ping(db: Database) -> DbObservation:
    """`psql $DATABASE_URL -c "SELECT 1;"`"""
    return db.query("SELECT 1", "SELECT 1 AS one")


def connections(db: Database) -> DbObservation:
    """`SELECT count(*) FROM pg_stat_activity WHERE state = 'active'`, without our own
    session, with the total and the server's max_connections for context."""
    return db.query("active connections (pg_stat_activity)", """
        SELECT count(*) FILTER (WHERE state = 'active' AND pid <> pg_backend_pid()) AS active,
               count(*) FILTER (WHERE backend_type = 'client backend') AS total,
               current_setting('max_connections')::int AS max_connections
        FROM pg_stat_activity""")


def lock_waits(db: Database, longer_than: float) -> DbObservation:
    """`SELECT * FROM pg_locks WHERE granted = false`, kept to waits longer than `longer_than`
    seconds (pg_locks.waitstart, PostgreSQL 14+), with who blocks them."""
    return db.query("lock waits (pg_locks)", """
        SELECT l.pid, a.usename AS user, a.datname AS database, l.locktype, l.mode,
               COALESCE(l.relation::regclass::text, l.locktype) AS object,
               round(EXTRACT(epoch FROM now() - l.waitstart)::numeric, 1)::float AS waited,
               pg_blocking_pids(l.pid) AS blocked_by,
               left(regexp_replace(a.query, '\\s+', ' ', 'g'), 160) AS query,
               (SELECT left(regexp_replace(b.query, '\\s+', ' ', 'g'), 120)
                  FROM pg_stat_activity b
                 WHERE b.pid = (pg_blocking_pids(l.pid))[1]) AS blocker_query
        FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE NOT l.granted AND l.waitstart IS NOT NULL
          AND now() - l.waitstart > make_interval(secs => %s)
        ORDER BY l.waitstart""", (longer_than,))


def replication(db: Database) -> DbObservation:
    """`SELECT * FROM pg_stat_replication`: one row per replica, lag in seconds and bytes."""
    return db.query("replication status (pg_stat_replication)", """
        SELECT application_name, host(client_addr) AS client, state,
               EXTRACT(epoch FROM write_lag)::float AS write_lag,
               EXTRACT(epoch FROM flush_lag)::float AS flush_lag,
               EXTRACT(epoch FROM replay_lag)::float AS replay_lag,
               pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint AS bytes_behind
        FROM pg_stat_replication ORDER BY application_name""")


def slow_statements(db: Database, limit: int) -> DbObservation:
    """The playbook's `SELECT query, calls, mean_exec_time FROM pg_stat_statements ORDER BY
    mean_exec_time DESC LIMIT 10`, when the extension is installed and preloaded."""
    present = db.query("pg_stat_statements", "SELECT extversion FROM pg_extension "
                       "WHERE extname = 'pg_stat_statements'")
    if present.error:
        return present
    if not present.rows:
        return DbObservation("slowest statements", db.where, unavailable=(
            f"pg_stat_statements is not installed in {db.where} (CREATE EXTENSION "
            "pg_stat_statements)"))
    obs = db.query("slowest statements (pg_stat_statements)", """
        SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 300) AS query, calls,
               round(mean_exec_time::numeric, 2)::float AS mean_ms,
               round(total_exec_time::numeric, 1)::float AS total_ms, rows
        FROM pg_stat_statements ORDER BY mean_exec_time DESC LIMIT %s""", (limit,))
    if obs.error and "shared_preload_libraries" in obs.error:
        return DbObservation("slowest statements", db.where, unavailable=(
            f"pg_stat_statements is installed in {db.where} but not preloaded "
            "(shared_preload_libraries)"))
    return obs
