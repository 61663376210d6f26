"""`playbook report`: the Allure HTML report from reports/allure-results.

Allure Report 3 (the npm package `allure`, pinned in package.json, installed into ./node_modules
by `make install`) is a Node program: no Java and no download at run time. Around it:
- categories that tell a product defect (a failed check) from an unreachable target and from an
  error of the suite itself (a broken test), written as categories.json into the results and
  given to Allure 3 in its configuration;
- history and trend across runs: Allure 3 appends each run to reports/allure-history.jsonl;
- environment: profile, target and version come from the plugin's environment.properties;
- the load and game-day reports and incident evidence bundles found under reports/ as global
  attachments (the report's "Global Attachments" tab);
- `--open`: the report served on 127.0.0.1 (a thread of http.server) until Ctrl-C;
- no analytics: the Google tag Allure 3 puts in its pages is removed.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from playbook import paths
from playbook.paths import ROOT

REPORT_NAME = "Security Dashboard - playbook checks"
GENERATE_TIMEOUT = 180.0  # seconds; a generate of a few thousand results takes a few seconds
HISTORY_LIMIT = 30  # runs kept in the trend

# A failure whose message says the target could not be reached (the sentences of
# playbook/probes/*). [\s\S]* instead of flags: the same pattern works in Java (Allure 2,
# which must match the whole message) and JavaScript (Allure 3).
UNREACHABLE = (r"[\s\S]*([Cc]onnection refused|[Nn]o answer within|[Cc]ould not connect|"
               r"[Cc]annot connect|DNS lookup failed|[Uu]nreachable|does not resolve)[\s\S]*")
CATEGORIES = [
    {"name": "Target unreachable", "statuses": ["failed", "broken"], "message": UNREACHABLE,
     "description": "the check could not reach what it checks: the environment is down or the "
                    "profile points at the wrong place"},
    {"name": "Product defects", "statuses": ["failed"], "message": None,
     "description": "a check failed: the service or its infrastructure does not do what the "
                    "playbook requires"},
    {"name": "Suite errors", "statuses": ["broken"], "message": None,
     "description": "the suite itself raised an unexpected error: a bug in the checks"},
]
# Other reports of this project, attached to the report when present: reports/<dir>/**.
ATTACH = {"load": {".html", ".json", ".md", ".csv"}, "gameday": {".html", ".json", ".md"},
          "incidents": {".md", ".json", ".yaml", ".txt", ".log", ".csv"}}
ATTACH_MAX_BYTES = 20 * 1024 * 1024  # per file; a huge log belongs in the bundle, not here


class ReportError(Exception):
    """The report could not be made; the message is one sentence saying what to do."""


def allure_command(root: Path = ROOT) -> list[str]:
    """node + Allure 3's CLI from ./node_modules (never npx: that may download)."""
    node = shutil.which("node")
    if node is None:
        raise ReportError("Node.js is not installed: run `make install` (Debian package nodejs)")
    cli = root / "node_modules" / "allure" / "cli.js"
    if not cli.is_file():
        raise ReportError(f"Allure is not installed ({cli} is missing): run `make install` "
                          "(it runs `npm ci` for package.json)")
    return [node, str(cli)]


def write_categories(results: Path) -> Path:
    """categories.json in Allure's results format (read by Allure 2 and 3 alike)."""
    rules = []
    for c in CATEGORIES:
        rule = {"name": c["name"], "matchedStatuses": c["statuses"]}
        if c["message"]:
            rule["messageRegex"] = c["message"]
        rules.append(rule)
    path = results / "categories.json"
    path.write_text(json.dumps(rules, indent=2) + "\n")
    return path


def stage_attachments(reports: Path, staging: Path) -> list[Path]:
    """Copy the load and game-day reports and the evidence bundles into one flat folder, each
    named after its path (incidents/INC-1/timeline.md -> incidents_INC-1_timeline.md): Allure
    names a global attachment by its file name alone."""
    if staging.exists():
        shutil.rmtree(staging)
    staged = []
    for folder, suffixes in ATTACH.items():
        base = reports / folder
        if not base.is_dir():
            continue
        for f in sorted(base.rglob("*")):
            if (f.is_file() and f.suffix in suffixes and not f.is_symlink()
                    and f.stat().st_size <= ATTACH_MAX_BYTES):
                staging.mkdir(parents=True, exist_ok=True)
                target = staging / "_".join(f.relative_to(reports).parts)
                shutil.copyfile(f, target)
                staged.append(target)
    return staged


