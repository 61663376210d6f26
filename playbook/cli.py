"""The `playbook` command.

    playbook sandbox up|down|status [--json]   the local stand-in of the production stack
    playbook check [pytest args]               scheduled validation: the checks and a verdict
    playbook demo                              sandbox up, checks, verdict, sandbox down
    playbook load [--profile smoke|gate|stress] [--workers N]   synthetic load, k6-style thresholds
    playbook load --find-capacity [--profile P]  the knee: req/s before a threshold breaks
                                               (exit 0 passed, 1 a threshold failed, 2 no run)
    playbook notify declared|update|resolved --incident INC-.. [--severity P0] [--send]
                                               the playbook's messages (dry run unless --send)
    playbook report [--open]                   the Allure HTML report (and serve it locally)
    playbook gate --incident INC-.. [--notify] post-fix validation gate (playbook 6.2)
    playbook evidence --incident INC-.. [--hours N]  evidence bundle (playbook 5.1)
                                               exit 0, 1 when a source failed
    playbook gameday [run|revert] [--scenario S]  game-day drills; revert what a killed run left

Exit codes: 0 success/healthy, 1 checks failed, 2 bad usage or a profile that cannot be used,
3 the sandbox could not be started or stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys

from playbook import config, paths
from playbook.paths import ROOT


def _profile(env: str | None) -> config.Profile:
    try:
        profile = config.load(env)
    except config.ProfileError as e:
        print(f"playbook: profile error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    # The sandbox's AWS accepts any keys and the profile holds none: dummy ones, only when its
    # endpoint is on loopback and the environment has no credentials of its own.
    os.environ.update(config.local_aws_credentials(profile.aws, os.environ))
    return profile


def cmd_sandbox(args: argparse.Namespace) -> int:
    from playbook.sandbox import control

    profile = _profile(args.env)
    try:
        if args.action == "up":
            state = control.up(profile)
            for name, info in state["components"].items():
                where = info.get("url") or info.get("path") or f"127.0.0.1:{info.get('port')}"
                print(f"  {name:<13} {where}")
            print(f"  {'pods':<13} {len(state['pods'])} replicas of "
                  f"security-dashboard-backend")
        elif args.action == "down":
            control.down(profile)
        else:
            st = control.status(profile)
            if args.json:
                print(json.dumps(st, indent=2))
            elif not st["running"]:
                print("sandbox not running")
            else:
                print(f"sandbox {'ready' if st['ready'] else 'starting'} "
                      f"(state {st['state_dir']})")
                for name, info in st["components"].items():
                    where = info.get("url") or info.get("path") or info.get("port")
                    print(f"  {name:<13} {'up  ' if info['up'] else 'DOWN'} {where}")
                for pod in st["pods"]:
                    print(f"  pod {pod['name']:<44} ready={pod['ready']!s:<5} "
                          f"restarts={pod['restarts']} port={pod['port']}")
            return 0 if st["running"] or args.action != "status" else 3
    except control.SandboxError as e:
        print(f"playbook: {e}", file=sys.stderr)
        return 3
    return 0


def _pytest(paths: list[str], env: str | None, extra: list[str]) -> int:
    argv = [sys.executable, "-m", "pytest", *paths, "-p", "no:cacheprovider"]
    if env:
        argv += ["--env", env]
    proc = subprocess.Popen(argv + extra, cwd=ROOT)
    # The run (a game day's reverts above all) must finish even when we are told to stop:
    # pass SIGTERM on to it, and let Ctrl-C reach it through the terminal, then wait for it.
    previous = {signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN),
                signal.SIGTERM: signal.signal(signal.SIGTERM,
                                              lambda s, f: proc.send_signal(s))}
    try:
        return proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def cmd_check(args: argparse.Namespace) -> int:
    _profile(args.env)  # fail before pytest starts, with the same one-line error
    return _pytest(["checks"], args.env, args.pytest_args)


def cmd_demo(args: argparse.Namespace) -> int:
    from playbook.sandbox import control

    profile = _profile(args.env or "local")
    try:
        control.up(profile)
    except control.SandboxError as e:
        print(f"playbook: {e}", file=sys.stderr)
        return 3
    try:
        code = _pytest(["checks"], profile.source, ["-v", *args.pytest_args])
    finally:
        try:
            control.down(profile)
        except control.SandboxError as e:
            print(f"playbook: {e}", file=sys.stderr)
    print(f"Allure results: {paths.allure_results()}")
    try:
        outcome = json.loads(paths.verdict().read_text())
        print(f"verdict: {outcome['verdict']} ({len(outcome['failures'])} failed checks; "
              f"{paths.verdict()})")
    except (OSError, ValueError, KeyError):
        print("verdict: none - the checks did not run to the end")
    return code


def cmd_load(args: argparse.Namespace) -> int:
    profile = _profile(args.env)
    from playbook import load  # imports Locust, which monkey-patches with gevent: only here

    external = (load.External(args.expect_workers, args.master_bind, args.master_port)
                if args.expect_workers else None)
    return load.run(profile, args.profile, workers=args.workers, external=external,
                    find_capacity=args.find_capacity).exit_code


def cmd_notify(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from playbook import notify

    profile = _profile(args.env)

    def when(value: str | None, flag: str) -> datetime | None:
        if not value:
            return None
        try:
            t = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            print(f"playbook: {flag} {value!r} is not an ISO 8601 time "
                  "(e.g. 2024-05-01T12:00:00Z)", file=sys.stderr)
            raise SystemExit(2) from None
        return t if t.tzinfo else t.replace(tzinfo=UTC)

    if args.kind == "declared" and not args.severity:
        print("playbook: notify declared needs --severity P0..P3", file=sys.stderr)
        return 2
    try:
        incident = notify.Incident(
            id=args.incident, severity=args.severity or "P1", impact=args.impact or "",
            started=when(args.started, "--started") or datetime.now(UTC),
            status=args.status or ("Monitoring" if args.kind == "resolved" else "Investigating"),
            commander=args.commander or "", progress=args.progress or "", eta=args.eta or "",
            next_steps=args.next_steps or "", root_cause=args.root_cause or "",
            fix_applied=args.fix or "", validation=args.validation or "",
            review_at=args.review_at or "", resolved=when(args.resolved, "--resolved"))
        cfg = profile.notify
        if args.severity and not args.send:
            steps = notify.escalation(args.severity, cfg)
            print(f"escalation for {args.severity} (profile {profile.name}): "
                  + "; ".join(notify.describe_step(s) for s in steps))
        results = notify.announce(args.kind, incident, profile, send=args.send)
    except notify.NotifyError as e:
        print(f"playbook: {e}", file=sys.stderr)
        return 2
    if not args.send:
        print("dry run: nothing was sent (add --send to send)")
        return 0
    sent = [r for r in results if not r.skipped]
    if not sent:
        print("playbook: nothing to send to - no channel is configured in the profile's "
              "`notify` section", file=sys.stderr)
        return 2
    return 0 if all(r.ok for r in sent) else 1


def _add_notify(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    nt = sub.add_parser("notify", help="the playbook's incident messages to Slack and "
                        "PagerDuty (a dry run unless --send)")
    nt.add_argument("kind", choices=["declared", "update", "resolved"])
    nt.add_argument("--incident", required=True, help="incident id, e.g. INC-20240501-1200")
    nt.add_argument("--severity", choices=["P0", "P1", "P2", "P3"],
                    help="required for `declared`")
    nt.add_argument("--impact", help="brief description of user impact")
    nt.add_argument("--status", help="Investigating / Identified / Fixing / Monitoring")
    nt.add_argument("--started", help="when the incident started (ISO 8601); default now")
    nt.add_argument("--resolved", help="when it was resolved (ISO 8601); default now")
    nt.add_argument("--commander", help="incident commander (Slack handle)")
    nt.add_argument("--progress", help="update: brief description of progress")
    nt.add_argument("--eta", help="update: ETA to resolution")
    nt.add_argument("--next-steps", help="update: what is being done next")
    nt.add_argument("--root-cause", help="resolved: brief technical explanation")
    nt.add_argument("--fix", help="resolved: what was done to resolve")
    nt.add_argument("--validation", help="resolved: how the fix was confirmed")
    nt.add_argument("--review-at", help="resolved: when the post-incident review is")
    nt.add_argument("--send", action="store_true", help="really send (default: print only)")
    nt.add_argument("--env", dest="env", default=argparse.SUPPRESS)
    nt.set_defaults(func=cmd_notify)
    return nt


def cmd_report(args: argparse.Namespace) -> int:
    from playbook import report

    return report.main(results=args.results, output=args.output, open_=args.open,
                       port=args.port)


def _add_report(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    rp = sub.add_parser("report", help="the Allure HTML report from reports/allure-results")
    rp.add_argument("--results", help="Allure results dir (default reports/allure-results)")
    rp.add_argument("--output", help="report dir (default reports/allure-report)")
    rp.add_argument("--open", action="store_true",
                    help="serve the report on 127.0.0.1 until Ctrl-C")
    rp.add_argument("--port", type=int, default=0, help="with --open: the port (default free)")
    rp.add_argument("--env", dest="env", default=argparse.SUPPRESS)
    rp.set_defaults(func=cmd_report)
    return rp


def _verdict() -> dict | None:
    try:
        return json.loads(paths.verdict().read_text())
    except (OSError, ValueError):
        return None


def cmd_gate(args: argparse.Namespace) -> int:
    """Playbook 6.2 as one command: may the incident be closed?"""
    from playbook import notify

    profile = _profile(args.env)
    if args.notify and not args.incident:  # before the run, not after minutes of load
        print("playbook: --notify needs --incident INC-...", file=sys.stderr)
        return 2
    extra = ["--load-profile", args.load_profile]
    if args.incident:
        extra += ["--incident", args.incident]
    code = _pytest(["checks", "loadtests"], args.env, extra + args.pytest_args)
    outcome = _verdict()
    passed = code == 0 and outcome is not None and outcome["verdict"] == "healthy"
    if passed:
        print("gate: PASSED - every check and the load held; the incident may be closed")
    else:
        why = (outcome or {}).get("failures") or [{"message": f"pytest exit code {code}"}]
        print(f"gate: FAILED - keep the incident open: {why[0]['message']}")
    if args.notify:
        worst = (outcome or {}).get("verdict", "P1")
        incident = notify.Incident(
            id=args.incident, severity=worst if worst in ("P0", "P1", "P2", "P3") else "P1",
            status="Monitoring" if passed else "Fixing",
            progress="Post-fix validation gate " + ("passed" if passed else "failed"),
            validation=f"playbook gate on {profile.name}: repeated health, readiness, "
                       "infrastructure and metric checks, and the gate load profile")
        notify.announce("resolved" if passed else "update", incident, profile, send=True)
    return 0 if passed else 1


def _add_gate(sub: argparse._SubParsersAction) -> None:
    gt = sub.add_parser("gate", help="post-fix validation gate (playbook 6.2): pass or fail")
    gt.add_argument("--incident", help="incident id, e.g. INC-202611261830 (tags the results)")
    gt.add_argument("--notify", action="store_true",
                    help="post the resolution (pass) or a progress update (fail)")
    gt.add_argument("--load-profile", default="gate",
                    help="load profile to run (default gate: 10 users for 5 minutes)")
    gt.add_argument("--env", dest="env", default=argparse.SUPPRESS)
    gt.add_argument("pytest_args", nargs=argparse.REMAINDER)
    gt.set_defaults(func=cmd_gate)


def cmd_evidence(args: argparse.Namespace) -> int:
    """Playbook 5.1/5.2/7.2: the incident's evidence bundle, collected through the APIs."""
    from playbook import evidence
    from playbook.plugin import INCIDENT_ID

    profile = _profile(args.env)
    if not INCIDENT_ID.fullmatch(args.incident):
        print(f"playbook: --incident {args.incident!r}: expected an id like INC-202611261830",
              file=sys.stderr)
        return 2
    if args.hours is not None and args.hours <= 0:
        print("playbook: --hours must be above 0", file=sys.stderr)
        return 2
    bundle = evidence.collect(profile, args.incident, hours=args.hours)
    for line in evidence.summary(bundle):
        print(line)
    return 1 if bundle.failed else 0


