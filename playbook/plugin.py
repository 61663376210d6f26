"""The pytest plugin: options, markers, fixtures, Allure labels and the run's verdict.

Loaded by the root conftest.py. A "suite run" is one that collects checks/, loadtests/ or
gameday/: it loads the profile before any test (a bad profile stops the run with one line),
writes Allure results to reports/allure-results and JUnit XML to reports/junit.xml unless told
otherwise, and ends with the verdict: the most severe failed check.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from playbook import config as profiles
from playbook import paths, secrets
from playbook import severity as sev
from playbook.clients import Clients, SectionMissing

if TYPE_CHECKING:  # the kubernetes client and boto3 are slow to import: only when used
    from playbook.probes.alertmanager import Alertmanager
    from playbook.probes.aws import AwsClients
    from playbook.probes.database import Database
    from playbook.probes.kube import Kube
    from playbook.probes.prometheus import Prometheus

SUITE_DIRS = ("checks", "loadtests", "gameday")
PROFILE_KEY = pytest.StashKey[profiles.Profile]()
FACTS_KEY = pytest.StashKey[dict[str, Any]]()
DEADLINE_KEY = pytest.StashKey[float]()
INCIDENT_ID = re.compile(r"INC-[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_failures: list[dict[str, str]] = []  # filled on the controller, also under xdist
PLAYBOOK_DOC = "https://github.com/candlefish-ai/security-dashboard/blob/main/PLAYBOOK.md"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("playbook", "Security Dashboard playbook")
    group.addoption("--env", default=None, help="profile: a bundled name (local, staging, "
                    "production) or a path to a YAML file; default $PLAYBOOK_ENV or local")
    group.addoption("--verdict-file", default=None,
                    help="where to write the verdict JSON (default reports/verdict.json)")
    group.addoption("--incident", default=None, metavar="INC-...",
                    help="tag the results (Allure, JUnit, verdict) with an incident id")
    group.addoption("--evidence-on-failure", action="store_true", default=False,
                    help="when a P0 or P1 check fails, collect the evidence bundle (playbook "
                    "5.1) into reports/incidents/ and attach it to Allure (also: the "
                    "profile's evidence.on_failure)")


def _suite_run(config: pytest.Config) -> bool:
    for arg in config.args:
        parts = Path(arg.split("::")[0]).resolve().parts
        if any(d in parts for d in SUITE_DIRS):
            return True
    return False


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "severity(level): the check's playbook severity, P0..P3")
    config.addinivalue_line("markers", "incident_type(name): the playbook's incident type "
                            "(service outage, performance, security, data, infrastructure, "
                            "third-party)")
    config.addinivalue_line("markers", "playbook_section(title): the PLAYBOOK.md section this "
                            "check implements, e.g. '3.2 Infrastructure Checks' (a link in "
                            "the report; default by module, then by incident type)")
    config.addinivalue_line("markers", "requires(section): skip unless the profile has this "
                            "section")
    config.stash[FACTS_KEY] = {}
    _failures.clear()
    if not _suite_run(config):
        return
    try:
        profile = profiles.load(config.getoption("env"))
    except profiles.ProfileError as e:
        raise pytest.UsageError(f"profile error: {e}") from None
    config.stash[PROFILE_KEY] = profile
    incident = config.getoption("incident")
    if incident is not None and not INCIDENT_ID.fullmatch(incident):
        raise pytest.UsageError(f"--incident {incident!r}: expected an id like INC-202611261830")
    config.stash[DEADLINE_KEY] = time.monotonic() + profile.run.budget_seconds
    reports = paths.reports(Path(str(config.rootpath)))
    if getattr(config.option, "allure_report_dir", "unset") is None:
        # One run's results; the report generator keeps history and trend across runs.
        config.option.allure_report_dir = str(paths.allure_results(reports))
        config.option.clean_alluredir = True
    if getattr(config.option, "xmlpath", "unset") is None:
        config.option.xmlpath = str(paths.junit(reports))
    if config.getoption("verdict_file") is None:
        config.option.verdict_file = str(paths.verdict(reports))


def _profile(config: pytest.Config) -> profiles.Profile:
    if PROFILE_KEY not in config.stash:
        try:
            config.stash[PROFILE_KEY] = profiles.load(config.getoption("env"))
        except profiles.ProfileError as e:
            pytest.exit(f"profile error: {e}", returncode=4)
    return config.stash[PROFILE_KEY]


# The playbook section each suite module implements (a link from every check in the report);
# a check's own @pytest.mark.playbook_section wins, the incident type is the fallback.
SECTION_BY_MODULE = {
    "test_health": "6.2 Validation",
    "test_readiness": "1.2 Quick Assessment",
    "test_kubernetes": "3.2 Infrastructure Checks",
    "test_aws": "3.2 Infrastructure Checks",
    "test_database": "3.2 Infrastructure Checks",
    "test_metrics": "3.1 System Investigation",
    "test_alerting": "Automated Monitoring",
    "test_rollback": "4.2 Emergency Rollback",
    "test_synthetic_load": "6.2 Validation",
}
SECTION_BY_INCIDENT_TYPE = {
    "service outage": "1.2 Quick Assessment",
    "performance": "1.3 Severity Classification",
    "infrastructure": "3.2 Infrastructure Checks",
    "data": "3.1 System Investigation",
    "security": "Severity Levels",
    "third-party": "3.3 Recent Changes Analysis",
}


def playbook_anchor(title: str) -> str:
    """GitHub's heading anchor: '1.2 Quick Assessment' -> '12-quick-assessment'."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def playbook_section(item: pytest.Item) -> str:
    own = _marker_arg(item, "playbook_section")
    if own:
        return own
    path = Path(str(item.path))
    if "gameday" in path.parts:
        return "Phase 4: Immediate Mitigation (30-60 minutes)"
    if path.stem in SECTION_BY_MODULE:
        return SECTION_BY_MODULE[path.stem]
    return SECTION_BY_INCIDENT_TYPE.get(_marker_arg(item, "incident_type") or "",
                                        "Incident Response Procedures")


