"""Schema and data of the stand-in backend's database: what its read endpoints serve."""

from __future__ import annotations

import psycopg

SCHEMA = """
CREATE TABLE IF NOT EXISTS assets (
    id serial PRIMARY KEY, hostname text NOT NULL, kind text NOT NULL,
    environment text NOT NULL, owner text NOT NULL);
CREATE TABLE IF NOT EXISTS vulnerabilities (
    id serial PRIMARY KEY, cve text NOT NULL, title text NOT NULL, severity text NOT NULL,
    asset_id int REFERENCES assets(id), status text NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS alerts (
    id serial PRIMARY KEY, title text NOT NULL, severity text NOT NULL, source text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS users (
    username text PRIMARY KEY, salt text NOT NULL, hash text NOT NULL, role text NOT NULL);
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
"""

# Sandbox-only accounts (loopback, throwaway data): the security drill logs in as them.
USERS = {"analyst": ("viewer", "sandbox-analyst-password"),
         "admin": ("admin", "sandbox-admin-password")}

KINDS = ["web", "db", "cache", "worker", "bastion"]
SEVERITIES = ["critical", "high", "medium", "low"]


def apply(conn: psycopg.Connection) -> None:
    conn.execute(SCHEMA)
    from playbook.sandbox.auth import hash_password

    for user, (role, password) in USERS.items():
        salt, digest = hash_password(password)
        conn.execute("INSERT INTO users (username, salt, hash, role) VALUES (%s,%s,%s,%s) "
                     "ON CONFLICT (username) DO NOTHING", (user, salt, digest, role))
    if conn.execute("SELECT count(*) FROM assets").fetchone()[0]:
        return
    with conn.transaction():
        for i in range(1, 41):
            conn.execute(
                "INSERT INTO assets (hostname, kind, environment, owner) VALUES (%s,%s,%s,%s)",
                (f"{KINDS[i % 5]}-{i:02d}.internal", KINDS[i % 5],
                 "production" if i % 3 else "staging", f"team-{i % 4}"))
        for i in range(1, 121):
            conn.execute(
                "INSERT INTO vulnerabilities (cve, title, severity, asset_id, status, first_seen)"
                " VALUES (%s,%s,%s,%s,%s, now() - make_interval(days => %s))",
                (f"CVE-2026-{10000 + i}", f"Finding {i} in package lib{i % 17}",
                 SEVERITIES[i % 4], 1 + i % 40, "open" if i % 5 else "fixed", i % 90))
        for i in range(1, 31):
            conn.execute(
                "INSERT INTO alerts (title, severity, source, created_at)"
                " VALUES (%s,%s,%s, now() - make_interval(mins => %s))",
                (f"Suspicious activity {i}", SEVERITIES[i % 4],
                 ["guardduty", "falco", "waf"][i % 3], i * 7))
