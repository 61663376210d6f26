"""Regenerate deploy/locust-configmap.yaml (no kubectl needed):

    .venv/bin/python deploy/make_configmap.py [--env production] [--profile gate] [--check]

The ConfigMap carries what the stock Locust image lacks, mounted at /mnt/locust:
- locustfile.py: loadtests/locustfile.py;
- loadclient.py, loadwire.py, loadplan.py: the journeys' client, its wire and the load plan
  with its shape, from playbook/ (the locustfile imports them from beside itself when the
  playbook package is not installed);
- plan.json: the load plan of --env's load profile --profile (stages, client settings), which
  PLAYBOOK_LOAD_PLAN points the master and the workers at: the master's shape runs its ramp.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
HEAD = ("# Generated from loadtests/locustfile.py, playbook/load{{client,wire,plan}}.py and\n"
        "# the {source} load profile - do not edit here. Regenerate with:\n"
        "#   .venv/bin/python deploy/make_configmap.py --env {env} --profile {profile}\n"
        "# (tests/test_load_deploy.py fails when this copy and the sources differ.)\n")
DEFAULT_ENV, DEFAULT_PROFILE = "production", "gate"
SHIPPED = ("loadclient", "loadwire", "loadplan")  # playbook/ modules the locustfile imports


class _Literal(str):
    pass


def plan_json(env: str, profile: str) -> str:
    from playbook import config
    from playbook.loadplan import Plan

    plan = Plan.from_profile(config.load(env, {}), profile)
    # the bundled profile's path on this machine means nothing in the cluster
    raw = json.loads(plan.to_json())
    raw["source"] = f"{env} load.profiles.{profile}"
    return json.dumps(raw, indent=2) + "\n"


def render(env: str = DEFAULT_ENV, profile: str = DEFAULT_PROFILE) -> str:
    yaml.add_representer(_Literal, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", v,
                                                                   style="|"))
    data = {"locustfile.py": _Literal((ROOT / "loadtests" / "locustfile.py").read_text())}
    for name in SHIPPED:
        data[f"{name}.py"] = _Literal((ROOT / "playbook" / f"{name}.py").read_text())
    data["plan.json"] = _Literal(plan_json(env, profile))
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": "locust-locustfile", "namespace": "security-dashboard-load",
                       "labels": {"app.kubernetes.io/name": "locust"}},
          "data": data}
    head = HEAD.format(source=f"{env} profile's {profile}", env=env, profile=profile)
    return head + yaml.dump(cm, sort_keys=False, width=200)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default=DEFAULT_ENV, help="profile whose load plan ships")
    p.add_argument("--profile", default=DEFAULT_PROFILE, help="its load profile")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 when the committed ConfigMap is stale")
    args = p.parse_args()
    path = ROOT / "deploy" / "locust-configmap.yaml"
    text = render(args.env, args.profile)
    if args.check:
        if not path.is_file() or path.read_text() != text:
            print(f"{path} is stale: run .venv/bin/python deploy/make_configmap.py")
            return 1
        return 0
    path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
