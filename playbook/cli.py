"""The `playbook` command.

    playbook sandbox up|down|status [--json]   the local stand-in of the production stack
    playbook check [pytest args]               scheduled validation: the checks and a verdict
    playbook demo                              sandbox up, checks, verdict, sandbox down

Exit codes: 0 success/healthy, 1 checks failed, 2 bad usage or a profile that cannot be used,
3 the sandbox could not be started or stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from playbook import config

ROOT = Path(__file__).resolve().parent.parent  # the project: checks/, loadtests/, gameday/


def _profile(env: str | None) -> config.Profile:
    try:
        return config.load(env)
    except config.ProfileError as e:
        print(f"playbook: profile error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


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
    return subprocess.call(argv + extra, cwd=ROOT)


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
    results = Path(os.environ.get("PLAYBOOK_REPORTS") or ROOT / "reports")
    print(f"Allure results: {results / 'allure-results'}")
    try:
        outcome = json.loads((results / "verdict.json").read_text())
        print(f"verdict: {outcome['verdict']} ({len(outcome['failures'])} failed checks; "
              f"{results / 'verdict.json'})")
    except (OSError, ValueError, KeyError):
        print("verdict: none - the checks did not run to the end")
    return code


def main(argv: list[str] | None = None) -> int:
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

    # `--env` may come after the subcommand too: `playbook sandbox up --env local`.
    for p in (sb, ck, dm):
        p.add_argument("--env", dest="env", default=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
