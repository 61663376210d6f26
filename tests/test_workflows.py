"""The GitHub workflows call only what exists: every `playbook ...` command parses with the
real argument parser (with the options the workflow passes), every `make` target is in the
Makefile, and the workflows do what DESIGN.md says (schedule, matrix, artifacts, staging-only
game days, secrets only through the environment)."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from playbook import cli
from playbook import config as profiles

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
SHELL_VAR = re.compile(
    r"^\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))$")
SEPARATORS = {"&&", "||", ";", "|"}


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as True.
    if True in data:
        data["on"] = data.pop(True)
    return data


def workflow_files() -> list[str]:
    return sorted(p.name for p in WORKFLOWS.glob("*.y*ml"))


@dataclass
class Call:
    workflow: str
    job: str
    step: str
    argv: list[str]  # the command's words after variables and ${{ }} were filled in


def _contexts(wf: dict[str, Any], job: dict[str, Any]) -> list[dict[str, Any]]:
    """Sample contexts: every matrix combination, with workflow_dispatch inputs at their
    defaults (or first choice) and a scheduled run's empty inputs."""
    dispatch = (wf["on"] or {}).get("workflow_dispatch") or {}
    variants: list[dict[str, str]] = [{}]
    for name, spec in (dispatch.get("inputs") or {}).items():
        if spec.get("options"):  # every choice
            values = [str(o) for o in spec["options"]]
        elif "default" in spec:
            values = [str(spec["default"])]
        else:
            values = ["INC-20240501-1200" if "incident" in name else "sample"]
        variants = [{**v, name: value} for v in variants for value in values]
    matrices: list[dict[str, str]] = [{}]
    for key, values in ((job.get("strategy") or {}).get("matrix") or {}).items():
        matrices = [{**m, key: str(v)} for m in matrices for v in values]
    runs = [{"inputs": v, "matrix": m} for v in variants for m in matrices]
    if "schedule" in wf["on"]:
        runs += [{"inputs": {}, "matrix": m} for m in matrices]
    return runs


def _expr(expression: str, ctx: dict[str, Any]) -> str:
    """Enough of GitHub's expression language for these files: a || b, 'literals',
    inputs.x, matrix.x; secrets/vars/github are placeholders."""
    for operand in (o.strip() for o in expression.split("||")):
        if operand.startswith("'") and operand.endswith("'"):
            value = operand[1:-1]
        elif operand.startswith(("inputs.", "matrix.")):
            scope, name = operand.split(".", 1)
            value = ctx[scope].get(name, "")
        else:
            value = "placeholder"
        if value:
            return value
    return ""


def calls(name: str) -> list[Call]:
    wf = load(name)
    found = []
    for job_id, job in wf["jobs"].items():
        for ctx in _contexts(wf, job):
            for step in job.get("steps", []):
                if "run" not in step:
                    continue
                env = {**(wf.get("env") or {}), **(job.get("env") or {}),
                       **(step.get("env") or {})}
                script = EXPR.sub(lambda m, c=ctx: _expr(m.group(1), c),
                                  step["run"].replace("\\\n", " "))
                for line in script.splitlines():
                    if not re.search(r"(^|[\s/])(playbook|make)(\s|$)", line):
                        continue
                    words: list[str] = []
                    for word in [*shlex.split(line, comments=True), ";"]:
                        if word in SEPARATORS:
                            if words:
                                found.append(Call(name, job_id, step.get("name", ""),
                                                  _fill(words, env, ctx)))
                            words = []
                        else:
                            words.append(word)
    return found


def _fill(words: list[str], env: dict[str, Any], ctx: dict[str, Any]) -> list[str]:
    out = []
    for w in words:
        m = SHELL_VAR.match(w)
        if m:
            name = m.group(1) or m.group(3)
            value = env.get(name)
            w = (EXPR.sub(lambda e: _expr(e.group(1), ctx), str(value)) if value is not None
                 else (m.group(2) or ""))
        out.append(w)
    while out and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", out[0]):  # FOO=bar cmd
        out.pop(0)
    return out


def _unique(found: list[Call]) -> list[Call]:
    seen: dict[tuple, Call] = {}
    for c in found:
        seen.setdefault((c.workflow, c.job, tuple(c.argv)), c)
    return list(seen.values())


def playbook_calls() -> list[Call]:
    return _unique([c for n in workflow_files() for c in calls(n)
                    if c.argv and Path(c.argv[0]).name == "playbook"])


def make_calls() -> list[Call]:
    return _unique([c for n in workflow_files() for c in calls(n)
                    if c.argv and c.argv[0] == "make"])


def _strings(value: Any) -> str:
    """Every string value of a parsed YAML document (comments are gone)."""
    if isinstance(value, dict):
        return " ".join(_strings(v) for v in value.values())
    if isinstance(value, list):
        return " ".join(_strings(v) for v in value)
    return value if isinstance(value, str) else ""


def makefile_targets() -> set[str]:
    targets = set()
    for line in (ROOT / "Makefile").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_./%$()-][A-Za-z0-9_./%$() -]*?)\s*:(?![=:])", line)
        if m and not line.startswith("\t"):
            targets.update(m.group(1).split())
    return targets


def _id(c: Call) -> str:
    return f"{c.workflow}:{c.job}:{' '.join(c.argv[1:])}"


# --- the commands exist ------------------------------------------------------------------------


def test_workflows_exist_and_call_the_suite() -> None:
    assert workflow_files() == ["game-day.yml", "post-fix-gate.yml", "scheduled-validation.yml"]
    subcommands = {c.workflow: set() for c in playbook_calls()}
    for c in playbook_calls():
        parsed = [w for w in c.argv[1:] if not w.startswith("-")]
        subcommands[c.workflow].update(parsed[1:2] if c.argv[1] == "--env" else parsed[:1])
    assert {"check", "report"} <= subcommands["scheduled-validation.yml"]
    assert "gate" in subcommands["post-fix-gate.yml"]
    assert "gameday" in subcommands["game-day.yml"]


