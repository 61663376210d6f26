"""checks/test_database.py against the sandbox's PostgreSQL: green when healthy; red, with the
password never shown, on a lock held past the limit, too many active connections, a database
that does not answer and a wrong password; replication lag against a real streaming replica."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from playbook import config
from playbook.probes import database as db_probe
from playbook.sandbox.launch import Sandbox, write_sandbox_profile
from tests.conftest import run_suite

CHECKS = "checks/test_database.py"
SECRET = "sandbox-only"  # the sandbox's password: must appear in no output


def db_url(sb: Sandbox) -> str:
    assert sb.profile.database is not None
    return sb.profile.database.url


def redacted(sb: Sandbox) -> str:
    return db_url(sb).replace(f":{SECRET}@", ":***@")


def profile_for(sb: Sandbox, tmp: Path, **database: object) -> Path:
    """The sandbox's profile with database settings overridden (same ports, same state)."""
    import yaml

    raw = yaml.safe_load(sb.path.read_text())
    raw["database"].update(database)
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "profile.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def no_secret_anywhere(run: object, secret: str) -> None:
    texts = [run.output]  # type: ignore[attr-defined]
    texts += [p.read_text(errors="replace") for p in run.allure.glob("*")]  # type: ignore
    if run.junit.exists():  # type: ignore[attr-defined]
        texts.append(run.junit.read_text())  # type: ignore[attr-defined]
    for text in texts:
        assert secret not in text


@pytest.mark.sandbox
def test_green_on_healthy_sandbox(sandbox: Sandbox, tmp_path: Path) -> None:
    run = run_suite(sandbox.path, CHECKS, tmp=tmp_path, extra=["-rs"])
    assert run.returncode == 0, run.output
    assert run.verdict == {"verdict": "healthy", "failures": []}
    assert "4 passed, 1 skipped" in run.output
    assert f"no replicas in pg_stat_replication on {redacted(sandbox)}" in run.output
    attached = [p.read_text() for p in run.allure.glob("*-attachment.json")]
    assert any("mean_ms" in text for text in attached)  # pg_stat_statements rows
    no_secret_anywhere(run, SECRET)


@pytest.mark.sandbox
def test_lock_held_past_the_limit(sandbox: Sandbox, tmp_path: Path) -> None:
    holder = psycopg.connect(db_url(sandbox))
    holder.execute("LOCK TABLE alerts IN ACCESS EXCLUSIVE MODE")  # a transaction stays open
    holder_pid = holder.info.backend_pid
    waiter_pid: list[int] = []

    def wait_for_lock() -> None:
        with psycopg.connect(db_url(sandbox)) as conn:
            waiter_pid.append(conn.info.backend_pid)
            with contextlib.suppress(psycopg.Error):
                conn.execute("SELECT count(*) FROM alerts")

    waiter = threading.Thread(target=wait_for_lock)
    waiter.start()
    try:
        time.sleep(1.3)
        run = run_suite(profile_for(sandbox, tmp_path, lock_wait_limit_seconds=1),
                        f"{CHECKS}::test_no_long_lock_waits", tmp=tmp_path)
    finally:
        holder.rollback()
        holder.close()
        waiter.join(10)
    failure = run.failure("test_no_long_lock_waits")
    assert failure is not None, run.output
    assert failure["severity"] == "P1"
    message = failure["message"]
    assert message.startswith(f"1 session(s) waiting for a lock longer than 1 s on "
                              f"{redacted(sandbox)}: pid {waiter_pid[0]} has waited ")
    assert message.endswith(
        f"for AccessShareLock on alerts running `SELECT count(*) FROM alerts`, blocked by pid "
        f"{holder_pid} running `LOCK TABLE alerts IN ACCESS EXCLUSIVE MODE` - end the blocker "
        "(pg_terminate_backend) if it is stuck")
    no_secret_anywhere(run, SECRET)


@pytest.mark.sandbox
def test_active_connections_above_the_limit(sandbox: Sandbox, tmp_path: Path) -> None:
    busy = [psycopg.connect(db_url(sandbox), autocommit=True,
                            application_name="test-busy") for _ in range(3)]
    threads = [threading.Thread(target=_sleep, args=(c,)) for c in busy]
    for t in threads:
        t.start()
    try:
        with psycopg.connect(db_url(sandbox), autocommit=True) as conn:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'test-busy'"
                    " AND state = 'active'").fetchone()[0] < 3:
                time.sleep(0.05)
        run = run_suite(profile_for(sandbox, tmp_path, connection_limit=2),
                        f"{CHECKS}::test_active_connections", tmp=tmp_path)
    finally:
        with psycopg.connect(db_url(sandbox), autocommit=True) as conn:
            conn.execute("SELECT pg_cancel_backend(pid) FROM pg_stat_activity "
                         "WHERE application_name = 'test-busy'")
        for t in threads:
            t.join(10)
        for c in busy:
            c.close()
    failure = run.failure("test_active_connections")
    assert failure is not None, run.output
    assert failure["severity"] == "P1"
    head, _, tail = failure["message"].partition(" active connections on ")
    assert int(head) >= 3
    assert tail.startswith(f"{redacted(sandbox)}, above the limit of 2 (")
    assert tail.endswith("max_connections 60) - look for slow queries or a connection leak")