def _marker_arg(item: pytest.Item, name: str) -> str | None:
    marker = item.get_closest_marker(name)
    return str(marker.args[0]) if marker and marker.args else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unmarked = []
    for item in items:
        level = _marker_arg(item, "severity")
        in_suite = any(d in Path(str(item.path)).parts for d in SUITE_DIRS)
        if level is None:
            if in_suite:
                unmarked.append(item.nodeid)
            continue
        if level not in sev.LEVELS:
            raise pytest.UsageError(f"{item.nodeid}: severity must be P0..P3, got {level!r}")
        _label_severity(item, level)
        incident = config.getoption("incident")
        if incident:
            item.add_marker(pytest.mark.allure_label(incident, label_type="tag"))
        kind = _marker_arg(item, "incident_type")
        if kind:
            item.add_marker(pytest.mark.allure_label(kind, label_type="feature"))
        if in_suite:
            section = playbook_section(item)
            item.add_marker(pytest.mark.allure_link(
                f"{PLAYBOOK_DOC}#{playbook_anchor(section)}", link_type="link",
                name=f"Playbook: {section}"))
    if unmarked:
        raise pytest.UsageError("every check needs @pytest.mark.severity('P0'..'P3'); missing on "
                                + ", ".join(unmarked))


def pytest_sessionstart(session: pytest.Session) -> None:
    from _pytest.junitxml import xml_key

    xml = session.config.stash.get(xml_key, None)
    incident = session.config.getoption("incident")
    if xml is not None and incident:
        xml.add_global_property("incident", incident)
    if xml is not None and PROFILE_KEY in session.config.stash:
        xml.add_global_property("profile", session.config.stash[PROFILE_KEY].name)


def pytest_runtest_setup(item: pytest.Item) -> None:
    config = item.config
    section = _marker_arg(item, "requires")
    if section is not None:
        profile = _profile(config)
        if getattr(profile, section, None) is None:
            pytest.skip(f"profile {profile.name} has no `{section}` section")
    deadline = config.stash.get(DEADLINE_KEY, None)
    if deadline is not None and time.monotonic() > deadline:
        budget = _profile(config).run.budget_seconds
        pytest.fail(f"the run's budget of {budget:g} s is used up; this check did not start "
                    "(raise run.budget_seconds or look for a hanging target)", pytrace=False)


def _failure_message(excinfo: pytest.ExceptionInfo[BaseException] | None, report: Any) -> str:
    """The failure's sentence for the verdict (file and terminal line): its first line, with
    what a target said sanitized and every secret redacted."""
    if excinfo is None:
        text = str(report.longreprtext).strip().splitlines()[-1] if report.longreprtext else ""
        return secrets.shown(text)
    exc = excinfo.value
    text = str(exc)
    if isinstance(exc, AssertionError):
        # Drop pytest's rewritten-assert explanation: the sentence is the message.
        text = text.split("\nassert ")[0]
    elif not isinstance(exc, pytest.fail.Exception):
        text = f"{type(exc).__name__}: {text}"
    return secrets.shown(text.strip().splitlines()[0] if text.strip() else type(exc).__name__)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    report = yield
    level = _marker_arg(item, "severity")
    if report.failed and level is not None:
        exc = call.excinfo.value if call.excinfo else None
        if isinstance(exc, sev.CheckFailed):
            level = exc.severity
            _label_severity(item, level)
        report.user_properties.append(("playbook_failure", {
            "severity": level, "message": _failure_message(call.excinfo, report)}))
    return report