@pytest.mark.parametrize("call", playbook_calls(), ids=_id)
def test_playbook_command_exists_with_its_options(call: Call) -> None:
    parser = cli.build_parser()
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args = parser.parse_args(call.argv[1:])
    except SystemExit:
        pytest.fail(f"{call.workflow} ({call.step}): `{' '.join(call.argv)}` does not parse: "
                    f"{err.getvalue().strip().splitlines()[-1]}")
    assert callable(getattr(args, "func", None))
    env = getattr(args, "env", None)
    if env is not None:  # the profile named by the workflow is bundled and loads
        profiles.load(env, environ={})


@pytest.mark.parametrize("call", make_calls(), ids=_id)
def test_make_targets_exist(call: Call) -> None:
    targets = [w for w in call.argv[1:] if not w.startswith("-") and "=" not in w]
    missing = [t for t in targets if t not in makefile_targets()]
    assert not missing, f"{call.workflow}: make target(s) {missing} not in the Makefile"


def test_install_without_debian_packages_is_a_no_op_check() -> None:
    """The workflows run `make install DEB_NEEDS=`: with the list emptied, `deps` passes
    without looking for (or installing) the sandbox's packages."""
    proc = subprocess.run(["make", "--no-print-directory", "deps", "DEB_NEEDS="], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "installing" not in proc.stdout, proc.stdout + proc.stderr


def test_parser_rejects_what_does_not_exist() -> None:
    """The check above can fail: an unknown subcommand or option, or a missing required one,
    does not parse."""
    parser = cli.build_parser()
    for argv in (["--env", "staging", "nonexistent"], ["report", "--no-such-option"],
                 ["notify", "declared", "--severity", "P0"]):
        with contextlib.redirect_stderr(io.StringIO()), pytest.raises(SystemExit):
            parser.parse_args(argv)


# --- what each workflow does -------------------------------------------------------------------


def _steps(wf: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for job in wf["jobs"].values() for s in job["steps"]]


def _uploads(wf: dict[str, Any]) -> list[str]:
    paths = []
    for s in _steps(wf):
        if str(s.get("uses", "")).startswith("actions/upload-artifact@"):
            assert s.get("if") == "always()", "results must be uploaded when the checks fail"
            paths += s["with"]["path"].split()
    return paths


def test_scheduled_validation() -> None:
    wf = load("scheduled-validation.yml")
    assert wf["on"]["schedule"] == [{"cron": "*/15 * * * *"}]
    (job,) = wf["jobs"].values()
    assert job["strategy"]["matrix"]["env"] == ["staging", "production"]
    assert job["strategy"]["fail-fast"] is False  # one environment's failure hides no other
    check = [s for s in job["steps"] if " check" in s.get("run", "")]
    assert check and not any(s.get("continue-on-error") for s in check)  # verdict = result
    assert {"reports/junit.xml", "reports/allure-results"} <= set(_uploads(wf))


def test_post_fix_gate() -> None:
    wf = load("post-fix-gate.yml")
    inputs = wf["on"]["workflow_dispatch"]["inputs"]
    assert inputs["incident_id"]["required"] is True
    assert set(inputs["env"]["options"]) == {"staging", "production"}
    gates = [c for c in playbook_calls() if c.workflow == "post-fix-gate.yml"
             and "gate" in c.argv]
    assert sorted(c.argv[c.argv.index("--env") + 1] for c in gates) == ["production", "staging"]
    for gate in gates:
        assert "--notify" in gate.argv
        assert gate.argv[gate.argv.index("--incident") + 1] == "INC-20240501-1200"


def test_game_day_is_staging_only() -> None:
    wf = load("game-day.yml")
    (cron,) = wf["on"]["schedule"]
    _minute, _hour, day, month, _weekday = cron["cron"].split()
    assert month == "1,4,7,10" and day == "1"  # quarterly
    assert "scenario" in wf["on"]["workflow_dispatch"]["inputs"]
    for job in wf["jobs"].values():
        assert job["environment"] == "staging"
    for c in (c for c in playbook_calls() if c.workflow == "game-day.yml"):
        if "--env" in c.argv:
            assert c.argv[c.argv.index("--env") + 1] == "staging", c.argv
    gameday = [c for c in playbook_calls() if c.workflow == "game-day.yml"
               and "gameday" in c.argv]
    assert gameday and all(c.argv[c.argv.index("--scenario") + 1] == "all" for c in gameday)
    assert "reports/gameday" in _uploads(wf)


@pytest.mark.parametrize("name", workflow_files())
def test_secrets_and_inputs_only_through_the_environment(name: str) -> None:
    """No secret and no free-text input is spliced into a shell script (script injection,
    secrets in logs); and every ${VAR} the remote profiles read is set for the job."""
    wf = load(name)
    needed: set[str] = set()
    for env_name in ("staging", "production"):
        data = yaml.safe_load((profiles.BUNDLED / f"{env_name}.yaml").read_text())
        needed |= set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", _strings(data)))
    for job_id, job in wf["jobs"].items():
        missing = needed - set(job.get("env") or {})
        assert not missing, f"{name}:{job_id}: the profiles read {sorted(missing)}, not set"
        for step in job["steps"]:
            for expression in EXPR.findall(step.get("run", "")):
                assert not expression.startswith(("secrets.", "inputs.", "github.event")), (
                    f"{name}:{job_id}: `${{{{ {expression} }}}}` inside a run script")
        for key, value in (job.get("env") or {}).items():
            if "secrets." in str(value):
                assert key.isupper()
