"""Environment profiles: load a YAML profile, validate it strictly, interpolate ${SECRETS}.

A profile says where the service and its infrastructure are and which thresholds hold there.
Every section other than `name` and `service` is optional; a check whose section is absent is
skipped with that reason. Secrets never live in a profile: `${VAR}` (or `${VAR:-default}`) is
read from the environment when the profile is loaded.

Any problem - malformed YAML, an unknown key, a wrong type, a missing variable - raises
ProfileError with one line that names the file and the key.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

BUNDLED = Path(__file__).parent / "environments"
DEFAULT_ENV = "local"


class ProfileError(Exception):
    """A profile cannot be used. The message is one line naming the file and the key."""


# --- sections -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoints:
    health: str = "/api/health"
    ready: str = "/api/ready"
    status: str = "/api/status"


@dataclass(frozen=True)
class Slo:
    p95_seconds: float = 2.0  # playbook 1.3: P95 response time > 2 s is P1
    error_rate_p1: float = 0.10  # HTTP 5xx rate > 10 % is P1
    error_rate_p0: float = 0.50  # HTTP 5xx rate > 50 % is P0


@dataclass(frozen=True)
class RepeatedHealth:
    count: int = 10  # playbook 6.2: for i in {1..10}
    interval: float = 6.0  # sleep 6


@dataclass(frozen=True)
class Service:
    base_url: str
    endpoints: Endpoints = field(default_factory=Endpoints)
    timeout: float = 5.0  # seconds, for every request
    slo: Slo = field(default_factory=Slo)
    repeated_health: RepeatedHealth = field(default_factory=RepeatedHealth)
    tls_min_days: int = 14
    # Read endpoints a synthetic user browses (and that the status check may sample).
    read_endpoints: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path


@dataclass(frozen=True)
class Run:
    budget_seconds: float = 600.0  # the whole validation run; a hung target never hangs CI


@dataclass(frozen=True)
class SandboxPorts:
    front: int
    postgres: int
    redis: int
    replica_base: int  # replica n listens on replica_base + n (pods get fresh slots)
    kube: int | None = None  # the Kubernetes API
    aws: int | None = None  # moto's server
    prometheus: int | None = None
    alertmanager: int | None = None
    sink: int | None = None  # the webhook sink that records notifications


@dataclass(frozen=True)
class Sandbox:
    """Only in the local profile: how `playbook sandbox up` lays out the stand-in world."""

    ports: SandboxPorts
    state_dir: str = ".sandbox"
    replicas: int = 2
    version: str = "1.4.2"


@dataclass(frozen=True)
class Profile:
    name: str
    service: Service
    production: bool = False
    run: Run = field(default_factory=Run)
    sandbox: Sandbox | None = None
    source: str = ""  # the file it came from (set by the loader, not by the YAML)

    def section(self, name: str) -> Any:
        return getattr(self, name)


# --- loading --------------------------------------------------------------------------------

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def resolve_path(env: str | None) -> Path:
    """`--env NAME`: a bundled profile; `--env path.yaml`: a file; default PLAYBOOK_ENV, local."""
    env = env or os.environ.get("PLAYBOOK_ENV") or DEFAULT_ENV
    if env.endswith((".yaml", ".yml")) or os.sep in env:
        path = Path(env)
        if not path.is_file():
            raise ProfileError(f"{env}: profile file not found")
        return path
    path = BUNDLED / f"{env}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in BUNDLED.glob("*.yaml")))
        raise ProfileError(f"--env {env}: no such bundled profile (known: {known}; or pass a path)")
    return path


def load(env: str | None = None, environ: typing.Mapping[str, str] | None = None) -> Profile:
    path = resolve_path(env)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ProfileError(f"{path}:{where} malformed YAML: {problem}") from None
    except OSError as e:
        raise ProfileError(f"{path}: cannot read: {e.strerror}") from None
    if not isinstance(raw, dict):
        raise ProfileError(f"{path}: expected a mapping at the top level, got {_kind(raw)}")
    data = _interpolate(raw, environ if environ is not None else os.environ, str(path), "")
    data["source"] = str(path)
    return _build(Profile, data, str(path), "")


def _interpolate(value: Any, environ: typing.Mapping[str, str], file: str, key: str) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, environ, file, _join(key, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, environ, file, f"{key}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise ProfileError(f"{file}: {key}: environment variable {name} is not set")

    return _VAR.sub(sub, value)


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number", type(None): "nothing"}.get(type(value),
                                                                          type(value).__name__)


def _build(cls: type, data: Any, file: str, key: str) -> Any:
    if not isinstance(data, dict):
        raise ProfileError(f"{file}: {key or 'top level'}: expected a mapping, got {_kind(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        known = ", ".join(n for n in fields if n != "source")
        raise ProfileError(
            f"{file}: {_join(key, str(unknown[0]))}: unknown key (known here: {known})")
    kwargs = {}
    for name, f in fields.items():
        sub = _join(key, name)
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ProfileError(f"{file}: {sub}: required key is missing")
            continue
        kwargs[name] = _coerce(hints[name], data[name], file, sub)
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, file: str, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(args[0], value, file, key)
    if origin is list:
        if not isinstance(value, list):
            raise ProfileError(f"{file}: {key}: expected a list, got {_kind(value)}")
        (item,) = typing.get_args(tp)
        return [_coerce(item, v, file, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ProfileError(f"{file}: {key}: expected a mapping, got {_kind(value)}")
        _, item = typing.get_args(tp)
        return {str(k): _coerce(item, v, file, _join(key, str(k))) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, file, key)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ProfileError(f"{file}: {key}: expected true or false, got {value!r}")
    if tp is float:
        # A number may come as a string after ${VAR} interpolation.
        if isinstance(value, bool):
            raise ProfileError(f"{file}: {key}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ProfileError(f"{file}: {key}: expected a number, got {value!r}") from None
    if tp is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ProfileError(f"{file}: {key}: expected a whole number, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ProfileError(f"{file}: {key}: expected a whole number, got {value!r}") from None
    if tp is str:
        if isinstance(value, (dict, list)) or value is None:
            raise ProfileError(f"{file}: {key}: expected a string, got {_kind(value)}")
        return str(value)
    return value