def _label_severity(item: pytest.Item, level: str) -> None:
    """Allure labels for a severity, replacing earlier ones (a CheckFailed may escalate)."""
    item.own_markers[:] = [
        m for m in item.own_markers
        if not (m.name == "allure_label" and m.kwargs.get("label_type") in ("severity", "tag")
                and m.args and m.args[0] in (*sev.ALLURE.values(), *sev.LEVELS))]
    item.add_marker(pytest.mark.allure_label(sev.ALLURE[level], label_type="severity"))
    item.add_marker(pytest.mark.allure_label(level, label_type="tag"))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for key, value in report.user_properties:
        if key == "playbook_failure":
            _failures.append({"test": report.nodeid, **value})


def verdict(failures: list[dict[str, str]]) -> dict[str, Any]:
    worst = sev.worst(f["severity"] for f in failures)
    ordered = sorted(failures, key=lambda f: sev.LEVELS.index(f["severity"]))
    return {"verdict": worst or "healthy", "failures": ordered}


def verdict_line(result: dict[str, Any]) -> str:
    if result["verdict"] == "healthy":
        return "verdict: healthy"
    first = result["failures"][0]
    more = len(result["failures"]) - 1
    extra = f" (+{more} more failed check{'s' if more > 1 else ''})" if more else ""
    return f"verdict: {result['verdict']} - {first['message']}{extra}"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> Iterator[None]:
    # Outermost wrapper: runs after the terminal reporter's summary, so the verdict is last.
    result = yield
    config = session.config
    if PROFILE_KEY not in config.stash or not _suite_run(config):
        return result
    outcome = verdict(_failures)
    if config.getoption("incident"):
        outcome["incident"] = config.getoption("incident")
    path = config.getoption("verdict_file")
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(outcome, indent=2) + "\n")
    _write_allure_environment(config)
    if not hasattr(config, "workerinput"):
        tr = config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            markup = {"green": True} if outcome["verdict"] == "healthy" else {"red": True,
                                                                              "bold": True}
            tr.write_line(verdict_line(outcome), **markup)
        _evidence_on_failure(config, outcome, tr)
    return result


def _evidence_on_failure(config: pytest.Config, outcome: dict[str, Any], tr: Any) -> None:
    """A P0 or P1 verdict with --evidence-on-failure (or evidence.on_failure): collect the
    bundle and attach it to the Allure results as one more result carrying the files."""
    profile = config.stash[PROFILE_KEY]
    wanted = config.getoption("evidence_on_failure") or (
        profile.evidence is not None and profile.evidence.on_failure)
    if not wanted or outcome["verdict"] not in ("P0", "P1"):
        return
    from playbook import evidence

    incident = config.getoption("incident") or time.strftime("INC-%Y%m%d%H%M", time.gmtime())
    started = time.time()
    try:
        bundle = evidence.collect(profile, incident, failures=outcome["failures"])
    except Exception as e:  # the verdict stands; the bundle is a bonus
        if tr is not None:
            tr.write_line(f"evidence: not collected - {type(e).__name__}: {e}", red=True)
        return
    if tr is not None:
        for line in evidence.summary(bundle):
            tr.write_line(line)
    alluredir = getattr(config.option, "allure_report_dir", None)
    if alluredir:
        _attach_bundle(Path(alluredir), bundle, started)


def _attach_bundle(alluredir: Path, bundle: Any, started: float) -> None:
    import shutil
    import uuid

    alluredir.mkdir(parents=True, exist_ok=True)
    files = [(bundle.zip(), "application/zip"),
             (bundle.directory / "timeline.md", "text/markdown"),
             (bundle.directory / "sources.json", "application/json"),
             (bundle.directory / "pir-agenda.md", "text/markdown")]
    attachments = []
    for path, mime in files:
        if not path.exists():
            continue
        source = f"{uuid.uuid4()}-attachment{path.suffix}"
        shutil.copyfile(path, alluredir / source)
        attachments.append({"name": path.name, "source": source, "type": mime})
    failed = [s.name for s in bundle.failed]
    result = {
        "uuid": str(uuid.uuid4()), "historyId": f"evidence-{bundle.incident}",
        "name": f"Evidence bundle {bundle.incident}",
        "fullName": f"playbook.evidence::{bundle.incident}",
        "status": "broken" if failed else "passed", "stage": "finished",
        "statusDetails": {"message": "not collected: " + ", ".join(failed)} if failed else {},
        "description": f"Playbook 5.1 evidence collected because the run's verdict was P0/P1; "
                       f"in {bundle.directory}",
        "start": int(started * 1000), "stop": int(time.time() * 1000),
        "labels": [{"name": "feature", "value": "evidence"},
                   {"name": "tag", "value": bundle.incident},
                   {"name": "suite", "value": "incident evidence"}],
        "attachments": attachments}
    (alluredir / f"{result['uuid']}-result.json").write_text(json.dumps(result, indent=2))


