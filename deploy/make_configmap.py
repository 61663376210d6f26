"""Regenerate deploy/locust-configmap.yaml from loadtests/locustfile.py (no kubectl needed).

    .venv/bin/python deploy/make_configmap.py
"""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
HEAD = ("# Generated from loadtests/locustfile.py - do not edit here. Regenerate with:\n"
        "#   .venv/bin/python deploy/make_configmap.py\n"
        "# (tests/test_load.py fails when this copy and the locustfile differ.)\n")


class _Literal(str):
    pass


def render() -> str:
    source = (ROOT / "loadtests" / "locustfile.py").read_text()
    yaml.add_representer(_Literal, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", v,
                                                                   style="|"))
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": "locust-locustfile", "namespace": "security-dashboard-load",
                       "labels": {"app.kubernetes.io/name": "locust"}},
          "data": {"locustfile.py": _Literal(source)}}
    return HEAD + yaml.dump(cm, sort_keys=False, width=200)


if __name__ == "__main__":
    (ROOT / "deploy" / "locust-configmap.yaml").write_text(render())