def allure_config(output: Path, history: Path, name: str = REPORT_NAME,
                  attachments: Path | None = None) -> dict:
    """Allure 3's configuration (allurerc.json)."""
    categories = []
    for c in CATEGORIES:
        matcher: dict = {"statuses": c["statuses"]}
        if c["message"]:
            matcher["message"] = c["message"]
        categories.append({"name": c["name"], "matchers": matcher, "groupBy": ["severity"],
                           "expand": True})
    return {
        "name": name,
        "output": str(output),
        "historyPath": str(history),
        "historyLimit": HISTORY_LIMIT,
        "categories": categories,
        "globalAttachments": [f"{attachments}/*"] if attachments else [],
        "plugins": {"awesome": {"options": {"reportName": name, "singleFile": False,
                                            "reportLanguage": "en", "groupBy": [
                                                "parentSuite", "suite", "subSuite"]}}},
    }


@dataclass
class Report:
    index: Path
    results: int  # test results read
    output: str  # Allure's own output, for when it goes wrong


def generate(results: Path, output: Path, history: Path | None = None,
             name: str = REPORT_NAME, root: Path = ROOT, reports: Path | None = None) -> Report:
    """Generate the HTML report in `output` (replaced) from `results`; appends this run to
    the history file (default: beside the output, allure-history.jsonl); attaches what
    `reports` (default: the output's parent) holds in load/, gameday/ and incidents/."""
    results, output = results.resolve(), output.resolve()
    if not results.is_dir():
        raise ReportError(f"no Allure results at {results}: run the checks first "
                          "(`playbook check`, `make demo`)")
    count = len(list(results.glob("*-result.json")))
    if count == 0:
        raise ReportError(f"{results} holds no test results: run the checks first "
                          "(`playbook check`, `make demo`)")
    command = allure_command(root)
    history = (history or output.parent / "allure-history.jsonl").resolve()
    history.parent.mkdir(parents=True, exist_ok=True)
    write_categories(results)
    if output.exists():
        shutil.rmtree(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.parent / ".allure-attachments"
    attached = stage_attachments((reports or output.parent).resolve(), staging)
    rc = output.parent / "allurerc.json"
    rc.write_text(json.dumps(allure_config(output, history, name,
                                           staging if attached else None), indent=2) + "\n")
    # cwd = the reports dir: the global-attachment globs are relative to it.
    env = {**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0", "CI": os.environ.get("CI", "")}
    try:
        proc = subprocess.run([*command, "generate", str(results), "--config", str(rc),
                               "--cwd", str(output.parent)],
                              cwd=output.parent, capture_output=True, text=True,
                              timeout=GENERATE_TIMEOUT, env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ReportError(f"Allure did not finish within {GENERATE_TIMEOUT:g} s") from None
    out = (proc.stdout + proc.stderr).strip()
    index = output / "index.html"
    if proc.returncode != 0 or not index.is_file():
        last = out.splitlines()[-1] if out else f"exit code {proc.returncode}"
        raise ReportError(f"Allure could not generate the report from {results}: {last}")
    index.write_text(strip_analytics(index.read_text()))
    return Report(index, count, out)


_ANALYTICS = re.compile(
    r'<script async src="https://www\.googletagmanager\.com/[^"]*"></script>\s*'
    r"(<script>(?:(?!</script>).)*?gtag\(.*?</script>)?", re.S)


def strip_analytics(page: str) -> str:
    """Allure 3's report pages load Google Analytics (not configurable): a report of an
    incident must not tell a third party who opened it, so the tag is removed."""
    return _ANALYTICS.sub("", page)


# --- serving ---------------------------------------------------------------------------------


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def serve(directory: Path, port: int = 0) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve `directory` on 127.0.0.1 (a free port unless given) from a daemon thread;
    the caller stops it with server.shutdown()."""
    handler = functools.partial(_Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.2,), daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def main(results: str | None = None, output: str | None = None, open_: bool = False,
         port: int = 0) -> int:
    base = paths.reports()
    res = Path(results) if results else paths.allure_results(base)
    out = Path(output) if output else paths.allure_report(base)
    try:
        report = generate(res, out, reports=base)
    except ReportError as e:
        print(f"playbook: report: {e}", file=sys.stderr)
        return 2
    print(f"Allure report ({report.results} results): {report.index}")
    if not open_:
        return 0
    try:
        server, url = serve(report.index.parent, port)
    except OSError as e:
        print(f"playbook: report: cannot serve on 127.0.0.1:{port}: {e.strerror}",
              file=sys.stderr)
        return 2
    print(f"serving the report at {url} - Ctrl-C to stop", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()
    return 0