def _write_allure_environment(config: pytest.Config) -> None:
    alluredir = getattr(config.option, "allure_report_dir", None)
    if not alluredir or hasattr(config, "workerinput"):
        return
    profile = config.stash[PROFILE_KEY]
    facts = config.stash[FACTS_KEY]
    env = {"Profile": profile.name, "Profile.File": profile.source,
           "Target": profile.service.base_url, "Production": str(profile.production).lower(),
           "Service.Version": facts.get("version", "unknown")}
    Path(alluredir).mkdir(parents=True, exist_ok=True)
    lines = [f"{k}={secrets.redact(secrets.sanitize(str(v), keep_newlines=False))}"
             for k, v in env.items()]
    (Path(alluredir) / "environment.properties").write_text("\n".join(lines) + "\n")


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def profile(pytestconfig: pytest.Config) -> profiles.Profile:
    return _profile(pytestconfig)


@pytest.fixture(scope="session")
def facts(pytestconfig: pytest.Config) -> dict[str, Any]:
    """What checks learned about the target (e.g. its version) for the report's environment."""
    return pytestconfig.stash[FACTS_KEY]


@pytest.fixture(scope="session")
def clients(profile: profiles.Profile) -> Iterator[Clients]:
    """The run's clients (playbook.clients): each built on first use, closed at the end."""
    with Clients(profile) as built:
        yield built


def _client(clients: Clients, name: str) -> Any:
    """One client; a profile without its section skips the check with that sentence."""
    try:
        return getattr(clients, name)
    except SectionMissing as e:
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def http(clients: Clients) -> httpx.Client:
    """The service's HTTP client, with the profile's timeouts and the suite's User-Agent.
    Redirects are not followed: a health endpoint that redirects to a login page is a
    finding, not a pass."""
    return clients.http


@pytest.fixture(scope="session")
def kube(clients: Clients) -> Kube:
    """The Kubernetes API client from the profile's kubeconfig/context or the in-cluster
    service account; credentials never from the profile."""
    return _client(clients, "kube")


@pytest.fixture(scope="session")
def aws(clients: Clients) -> AwsClients:
    """One boto3 Session, clients per service with the profile's timeouts and retries;
    credentials from boto3's chain, never the profile."""
    return _client(clients, "aws")


@pytest.fixture(scope="session")
def database(clients: Clients) -> Database:
    """One PostgreSQL connection, opened on first use; its URL (with the password) is only
    ever shown redacted."""
    return _client(clients, "db")


@pytest.fixture(scope="session")
def prometheus(clients: Clients) -> Prometheus:
    return _client(clients, "prometheus")


@pytest.fixture(scope="session")
def alertmanager(clients: Clients) -> Alertmanager:
    """Alertmanager's API client, which also reads back alertmanager.sink_url when the
    profile has one."""
    return _client(clients, "alertmanager")


@pytest.fixture(scope="session")
def github(clients: Clients) -> httpx.Client:
    """The GitHub REST API client with github.token."""
    return _client(clients, "github")


ATTACHMENT_LIMIT = 1_000_000  # characters of one text attachment


def attach_json(name: str, data: Any) -> None:
    """Evidence for the Allure report, redacted (JSON escapes control bytes); a no-op when
    Allure is not collecting."""
    try:
        import allure

        text = json.dumps(secrets.REDACTOR.data(json.loads(json.dumps(data, default=str))),
                          indent=2)
        allure.attach(secrets.redact(text), name=secrets.shown(name, 1000),
                      attachment_type=allure.attachment_type.JSON)
    except Exception:
        pass


def attach_text(name: str, text: str) -> None:
    """Text evidence for the Allure report: sanitized (what targets said), bounded, redacted."""
    try:
        import allure

        allure.attach(secrets.shown(text, ATTACHMENT_LIMIT), name=secrets.shown(name, 1000),
                      attachment_type=allure.attachment_type.TEXT)
    except Exception:
        pass
