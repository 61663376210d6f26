"""The sandbox's long-running supervisor: starts every component and keeps the backend's
replicas ("pods") running like a Deployment controller would.

Run by `playbook sandbox up` as a detached process: `python -m playbook.sandbox.supervisor
PROFILE`. It writes state.json (pids, ports, URLs) in the state directory and stops every child
on SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import hashlib
import importlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from playbook import config
from playbook.sandbox.state import CHAOS_FILE, ENDPOINTS_FILE, STATE_FILE, write_json

NAMESPACE = "security-dashboard"
DEPLOYMENT = "security-dashboard-backend"
DB_NAME = "security_dashboard"
DB_USER = "dashboard"
DB_PASSWORD = "sandbox-only"  # a local, loopback-only database; never a real secret
# Components beyond the core (front, PostgreSQL, Redis, pods), started in this order once the
# pods are ready. Each module has `async def start(sup: Supervisor) -> None`: it may spawn
# children (sup.spawn + sup.children[name]), run servers in this event loop, describe itself in
# sup.extra_components[name] (url/port/path for `sandbox status`), and subscribe to pod changes
# with sup.on_publish.append(callback).
# An addon may also have `async def prestart(sup)`, awaited before PostgreSQL starts, for what
# is slow to settle and needs no pod (Prometheus: its discovery takes ~6 s to a first scrape).
ADDONS: list[str] = ["playbook.sandbox.kube.server", "playbook.sandbox.aws",
                     "playbook.sandbox.monitoring"]
PROBE_PERIOD = 0.25  # seconds between readiness probes (kubelet: periodSeconds)
BACKOFF_CAP = 8.0  # CrashLoopBackOff delay cap (kubelet: 5 min; shortened for the sandbox)


def _now() -> float:
    return time.time()


@dataclass
class Pod:
    """One replica process, with the fields a kubelet would report for it."""

    name: str
    slot: int
    port: int
    version: str
    created: float = field(default_factory=_now)
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    ready: bool = False
    ready_since: float = 0.0
    restart_count: int = 0
    last_exit_code: int | None = None
    last_finished: float = 0.0
    backoff_until: float = 0.0
    failures_in_row: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    deleting: bool = False

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def waiting_reason(self) -> str | None:
        if self.running:
            return None
        if self.restart_count and self.backoff_until > _now():
            return "CrashLoopBackOff"
        return "ContainerCreating" if not self.restart_count else "Error"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Event:
    type: str  # Normal | Warning
    reason: str
    object: str  # e.g. "Pod/security-dashboard-backend-abc-xyz"
    message: str
    time: float = field(default_factory=_now)  # the last occurrence
    count: int = 1
    first: float = field(default_factory=_now)
    uid: str = field(default_factory=lambda: secrets.token_hex(8))


class Supervisor:
    def __init__(self, profile: config.Profile) -> None:
        if profile.sandbox is None:
            raise SystemExit(f"{profile.source}: no `sandbox` section; not a sandbox profile")
        self.profile = profile
        self.sb = profile.sandbox
        self.dir = Path(self.sb.state_dir).resolve()
        self.logs = self.dir / "logs"
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.pods: dict[str, Pod] = {}
        self.replicas = self.sb.replicas
        self.version = self.sb.version
        self.events: list[Event] = []
        self.started_at = time.monotonic()
        self.cold_start: float | None = None  # set once every component is up and ready
        self.stopping = asyncio.Event()
        self.pg_bin = self._pg_bindir()
        self.extra_components: dict[str, dict[str, Any]] = {}
        self.token_secret = secrets.token_hex(32)  # shared by the replicas, per sandbox
        self.on_publish: list[Any] = []  # called with the supervisor after pod changes
        # Pod URLs the load balancer must not route to: targets deregistered through the AWS
        # API (the aws addon swaps in a new set; read here from the event loop).
        self.unrouted: frozenset[str] = frozenset()
        # Rolling updates may run `surge` pods above `replicas` (the Deployment's maxSurge).
        self.surge = 0
        # The Service's selector: the front routes only to pods whose labels match it.
        self.service_selector: dict[str, str] = {"app": DEPLOYMENT}
        # Containers asked to stop: (process, slot, kill deadline); reaped by the controller.
        self.terminating: list[tuple[subprocess.Popen[bytes], int, float]] = []

    # --- processes ---------------------------------------------------------------------

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None,
              user: str | None = None) -> subprocess.Popen[bytes]:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})}, user=user, cwd=self.dir,
            start_new_session=False)
        log.close()
        return proc

    def record(self, type_: str, reason: str, obj: str, message: str) -> None:
        last = self.events[-1] if self.events else None
        if last and (last.type, last.reason, last.object, last.message) == (
                type_, reason, obj, message):
            last.count += 1
            last.time = _now()
        else:
            self.events.append(Event(type_, reason, obj, message))
            del self.events[:-500]

    # --- PostgreSQL and Redis ------------------------------------------------------------

    @staticmethod
    def _pg_bindir() -> Path:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                       key=lambda p: int(p.split("/")[4]))
        if not found:
            raise SystemExit("PostgreSQL is not installed (apt-get install postgresql); "
                             "`make demo` installs it")
        return Path(found[-1]).parent

    def _pg_user(self) -> str | None:
        # initdb refuses to run as root: as root, PostgreSQL runs as `postgres`.
        return "postgres" if os.geteuid() == 0 else None

    async def start_postgres(self) -> None:
        data = self.dir / "pgdata"
        user = self._pg_user()
        if not (data / "PG_VERSION").exists():
            shutil.rmtree(data, ignore_errors=True)
            data.mkdir(parents=True)
            pwfile = self.dir / "pgpass.tmp"
            pwfile.write_text(DB_PASSWORD + "\n")
            if user:
                uid = pwd.getpwnam(user).pw_uid
                for p in (data, pwfile):
                    os.chown(p, uid, -1)
            subprocess.run(
                [str(self.pg_bin / "initdb"), "-D", str(data), "-U", DB_USER,
                 "--auth=scram-sha-256", f"--pwfile={pwfile}", "--no-sync", "-E", "UTF8"],
                check=True, user=user, capture_output=True, cwd=self.dir)
            pwfile.unlink()
        port = self.sb.ports.postgres
        self.children["postgres"] = self.spawn("postgres", [
            str(self.pg_bin / "postgres"), "-D", str(data), "-p", str(port),
            "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
            "-c", "max_connections=60", "-c", "fsync=off",
            "-c", "shared_preload_libraries=pg_stat_statements",
        ], user=user)
        await self._wait(lambda: self._pg_ping("postgres"), "postgres", 30)
        await asyncio.to_thread(self._seed)

    def database_url(self, db: str = DB_NAME) -> str:
        return (f"postgresql://{DB_USER}:{DB_PASSWORD}@127.0.0.1:{self.sb.ports.postgres}/{db}"
                "?connect_timeout=2")

    def _pg_ping(self, db: str) -> bool:
        try:
            with psycopg.connect(self.database_url(db), connect_timeout=1):
                return True
        except psycopg.Error:
            return False

    def _seed(self) -> None:
        with psycopg.connect(self.database_url("postgres"), autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                (DB_NAME,)).fetchone():
                conn.execute(f"CREATE DATABASE {DB_NAME}")
        from playbook.sandbox import seed

        with psycopg.connect(self.database_url(), autocommit=True) as conn:
            seed.apply(conn)

    async def start_redis(self) -> None:
        (self.dir / "redis").mkdir(exist_ok=True)
        self.children["redis"] = self.spawn("redis", [
            shutil.which("redis-server") or "redis-server", "--port",
            str(self.sb.ports.redis), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(self.dir / "redis"), "--daemonize", "no",
            "--protected-mode", "yes",
        ])
        await self._wait(lambda: self._tcp_ping(self.sb.ports.redis), "redis", 15)

    @staticmethod
    def _tcp_ping(port: int) -> bool:
        import socket

        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    async def _wait(self, probe: Any, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await asyncio.to_thread(probe):
                return
            proc = self.children.get(what)
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{what} exited with code {proc.returncode}; "
                                   f"see {self.logs / (what + '.log')}")
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{what} did not become ready within {timeout:.0f} s; "
                           f"see {self.logs / (what + '.log')}")

    # --- the Deployment controller --------------------------------------------------------

    def template_hash(self, version: str | None = None) -> str:
        return hashlib.sha256((version or self.version).encode()).hexdigest()[:10]

    def new_pod(self) -> Pod:
        used = {p.slot for p in self.pods.values()} | {slot for _, slot, _ in self.terminating}
        slot = next(i for i in range(1000) if i not in used)
        name = f"{DEPLOYMENT}-{self.template_hash()}-{secrets.token_hex(3)[:5]}"
        pod = Pod(name=name, slot=slot, port=self.sb.ports.replica_base + slot,
                  version=self.version,
                  labels={"app": DEPLOYMENT, "version": "stable",
                          "pod-template-hash": self.template_hash()})
        self.pods[name] = pod
        self.record("Normal", "SuccessfulCreate", f"ReplicaSet/{DEPLOYMENT}-"
                    f"{self.template_hash()}", f"Created pod: {name}")
        self.start_container(pod)
        return pod

    def start_container(self, pod: Pod) -> None:
        pod.process = self.spawn(pod.name, [
            sys.executable, "-m", "uvicorn", "playbook.sandbox.app:app",
            "--host", "127.0.0.1", "--port", str(pod.port), "--no-access-log",
            "--log-level", "warning", "--timeout-graceful-shutdown", "1",
        ], env={
            "DATABASE_URL": self.database_url(),
            "REDIS_URL": f"redis://127.0.0.1:{self.sb.ports.redis}/0",
            "POD_NAME": pod.name, "APP_VERSION": pod.version,
            "SANDBOX_CHAOS": str(self.dir / CHAOS_FILE),
            "SANDBOX_TOKEN_SECRET": self.token_secret,
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        })
        pod.started = _now()
        pod.ready = False
        self.record("Normal", "Started", f"Pod/{pod.name}", "Started container backend")

    def stop_pod(self, pod: Pod, grace: float = 2.0) -> None:
        """SIGTERM now, SIGKILL after `grace` seconds (by reap()): never blocks the loop."""
        pod.deleting = True
        if pod.running:
            assert pod.process is not None
            if grace > 0:
                pod.process.terminate()
            else:
                pod.process.kill()
            self.terminating.append((pod.process, pod.slot, time.monotonic() + grace))
        self.record("Normal", "Killing", f"Pod/{pod.name}", "Stopping container backend")

    def reap(self) -> None:
        now = time.monotonic()
        for item in list(self.terminating):
            proc, _, deadline = item
            if proc.poll() is not None:
                self.terminating.remove(item)
            elif now >= deadline:
                proc.kill()

    def delete_pod(self, name: str, grace: float = 2.0) -> bool:
        pod = self.pods.pop(name, None)
        if pod is None:
            return False
        self.stop_pod(pod, grace)
        return True

    def reconcile(self) -> None:
        self.reap()
        now = _now()
        for pod in list(self.pods.values()):
            if pod.process is not None and not pod.running and not pod.deleting:
                # The container died: restart it in place, backing off like the kubelet.
                code = pod.process.returncode
                pod.process = None
                pod.ready = False
                pod.last_exit_code, pod.last_finished = code, now
                lived = now - pod.started
                pod.failures_in_row = pod.failures_in_row + 1 if lived < 10 else 1
                delay = min(BACKOFF_CAP, 0.5 * 2 ** (pod.failures_in_row - 1))
                pod.backoff_until = now + delay
                pod.restart_count += 1
                self.record("Warning", "BackOff", f"Pod/{pod.name}",
                            f"Back-off restarting failed container backend (exit code {code})")
            if pod.process is None and now >= pod.backoff_until:
                self.start_container(pod)
        while len(self.pods) < self.replicas:
            self.new_pod()
        if len(self.pods) > self.replicas + self.surge:
            # Scale down: remove old versions, then the not-ready, then the newest (as the
            # ReplicaSets do).
            victims = sorted(self.pods.values(),
                             key=lambda p: (p.version == self.version, p.ready, -p.created))
            for pod in victims[: len(self.pods) - self.replicas - self.surge]:
                self.delete_pod(pod.name)

    async def probe(self, client: httpx.AsyncClient, pod: Pod) -> None:
        if not pod.running:
            pod.ready = False
            return
        try:
            r = await client.get(pod.url + "/api/ready")
            ok = r.status_code == 200
        except httpx.HTTPError:
            ok = False
        if ok and not pod.ready:
            pod.ready_since = _now()
            pod.failures_in_row = 0
        if not ok and pod.ready and pod.running:
            self.record("Warning", "Unhealthy", f"Pod/{pod.name}",
                        "Readiness probe failed: GET /api/ready")
        pod.ready = ok

    def publish(self) -> None:
        running = [p for p in self.pods.values()
                   if p.running and p.url not in self.unrouted and all(
            p.labels.get(k) == v for k, v in self.service_selector.items())]
        endpoints = {"ready": [p.url for p in running if p.ready],
                     "running": [p.url for p in running]}
        if endpoints != getattr(self, "_published", None):
            write_json(self.dir / ENDPOINTS_FILE, endpoints)
            self._published = endpoints
            for callback in self.on_publish:
                callback(self)
        self.write_state()

    def write_state(self) -> None:
        ready = self.cold_start is not None
        comps: dict[str, Any] = {
            "front": {"url": self.profile.service.base_url,
                      "pid": self._pid("front"), "port": self.sb.ports.front},
            "postgres": {"port": self.sb.ports.postgres, "pid": self._pid("postgres"),
                         "url": f"postgresql://{DB_USER}@127.0.0.1:{self.sb.ports.postgres}/"
                                f"{DB_NAME}"},
            "redis": {"port": self.sb.ports.redis, "pid": self._pid("redis"),
                      "url": f"redis://127.0.0.1:{self.sb.ports.redis}/0"},
        }
        for name, info in self.extra_components.items():
            # An addon serving from this process (no child) reports the supervisor's pid.
            comps[name] = {**info, "pid": self._pid(name) or info.get("pid")}
        pods = [{"name": p.name, "pid": p.process.pid if p.running and p.process else None,
                 "port": p.port, "ready": p.ready, "restarts": p.restart_count}
                for p in self.pods.values()]
        state = {"supervisor_pid": os.getpid(), "ready": ready, "profile": self.profile.source,
                 "cold_start_seconds": self.cold_start,
                 "components": comps, "pods": pods,
                 "terminating": [proc.pid for proc, _, _ in self.terminating]}
        if state != getattr(self, "_state", None):
            write_json(self.dir / STATE_FILE, state)
            self._state = state

    def _pid(self, name: str) -> int | None:
        proc = self.children.get(name)
        return proc.pid if proc is not None and proc.poll() is None else None

    async def controller(self) -> None:
        async with httpx.AsyncClient(timeout=1.0) as client:
            while not self.stopping.is_set():
                self.reconcile()
                await asyncio.gather(*(self.probe(client, p) for p in list(self.pods.values())))
                self.publish()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), PROBE_PERIOD)

    # --- lifecycle -------------------------------------------------------------------------

    async def start_front(self) -> None:
        self.children["front"] = self.spawn("front", [
            sys.executable, "-m", "uvicorn", "playbook.sandbox.front:app",
            "--host", "127.0.0.1", "--port", str(self.sb.ports.front), "--no-access-log",
            "--log-level", "warning", "--no-server-header", "--no-date-header",
            # The front is the edge: the client's socket address is the source (uvicorn would
            # otherwise trust X-Forwarded-For from 127.0.0.1 and let a client claim any).
            "--no-proxy-headers",
        ], env={"SANDBOX_ENDPOINTS": str(self.dir / ENDPOINTS_FILE),
                "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
        await self._wait(lambda: self._tcp_ping(self.sb.ports.front), "front", 20)

    async def wait_ready_pods(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(p.ready for p in self.pods.values()) >= min(1, self.replicas) and all(
                    p.ready for p in self.pods.values()):
                return
            await asyncio.sleep(0.1)
        names = [p.name for p in self.pods.values() if not p.ready]
        raise RuntimeError(f"replicas not ready within {timeout:.0f} s: {', '.join(names)}; "
                           f"see {self.logs}")

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)  # PostgreSQL runs as another user when we are root
        write_json(self.dir / CHAOS_FILE, {})
        self.write_state()
        try:
            for module in ADDONS:
                prestart = getattr(importlib.import_module(module), "prestart", None)
                if prestart is not None:
                    await prestart(self)
            await asyncio.gather(self.start_postgres(), self.start_redis())
            controller = asyncio.create_task(self.controller())
            await self.start_front()
            await self.wait_ready_pods()
            for module in ADDONS:
                await importlib.import_module(module).start(self)
            self.cold_start = round(time.monotonic() - self.started_at, 2)
            self.write_state()
            await self.stopping.wait()
            await controller
        except Exception as e:
            (self.dir / "error.txt").write_text(str(e))
            raise
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        for pod in list(self.pods.values()):
            if pod.running and pod.process:
                pod.process.terminate()
        for name, proc in self.children.items():
            if proc.poll() is None:
                # PostgreSQL's SIGTERM waits for clients to leave; SIGINT is its fast shutdown.
                proc.send_signal(signal.SIGINT if name == "postgres" else signal.SIGTERM)
        deadline = time.monotonic() + 5
        for proc, _, _ in self.terminating:
            if proc.poll() is None:
                proc.kill()
        procs = [p.process for p in self.pods.values() if p.process] + list(
            self.children.values()) + [proc for proc, _, _ in self.terminating]
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.pods.clear()
        self.children.clear()


def main() -> None:
    profile = config.load(sys.argv[1])
    asyncio.run(Supervisor(profile).run())


if __name__ == "__main__":
    main()
