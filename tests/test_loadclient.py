"""The journeys' HTTP client (playbook/loadclient.py) against hostile loopback servers.

A real Locust user (LoadUser, either client) runs in tests/loadclient_driver.py's process (Locust
patches the interpreter with gevent); the servers run here, in threads, and count what they see.
Where FastHttpUser is the reference (resets and retries, keep-alive, TLS), both clients run the
same case and must agree.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import hashlib
import json
import queue
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

pytestmark = pytest.mark.unit  # loopback servers and a driver process, no sandbox

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = ["playbook", "fasthttp"]
LARGE = hashlib.sha256(b"seed").digest() * (8 * 1024 * 1024 // 32)  # 8 MiB
JSON_BODY = b'{"status": "ok", "items": [1, 2, 3]}'


# --- the servers --------------------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    names: list[str] = field(default_factory=list)  # every header line's name, in order


@dataclass
class Server:
    """HTTP/1.1 on 127.0.0.1 (TLS with `tls`); the path picks the behaviour (ROUTES)."""

    tls: ssl.SSLContext | None = None
    connections: int = 0
    requests: list[Request] = field(default_factory=list)
    sock: socket.socket = field(default_factory=socket.socket)
    stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Server:
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    @property
    def base(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.sock.getsockname()[1]}"

    def reset_counts(self) -> None:
        self.connections, self.requests = 0, []

    def close(self) -> None:
        self.stop.set()
        self.sock.close()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            buf = b""
            while not self.stop.is_set():
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in
                           (ln.partition(":") for ln in lines[1:])}
                n = int(headers.get("content-length", "0"))
                while len(buf) < n:
                    buf += conn.recv(65536)
                body, buf = buf[:n], buf[n:]
                req = Request(method, target, headers, body,
                              [ln.partition(":")[0].lower() for ln in lines[1:]])
                self.requests.append(req)
                route = ROUTES.get(target.split("?")[0]) or ROUTES.get(
                    "/" + target.split("/")[1])
                if route is None or not route(conn, req):
                    return
        except (OSError, ValueError):
            return
        finally:
            with contextlib.suppress(OSError):
                conn.close()


def _send(conn: socket.socket, status: str, body: bytes = b"", headers: str = "") -> bool:
    conn.sendall(f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{headers}\r\n"
                 .encode() + body)
    return True


def _reset(conn: socket.socket) -> bool:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return False  # closed by _serve: an RST, not a FIN


def _chunked(conn: socket.socket, req: Request) -> bool:
    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                 b"Content-Type: application/json\r\n\r\n"
                 b"5;ext=1\r\n{\"sta\r\n"  # a chunk extension is ignored
                 b"10\r\ntus\": \"ok\", \"ite\r\n"
                 b"f\r\nms\": [1, 2, 3]}\r\n"
                 b"0\r\nX-Trailer: yes\r\n\r\n")
    return True


def _large_chunked(conn: socket.socket, req: Request) -> bool:
    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    for i in range(0, len(LARGE), 65536):
        part = LARGE[i:i + 65536]
        conn.sendall(b"%x\r\n%b\r\n" % (len(part), part))
    conn.sendall(b"0\r\n\r\n")
    return True


def _redirect(conn: socket.socket, req: Request) -> bool:
    n = int(req.path.rsplit("/", 1)[1])
    location = "/json" if n == 0 else f"/redirect/{n - 1}"
    return _send(conn, "302 Found", headers=f"Location: {location}\r\n")


def _drip(conn: socket.socket, req: Request) -> bool:
    body = b"x" * 30
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n")
    for b in body:  # 3 s in all, a byte every 0.1 s: no single read ever waits long
        time.sleep(0.1)
        conn.sendall(bytes([b]))
    return True


def _hang(conn: socket.socket, req: Request) -> bool:
    conn.settimeout(8)
    with contextlib.suppress(OSError):
        conn.recv(1)  # until the client gives up and closes
    return False


ROUTES: dict[str, Callable[[socket.socket, Request], bool]] = {
    "/json": lambda c, r: _send(c, "200 OK", JSON_BODY, "Content-Type: application/json\r\n"),
    "/chunked": _chunked,
    "/large": lambda c, r: _send(c, "200 OK", LARGE),
    "/large-chunked": _large_chunked,
    "/gzip": lambda c, r: _send(c, "200 OK", gzip.compress(JSON_BODY),
                                "Content-Encoding: gzip\r\n"),
    "/until-close": lambda c, r: bool(c.sendall(b"HTTP/1.0 200 OK\r\n\r\n" + JSON_BODY)),
    "/interim": lambda c, r: bool(c.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"))
    or _send(c, "200 OK", JSON_BODY),
    "/redirect": _redirect,
    "/loop": lambda c, r: _send(c, "302 Found", headers="Location: /loop\r\n"),
    "/see-other": lambda c, r: _send(c, "303 See Other", headers="Location: /echo\r\n"),
    "/echo": lambda c, r: _send(c, "200 OK", json.dumps(
        {"method": r.method, "length": len(r.body), "headers": r.headers,
         "names": r.names}).encode()),
    "/set-cookie": lambda c, r: _send(c, "200 OK", b"{}",
                                      "Set-Cookie: session=abc123; Path=/\r\n"
                                      "Set-Cookie: theme=dark; Path=/other\r\n"),
    "/status": lambda c, r: _send(c, r.path.rsplit("/", 1)[1] + " Oops", b"{}"),
    "/once": lambda c, r: _send(c, "200 OK", JSON_BODY) and False,  # then closes: stale
    "/close": lambda c, r: False,  # no answer at all: a FIN
    "/reset": lambda c, r: _reset(c),
    "/reset-mid": lambda c, r: bool(c.sendall(b"HTTP/1.1 200 OK\r\nContent-Le")) or _reset(c),
    "/drip": _drip,
    "/hang": _hang,
}


def _cert(tmp: Path, name: str, san: list[x509.GeneralName]) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / f"{name}.pem", tmp / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@dataclass
class Servers:
    plain: Server
    tls: Server  # a self-signed certificate for 127.0.0.1
    wrong: Server  # a self-signed certificate for another name
    ca: Path  # the certificate tls serves
    wrong_ca: Path


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    import ipaddress

    tmp = tmp_path_factory.mktemp("certs")
    good = _cert(tmp, "loopback", [x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                   x509.DNSName("localhost")])
    wrong = _cert(tmp, "elsewhere", [x509.DNSName("elsewhere.invalid")])

    def context(pair: tuple[Path, Path]) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*pair)
        return ctx

    s = Servers(Server().start(), Server(context(good)).start(), Server(context(wrong)).start(),
                good[0], wrong[0])
    yield s
    for server in (s.plain, s.tls, s.wrong):
        server.close()


# --- the driver ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def drive() -> Iterator[Callable[..., list[dict[str, Any]]]]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "loadclient_driver.py")],
                            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None and proc.stdin is not None
    threading.Thread(target=lambda: [lines.put(ln) for ln in proc.stdout],  # type: ignore
                     daemon=True).start()

    def call(base: str, *calls: dict[str, Any], plan: dict[str, Any] | None = None,
             **settings: Any) -> list[dict[str, Any]]:
        assert proc.stdin is not None
        spec = {"base": base, "settings": settings, "calls": list(calls)}
        if plan is not None:
            spec["plan"] = plan
        proc.stdin.write(json.dumps(spec) + "\n")
        proc.stdin.flush()
        out = json.loads(lines.get(timeout=60))
        assert "crash" not in out, out["crash"]
        return out["results"]

    try:
        yield call
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


Drive = Callable[..., list[dict[str, Any]]]


def get(url: str, **kwargs: Any) -> dict[str, Any]:
    return {"url": url, "kwargs": kwargs}


# --- bodies -------------------------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("path, body", [
    ("/json", JSON_BODY), ("/chunked", JSON_BODY), ("/gzip", JSON_BODY),
    ("/until-close", JSON_BODY), ("/interim", JSON_BODY), ("/large", LARGE),
    ("/large-chunked", LARGE)])
def test_bodies_are_read_whole(servers: Servers, drive: Drive, client: str, path: str,
                               body: bytes) -> None:
    (r,) = drive(servers.plain.base, get(path), http_client=client, timeout=10)
    assert r["error"] is None and r["status"] == 200, r
    assert r["length"] == len(body) and r["sha1"] == hashlib.sha1(body).hexdigest()
    (event,) = r["events"]  # reported once, with its length and time
    assert event["response_length"] == len(body) and event["exception"] is None
    assert event["response_time"] > 0 and event["name"] == path


def test_keep_alive_one_connection_for_many_requests(servers: Servers, drive: Drive) -> None:
    servers.plain.reset_counts()
    results = drive(servers.plain.base, *[get(p) for p in ("/json", "/chunked", "/gzip") * 4])
    assert all(r["status"] == 200 for r in results)
    assert servers.plain.connections == 1, servers.plain.connections
    headers = servers.plain.requests[0].headers
    assert headers["host"] == servers.plain.base.removeprefix("http://")
    assert "gzip" in headers["accept-encoding"]


def test_request_bodies_and_names(servers: Servers, drive: Drive) -> None:
    posted, _, named, renamed = drive(
        servers.plain.base,
        {"method": "POST", "url": "/echo", "kwargs": {"json": {"a": 1}}},
        {"method": "POST", "url": "/echo?x=1", "kwargs": {"data": {"k": "v w"}}},
        {"url": "/json?id=7", "kwargs": {"name": "/json?id=[id]"}},
        {"url": "/json?id=8", "rename": "grouped"})
    echo = json.loads(posted["body"])
    assert echo["method"] == "POST" and echo["length"] == len(b'{"a": 1}')
    assert echo["headers"]["content-type"] == "application/json"
    assert servers.plain.requests[-3].body == b"k=v+w"
    assert named["events"][0]["name"] == "/json?id=[id]"
    assert renamed["events"][0]["name"] == "grouped"


def test_own_headers_replace_the_defaults(servers: Servers, drive: Drive) -> None:
    own, plain = drive(servers.plain.base,
                       get("/echo", headers={"accept": "application/json", "X-Trace": "1",
                                             "User-Agent": "journey/1"}), get("/echo"))
    sent = json.loads(own["body"])
    assert sent["headers"]["accept"] == "application/json"
    assert sent["headers"]["user-agent"] == "journey/1" and sent["headers"]["x-trace"] == "1"
    assert sorted(sent["names"]) == sorted(set(sent["names"])), sent["names"]  # no repeats
    assert json.loads(plain["body"])["headers"]["accept"] == "*/*"  # the cache is intact


# --- checks and reports -------------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS)
def test_catch_response_decides_the_report(servers: Servers, drive: Drive, client: str) -> None:
    failed, forgiven, bad = drive(servers.plain.base,
                                  {"url": "/json", "catch": "fail"},
                                  {"url": "/status/503", "catch": "success"},
                                  get("/status/503"), http_client=client)
    assert failed["events"][0]["exception"] == "CatchResponseError: the check said no"
    assert forgiven["status"] == 503 and forgiven["events"][0]["exception"] is None
    assert bad["status"] == 503 and bad["events"][0]["exception"] is not None


# --- redirects and cookies ----------------------------------------------------------------


def test_redirects_followed_when_asked(servers: Servers, drive: Drive) -> None:
    followed, kept, looped, see_other = drive(
        servers.plain.base, get("/redirect/3"), get("/redirect/3", allow_redirects=False),
        get("/loop"), {"method": "POST", "url": "/see-other", "kwargs": {"data": "x"}})
    assert followed["status"] == 200 and followed["length"] == len(JSON_BODY)
    assert followed["events"][0]["url"].endswith("/json")
    assert kept["status"] == 302 and kept["error"] is None
    assert looped["status"] == 0 and looped["error"].startswith(
        "TooManyRedirects: stopped after 10 redirects")
    echo = json.loads(see_other["body"])  # 303 after a POST: a GET without the body
    assert echo["method"] == "GET" and echo["length"] == 0


def test_cookies_kept_and_sent_by_path(servers: Servers, drive: Drive) -> None:
    _, echo = drive(servers.plain.base, get("/set-cookie"), get("/echo"))
    assert json.loads(echo["body"])["headers"]["cookie"] == "session=abc123"
    _, echo = drive(servers.plain.base, get("/set-cookie"), get("/echo"), cookies=False)
    assert "cookie" not in json.loads(echo["body"])["headers"]


# --- TLS ----------------------------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS)
def test_tls_verified_against_the_given_ca(servers: Servers, drive: Drive, client: str) -> None:
    (trusted,) = drive(servers.tls.base, get("/json"), http_client=client,
                       ca_file=str(servers.ca))
    (untrusted,) = drive(servers.tls.base, get("/json"), http_client=client)
    (wrong_name,) = drive(servers.wrong.base, get("/json"), http_client=client,
                          ca_file=str(servers.wrong_ca))
    (unverified,) = drive(servers.wrong.base, get("/json"), http_client=client, insecure=True)
    assert trusted["status"] == 200 and trusted["error"] is None, trusted
    assert untrusted["status"] == 0 and "CERTIFICATE_VERIFY_FAILED" in untrusted["error"]
    assert "self-signed certificate" in untrusted["error"]
    assert wrong_name["status"] == 0 and "CERTIFICATE_VERIFY_FAILED" in wrong_name["error"]
    assert "IP address mismatch" in wrong_name["error"], wrong_name["error"]
    assert unverified["status"] == 200, unverified
    assert untrusted["events"][0]["exception"] is not None  # reported as a failure


@pytest.mark.parametrize("client", CLIENTS)
def test_the_plan_sets_the_client_and_tls(servers: Servers, drive: Drive, client: str) -> None:
    """A profile's load.client, tls_verify and ca_file reach the users through the plan."""
    plan = {"stages": [{"duration": 1, "users": 1, "spawn_rate": 1}], "client": client,
            "timeout": 2, "tls_verify": False}
    (unverified,) = drive(servers.wrong.base, get("/json"), plan=plan)
    (verified,) = drive(servers.wrong.base, get("/json"), plan={**plan, "tls_verify": True})
    (trusted,) = drive(servers.tls.base, get("/json"),
                       plan={**plan, "tls_verify": True, "ca_file": str(servers.ca)})
    assert unverified["client"] == ("LoadSession" if client == "playbook" else
                                     "FastHttpSession")
    assert unverified["status"] == 200 and trusted["status"] == 200, (unverified, trusted)
    assert verified["status"] == 0 and "CERTIFICATE_VERIFY_FAILED" in verified["error"]


