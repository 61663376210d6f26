"""Profiles: every bad input stops with one line naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from playbook import config

pytestmark = pytest.mark.unit


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


MINIMAL = "name: t\nservice:\n  base_url: http://127.0.0.1:1\n"


def test_bundled_profiles_load() -> None:
    for name in ("local", "staging", "production"):
        profile = config.load(name, environ={})
        assert profile.name == name
        assert profile.service.endpoints.health == "/api/health"
    assert config.load("production", environ={}).production is True
    assert config.load("local", environ={}).sandbox is not None


def test_playbook_defaults(tmp_path: Path) -> None:
    p = config.load(write(tmp_path, MINIMAL), environ={})
    s = p.service
    assert (s.endpoints.health, s.endpoints.ready, s.endpoints.status) == (
        "/api/health", "/api/ready", "/api/status")
    assert (s.slo.p95_seconds, s.slo.error_rate_p1, s.slo.error_rate_p0) == (2.0, 0.10, 0.50)
    assert (s.repeated_health.count, s.repeated_health.interval) == (10, 6.0)
    assert p.production is False and p.sandbox is None


def test_env_variable_selects_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, MINIMAL)
    monkeypatch.setenv("PLAYBOOK_ENV", path)
    assert config.load().name == "t"
    assert config.load("staging").name == "staging"  # --env wins over PLAYBOOK_ENV
    monkeypatch.delenv("PLAYBOOK_ENV")
    assert config.load().name == "local"


def test_interpolation(tmp_path: Path) -> None:
    text = MINIMAL.replace("http://127.0.0.1:1", "${BASE}") + "  timeout: ${T:-3.5}\n"
    p = config.load(write(tmp_path, text), environ={"BASE": "https://x.example"})
    assert p.service.base_url == "https://x.example"
    assert p.service.timeout == 3.5


@pytest.mark.parametrize("text, expected", [
    ("name: t\nservice: [\n", "malformed YAML"),
    ("- a\n- b\n", "expected a mapping at the top level, got a list"),
    (MINIMAL + "colour: blue\n", "colour: unknown key"),
    (MINIMAL + "  endpoints:\n    helth: /h\n", "service.endpoints.helth: unknown key"),
    (MINIMAL + "  timeout: fast\n", "service.timeout: expected a number, got 'fast'"),
    (MINIMAL + "production: yes-please\n", "production: expected true or false"),
    (MINIMAL + "  repeated_health:\n    count: 2.5\n",
     "service.repeated_health.count: expected a whole number, got 2.5"),
    ("name: t\n", "service: required key is missing"),
    ("name: t\nservice:\n  timeout: 1\n", "service.base_url: required key is missing"),
    (MINIMAL.replace("http://127.0.0.1:1", "${NOPE_NOT_SET}"),
     "service.base_url: environment variable NOPE_NOT_SET is not set"),
    ("name: t\nservice: http://x\n", "service: expected a mapping, got a string"),
])
def test_bad_profiles_name_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(config.ProfileError) as err:
        config.load(path, environ={})
    message = str(err.value)
    assert message.startswith(path), message
    assert expected in message
    assert "\n" not in message


def test_unknown_bundled_name_and_missing_file() -> None:
    with pytest.raises(config.ProfileError, match=r"no such bundled profile.*local"):
        config.load("nowhere", environ={})
    with pytest.raises(config.ProfileError, match="profile file not found"):
        config.load("/nonexistent/p.yaml", environ={})