def _add_evidence(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("evidence", help="incident evidence bundle (playbook 5.1), timeline "
                        "(5.2) and review agenda (7.2) into reports/incidents/INC-.../")
    ev.add_argument("--incident", required=True, help="incident id, e.g. INC-202611261830")
    ev.add_argument("--hours", type=float, default=None,
                    help="logs and metrics of the last N hours (default: the profile's "
                    "evidence.hours, else 4)")
    ev.add_argument("--env", dest="env", default=argparse.SUPPRESS)
    ev.set_defaults(func=cmd_evidence)


def scenarios() -> list[str]:
    return sorted(p.stem.removeprefix("test_") for p in (ROOT / "gameday").glob("test_*.py"))


def cmd_gameday(args: argparse.Namespace) -> int:
    profile = _profile(args.env)
    if args.action == "revert":
        from playbook.faults.context import GameDay

        return GameDay.revert_journal(profile, allow_production=args.allow_production)
    known = scenarios()
    if args.scenario != "all" and args.scenario not in known:
        print(f"playbook: unknown scenario {args.scenario!r} (known: all, {', '.join(known)})",
              file=sys.stderr)
        return 2
    paths = ["gameday"] if args.scenario == "all" else [f"gameday/test_{args.scenario}.py"]
    extra = ["--allow-production"] if args.allow_production else []
    return _pytest(paths, args.env, [*extra, "-v"])


def _add_gameday(sub: argparse._SubParsersAction) -> None:
    gd = sub.add_parser("gameday", help="game-day drills: inject, detect, mitigate, revert")
    gd.add_argument("action", nargs="?", choices=["run", "revert"], default="run",
                    help="run the drills (default) or revert what the journal still holds")
    gd.add_argument("--scenario", default="all",
                    help="one drill (a gameday/test_<name>.py) or all (default)")
    gd.add_argument("--allow-production", action="store_true",
                    help="let faults touch a profile marked production: true")
    gd.add_argument("--env", dest="env", default=argparse.SUPPRESS)
    gd.set_defaults(func=cmd_gameday)


def build_parser() -> argparse.ArgumentParser:
    """The whole `playbook` command line, built without running anything (tests read it)."""
    parser = argparse.ArgumentParser(prog="playbook", description=__doc__.split("\n")[0])
    parser.add_argument("--env", help="profile: a bundled name (local, staging, production) or "
                        "a path to a YAML file; default $PLAYBOOK_ENV or local")
    sub = parser.add_subparsers(dest="command", required=True)

    sb = sub.add_parser("sandbox", help="start, stop or inspect the local sandbox")
    sb.add_argument("action", choices=["up", "down", "status"])
    sb.add_argument("--json", action="store_true", help="status as JSON")
    sb.set_defaults(func=cmd_sandbox)

    ck = sub.add_parser("check", help="run the checks against the profile's environment")
    ck.add_argument("pytest_args", nargs=argparse.REMAINDER)
    ck.set_defaults(func=cmd_check)

    dm = sub.add_parser("demo", help="sandbox up, checks, verdict, sandbox down")
    dm.add_argument("pytest_args", nargs=argparse.REMAINDER)
    dm.set_defaults(func=cmd_demo)

    ld = sub.add_parser("load", help="synthetic load (Locust) judged by k6-style thresholds")
    ld.add_argument("--profile", default="smoke",
                    help="load profile from the profile's `load` section (smoke, gate, stress)")
    ld.add_argument("--workers", type=int, default=0,
                    help="Locust distributed mode on this machine: N worker processes")
    ld.add_argument("--expect-workers", type=int, default=0, metavar="N",
                    help="be the master for N workers started elsewhere (`locust --worker`, "
                    "e.g. deploy/ on Kubernetes) instead of starting them here")
    ld.add_argument("--master-bind", default="127.0.0.1",
                    help="with --expect-workers: the address to listen on (default 127.0.0.1)")
    ld.add_argument("--master-port", type=int, default=5557,
                    help="with --expect-workers: the port to listen on (default 5557)")
    ld.add_argument("--find-capacity", action="store_true",
                    help="step users up (the profile's load.capacity) until a threshold of "
                    "--profile breaks; report the knee: the highest req/s with every threshold "
                    "passing")
    ld.add_argument("--env", dest="env", default=argparse.SUPPRESS)
    ld.set_defaults(func=cmd_load)

    # `--env` may come after the subcommand too: `playbook sandbox up --env local`.
    for p in (sb, ck, dm):
        p.add_argument("--env", dest="env", default=argparse.SUPPRESS)
    _add_notify(sub)
    _add_report(sub)
    _add_gate(sub)
    _add_evidence(sub)
    _add_gameday(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # `playbook check -k health -x`: options argparse does not know go on to pytest.
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        if not hasattr(args, "pytest_args"):
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        args.pytest_args = [*unknown, *args.pytest_args]
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