# --- resets and retries: the same as FastHttpUser ----------------------------------------


@pytest.mark.parametrize("path, connections, retried", [
    ("/reset", 12, True),  # reset before any answer: retried, at most concurrency + 1 times
    ("/close", 12, True),  # closed before any answer: the same
    ("/reset-mid", 1, False),  # lost in the middle of an answer: reported at once
], ids=["reset", "closed", "reset-mid"])
def test_reset_and_retry_as_fasthttpuser(servers: Servers, drive: Drive, path: str,
                                         connections: int, retried: bool) -> None:
    seen = {}
    for client in CLIENTS:
        servers.plain.reset_counts()
        (r,) = drive(servers.plain.base, get(path), http_client=client)
        assert r["status"] == 0 and r["error"] and r["events"][0]["exception"], r
        seen[client] = servers.plain.connections
    assert seen == {"playbook": connections, "fasthttp": connections}, seen
    servers.plain.reset_counts()  # a POST is never sent twice
    (r,) = drive(servers.plain.base, {"method": "POST", "url": path, "kwargs": {"data": "x"}})
    assert r["status"] == 0 and servers.plain.connections == 1


@pytest.mark.parametrize("client", CLIENTS)
def test_stale_keep_alive_connection_is_retried(servers: Servers, drive: Drive,
                                                client: str) -> None:
    servers.plain.reset_counts()
    first, second = drive(servers.plain.base, get("/once"), get("/json"), http_client=client)
    assert first["status"] == 200 and second["status"] == 200, second
    assert servers.plain.connections == 2


