"""Clients(profile): one client per system, built on first use, cached, closed once, with the
profile's timeouts, credentials and the suite's User-Agent; a missing section is one sentence
that names the section."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from playbook import config
from playbook.clients import Clients, SectionMissing, github_client
from playbook.faults.base import FaultRefused
from playbook.faults.context import GameDay
from playbook.probes.http import USER_AGENT, http_client, timeout

pytestmark = pytest.mark.unit

FULL = """name: full
service: {base_url: "http://127.0.0.1:9", timeout: 7}
prometheus: {url: "http://127.0.0.1:9", timeout: 2, bearer_token: prom-t0ken-value}
alertmanager: {url: "http://127.0.0.1:9", timeout: 9}
github: {repo: o/r, token: gh-t0ken-value, timeout: 4}
notify: {timeout: 6}
database: {url: "postgresql://u:pw-value@127.0.0.1:9/db"}
kubernetes: {kubeconfig: /nonexistent/kubeconfig}
aws: {endpoint_url: "http://127.0.0.1:9"}
"""


def load(tmp: Path, text: str) -> config.Profile:
    path = tmp / "p.yaml"
    path.write_text(text)
    return config.load(str(path))


def test_the_timeout_rule() -> None:
    assert timeout(7) == httpx.Timeout(7, connect=3.0)
    assert timeout(1) == httpx.Timeout(1, connect=1.0)
    with http_client(2, bearer_token="abcd", headers={"x-a": "b"}) as c:
        assert c.timeout == httpx.Timeout(2, connect=2.0)
        assert c.headers["user-agent"] == USER_AGENT
        assert c.headers["authorization"] == "Bearer abcd" and c.headers["x-a"] == "b"
        assert c.follow_redirects is False


def test_every_client_has_the_profiles_timeout_credentials_and_user_agent(
        tmp_path: Path) -> None:
    with Clients(load(tmp_path, FULL)) as clients:
        assert clients.http.timeout == httpx.Timeout(7, connect=3.0)
        assert clients.http.headers["user-agent"] == USER_AGENT
        prom = clients.prometheus
        assert prom.client.timeout == httpx.Timeout(2, connect=2.0)
        assert prom.client.headers["authorization"] == "Bearer prom-t0ken-value"
        assert prom.client.headers["user-agent"] == USER_AGENT
        assert clients.alertmanager.client.timeout == httpx.Timeout(9, connect=3.0)
        assert "authorization" not in clients.alertmanager.client.headers
        assert clients.github.headers["authorization"] == "Bearer gh-t0ken-value"
        assert clients.github.headers["x-github-api-version"] == "2022-11-28"
        assert clients.notify.timeout == httpx.Timeout(6, connect=3.0)
        assert clients.db.cfg.url.startswith("postgresql://u:")
        assert clients.aws.config.user_agent_extra == USER_AGENT
        assert clients.aws.config.connect_timeout == 3.0
        # The kubeconfig is missing: the client says so in a sentence when first asked.
        assert clients.kube.pods().error == (
            "cannot use kubeconfig /nonexistent/kubeconfig: Invalid kube-config file. "
            "No configuration found.")


def test_built_once_and_closed_once(tmp_path: Path) -> None:
    clients = Clients(load(tmp_path, FULL))
    http, prom = clients.http, clients.prometheus
    assert clients.http is http and clients.prometheus is prom
    clients.close()
    assert http.is_closed and prom.client.is_closed
    clients.close()  # nothing left to close: no error


def test_a_missing_section_is_one_sentence_naming_it(tmp_path: Path) -> None:
    clients = Clients(load(tmp_path, "name: bare\nservice: {base_url: 'http://127.0.0.1:9'}\n"))
    for name, section in (("kube", "kubernetes"), ("aws", "aws"), ("db", "database"),
                          ("prometheus", "prometheus"), ("alertmanager", "alertmanager"),
                          ("github", "github")):
        with pytest.raises(SectionMissing) as e:
            getattr(clients, name)
        assert str(e.value) == f"profile bare has no `{section}` section"
        assert e.value.section == section
    assert clients.notify.timeout == httpx.Timeout(5, connect=3.0)  # the playbook's defaults
    clients.close()
    day = GameDay(clients.profile)
    with pytest.raises(FaultRefused, match=r"^profile bare has no `kubernetes` section: this "
                                           r"fault has no control plane to act through$"):
        day.kube  # noqa: B018
    day.close()


def test_the_game_days_synthetic_users_say_who_they_are(tmp_path: Path) -> None:
    """The drills' health polls and synthetic users carry the suite's User-Agent (they did
    not), with a short timeout so that they never stall a drill."""
    day = GameDay(load(tmp_path, FULL))
    try:
        assert day.http.headers["user-agent"] == USER_AGENT
        assert day.http.timeout == httpx.Timeout(1.0)
    finally:
        day.close()


def test_github_client_without_a_token_sends_no_authorization() -> None:
    with github_client(config.Github(repo="o/r")) as c:
        assert "authorization" not in c.headers
