"""The playbook's "Database Issues (P1)" section, through ${DATABASE_URL} with psycopg.

Severities: the playbook files database problems under P1 ("Database connectivity issues" is a
P1 indicator in 1.3): a database that does not answer, too many active connections, a session
stuck on a lock, a replica falling behind. A database that is down for good also takes the
service down; the health checks (P0) and the RDS status check (P0) say so. The slowest
statements are context (P3: they fail only when they cannot be read).
"""

from __future__ import annotations

import pytest

from playbook.config import Profile
from playbook.plugin import attach_json
from playbook.probes import database as db_probe

pytestmark = [pytest.mark.requires("database")]


def _read(obs: db_probe.DbObservation) -> list[dict]:
    attach_json(f"{obs.what} ({obs.where})", {"rows": obs.rows, "error": obs.error,
                                              "elapsed_s": round(obs.elapsed, 3)})
    assert obs.error is None, obs.error
    return obs.rows


@pytest.mark.severity("P1")
@pytest.mark.incident_type("infrastructure")
def test_select_one(database: db_probe.Database) -> None:
    """`psql $DATABASE_URL -c "SELECT 1;"`"""
    rows = _read(db_probe.ping(database))
    assert rows == [{"one": 1}], f"SELECT 1 on {database.where} answered {rows!r}, expected 1"


@pytest.mark.severity("P1")
@pytest.mark.incident_type("performance")
def test_active_connections(profile: Profile, database: db_probe.Database) -> None:
    """Active connections (pg_stat_activity, state = 'active') stay within the profile's limit."""
    assert profile.database is not None
    limit = profile.database.connection_limit
    (row,) = _read(db_probe.connections(database))
    assert row["active"] <= limit, (
        f"{row['active']} active connections on {database.where}, above the limit of {limit} "
        f"({row['total']} connections in all, max_connections {row['max_connections']}) - "
        "look for slow queries or a connection leak")


@pytest.mark.severity("P1")
@pytest.mark.incident_type("performance")
def test_no_long_lock_waits(profile: Profile, database: db_probe.Database) -> None:
    """No session waits on a lock (pg_locks, granted = false) longer than the limit."""
    assert profile.database is not None
    limit = profile.database.lock_wait_limit_seconds
    rows = _read(db_probe.lock_waits(database, limit))
    if rows:
        first = rows[0]
        blockers = ", ".join(str(p) for p in first["blocked_by"]) or "unknown"
        more = f" (+{len(rows) - 1} more waiting)" if len(rows) > 1 else ""
        raise AssertionError(
            f"{len(rows)} session(s) waiting for a lock longer than {limit:g} s on "
            f"{database.where}: pid {first['pid']} has waited {first['waited']:.1f} s for "
            f"{first['mode']} on {first['object']} running `{first['query']}`, blocked by pid "
            f"{blockers} running `{first['blocker_query'] or '?'}`{more} - end the blocker "
            "(pg_terminate_backend) if it is stuck")


@pytest.mark.severity("P1")
@pytest.mark.incident_type("data")
def test_replication_lag(profile: Profile, database: db_probe.Database) -> None:
    """Every replica in pg_stat_replication is streaming and replays within the lag limit."""
    assert profile.database is not None
    limit = profile.database.replication_lag_limit_seconds
    rows = _read(db_probe.replication(database))
    if not rows:
        pytest.skip(f"no replicas in pg_stat_replication on {database.where}: no lag to check")
    bad = []
    for r in rows:
        lag = max((r[k] or 0.0) for k in ("write_lag", "flush_lag", "replay_lag"))
        if r["state"] != "streaming" or lag > limit:
            bad.append(f"{r['application_name'] or '?'} ({r['client'] or 'local'}) "
                       f"{r['state']}, replay lag {lag:.1f} s, {r['bytes_behind']} bytes behind")
    assert not bad, (f"{len(bad)} of {len(rows)} replicas of {database.where} behind the "
                     f"limit of {limit:g} s or not streaming: " + "; ".join(bad))


@pytest.mark.severity("P3")
@pytest.mark.incident_type("performance")
def test_slowest_statements(profile: Profile, database: db_probe.Database) -> None:
    """The playbook's pg_stat_statements query, attached to the report as evidence."""
    assert profile.database is not None
    obs = db_probe.slow_statements(database, profile.database.slow_statements)
    if obs.unavailable:
        pytest.skip(obs.unavailable)
    _read(obs)