@pytest.mark.parametrize("client", CLIENTS)
def test_refused_connection_is_reported_once(drive: Drive, client: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        (r,) = drive(f"http://127.0.0.1:{port}", get("/json"), http_client=client)
    assert r["status"] == 0 and "ConnectionRefusedError" in r["error"]
    assert len(r["events"]) == 1 and r["events"][0]["response_length"] == 0


# --- timeouts: a deadline for the whole request -------------------------------------------


def test_hang_is_cut_at_the_timeout(servers: Servers, drive: Drive) -> None:
    (r,) = drive(servers.plain.base, get("/hang"), timeout=0.5)
    assert r["status"] == 0 and r["error"] == \
        "RequestTimeout: no response within the 0.5 s timeout"
    assert 0.45 < r["elapsed"] < 1.5, r["elapsed"]


def test_drip_is_cut_at_the_total_timeout_unlike_fasthttp(servers: Servers,
                                                          drive: Drive) -> None:
    (ours,) = drive(servers.plain.base, get("/drip"), timeout=1.0)
    assert ours["status"] == 0 and ours["error"] == \
        "RequestTimeout: no complete response body within the 1 s timeout"
    assert 0.95 < ours["elapsed"] < 2.0, ours["elapsed"]
    # FastHttpUser's timeout is per read: the same server keeps it for the whole drip
    (theirs,) = drive(servers.plain.base, get("/drip"), http_client="fasthttp", timeout=1.0)
    assert theirs["status"] == 200 and theirs["elapsed"] > 2.5, theirs


def test_connect_timeout(drive: Drive) -> None:
    # A listener whose accept queue is full: the kernel drops the SYN, connect() waits.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(0)
        fillers = []
        for _ in range(3):  # non-blocking: the ones the queue does not take just wait
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex(s.getsockname())
            fillers.append(f)
        try:
            (r,) = drive(f"http://127.0.0.1:{s.getsockname()[1]}", get("/json"), timeout=5,
                         connect_timeout=0.3)
        finally:
            for f in fillers:
                f.close()
    assert r["status"] == 0 and "timed out after 0.3 s" in r["error"], r
    assert r["elapsed"] < 1.5