def _sleep(conn: psycopg.Connection) -> None:
    with contextlib.suppress(psycopg.Error):
        conn.execute("SELECT pg_sleep(20)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.sandbox
def test_unreachable_database(tmp_path: Path) -> None:
    port = _free_port()
    path = write_sandbox_profile(tmp_path, database={
        "url": f"postgresql://dashboard:{SECRET}@127.0.0.1:{port}/security_dashboard",
        "connect_timeout": 2})
    shutil.rmtree(yaml_state_dir(path), ignore_errors=True)  # nothing is started here
    start = time.monotonic()
    run = run_suite(path, CHECKS, tmp=tmp_path)
    assert time.monotonic() - start < 30
    failure = run.failure("test_select_one")
    assert failure is not None, run.output
    assert failure["severity"] == "P1"
    assert failure["message"] == (
        f"cannot connect to PostgreSQL at postgresql://dashboard:***@127.0.0.1:{port}/"
        "security_dashboard for SELECT 1: connection refused - the database is down or not "
        "listening there")
    assert len(run.verdict["failures"]) == 5  # every database check says so; none hangs
    no_secret_anywhere(run, SECRET)


def yaml_state_dir(path: Path) -> str:
    import yaml

    return yaml.safe_load(path.read_text())["sandbox"]["state_dir"]


@pytest.mark.sandbox
def test_bad_password_is_not_shown(sandbox: Sandbox, tmp_path: Path) -> None:
    wrong = "Wr0ng-s3cret-pw"
    url = db_url(sandbox).replace(f":{SECRET}@", f":{wrong}@")
    run = run_suite(profile_for(sandbox, tmp_path, url=url), f"{CHECKS}::test_select_one",
                    tmp=tmp_path)
    failure = run.failure("test_select_one")
    assert failure is not None, run.output
    assert failure["message"] == (
        f"PostgreSQL at {redacted(sandbox)} rejected the credentials for SELECT 1: password "
        'authentication failed for user "dashboard" - check the user and password in '
        "DATABASE_URL")
    no_secret_anywhere(run, wrong)


@pytest.mark.unit
def test_empty_url_says_which_variable() -> None:
    """staging/production read ${DATABASE_URL:-}: unset, the checks say so (probe level)."""
    obs = db_probe.ping(db_probe.Database(config.Database(url="")))
    assert obs.error == "SELECT 1: database.url is empty - set DATABASE_URL in the environment"


# --- replication: a real streaming replica of the sandbox's PostgreSQL ----------------------


@contextlib.contextmanager
def replica(sb: Sandbox, apply_delay: str) -> Iterator[int]:
    """pg_basebackup of the sandbox's database, started as a hot standby that applies WAL
    `apply_delay` late (recovery_min_apply_delay): replication lag on demand."""
    bindir = Path(sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))[-1]).parent
    data = Path(tempfile.mkdtemp(prefix="playbook-replica-"))
    user = "postgres" if os.geteuid() == 0 else None
    port = _free_port()
    assert sb.profile.sandbox is not None
    env = {**os.environ, "PGPASSWORD": SECRET}
    proc = None
    try:
        if user:
            shutil.chown(data, user)
        data.chmod(0o700)
        subprocess.run([str(bindir / "pg_basebackup"), "-h", "127.0.0.1", "-p",
                        str(sb.profile.sandbox.ports.postgres), "-U", "dashboard", "-D",
                        str(data), "-R", "-X", "stream", "--no-sync", "-c", "fast"],
                       check=True, capture_output=True, user=user, env=env, timeout=60)
        proc = subprocess.Popen(
            [str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-c",
             "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c",
             f"recovery_min_apply_delay={apply_delay}", "-c", "fsync=off", "-c",
             "shared_preload_libraries=", "-c", "cluster_name=test-replica"],
            user=user, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        yield port
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(data, ignore_errors=True)


@pytest.mark.sandbox
def test_replication_lag(sandbox: Sandbox, tmp_path: Path) -> None:
    with replica(sandbox, "2s"), psycopg.connect(db_url(sandbox), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS test_ticks (t timestamptz)")

        def streaming_with_lag() -> bool:
            conn.execute("INSERT INTO test_ticks VALUES (now())")
            row = conn.execute("SELECT state, EXTRACT(epoch FROM replay_lag)::float "
                               "FROM pg_stat_replication").fetchone()
            return bool(row and row[0] == "streaming" and (row[1] or 0) > 1.5)

        deadline = time.monotonic() + 20
        while not streaming_with_lag():
            assert time.monotonic() < deadline, "the replica never showed its 2 s lag"
            time.sleep(0.2)
        # Within a generous limit the replica passes (probe level: no second suite run)...
        assert sandbox.profile.database is not None
        db = db_probe.Database(sandbox.profile.database)
        (row,) = db_probe.replication(db).rows
        db.close()
        assert row["state"] == "streaming" and 1.5 < row["replay_lag"] < 10
        # ... and the check goes red above a limit of 1 s.
        red = run_suite(profile_for(sandbox, tmp_path, replication_lag_limit_seconds=1),
                        f"{CHECKS}::test_replication_lag", tmp=tmp_path)
        conn.execute("DROP TABLE test_ticks")
    failure = red.failure("test_replication_lag")
    assert failure is not None, red.output
    assert failure["severity"] == "P1"
    assert failure["message"].startswith(
        f"1 of 1 replicas of {redacted(sandbox)} behind the limit of 1 s or not streaming: "
        "test-replica (127.0.0.1) streaming, replay lag ")
    assert failure["message"].endswith(" bytes behind")


@pytest.mark.unit
def test_redact() -> None:
    assert db_probe.redact("postgresql://u:p%40ss@db:5432/x?sslmode=require") == (
        "postgresql://u:***@db:5432/x?sslmode=require")
    assert db_probe.redact("postgresql://u@db/x") == "postgresql://u@db/x"
    assert db_probe.redact("host=db user=u password='a b' dbname=x") == (
        "host=db user=u password=*** dbname=x")
