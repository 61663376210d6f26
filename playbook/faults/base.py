"""What every fault shares: inject/revert, the journal, the production guard, and the promise
that whatever was injected is reverted - on pass, failure, exception, Ctrl-C and SIGTERM, and
after a SIGKILL through `playbook gameday revert`, which replays the journal and rebuilds each
fault from its kind through the explicit table playbook.faults.registry.REGISTRY.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from playbook.config import Profile
from playbook.control.context import Context


class FaultRefused(Exception):
    """The fault may not be injected here (production guard, blast radius, unhealthy target)."""


class Interrupted(BaseException):
    """SIGTERM during a drill: unwinds like Ctrl-C so that every revert runs."""


@dataclass
class Fault(ABC):
    """A failure injected on purpose, only through the target's control planes."""

    kind: ClassVar[str]  # the journal's name for it; the key in faults.registry.REGISTRY

    @property
    @abstractmethod
    def description(self) -> str: ...

    @abstractmethod
    def inject(self, ctx: Context) -> None: ...

    @abstractmethod
    def revert(self, ctx: Context) -> None:
        """Undo inject(). Idempotent: reverting twice, or what was never injected, is fine."""

    def check_allowed(self, ctx: Context) -> None:  # noqa: B027 - optional hook
        """Raise FaultRefused when this fault's blast radius exceeds the profile's limit."""

    def prepare(self, ctx: Context) -> None:  # noqa: B027 - optional hook
        """Read what revert() will need (replica count, targets, image) into the fault's own
        fields *before* it is journaled, so a revert after SIGKILL knows what to restore."""

    def params(self) -> dict[str, Any]:
        return asdict(self)


def rebuild(record: dict[str, Any], registry: Mapping[str, type[Fault]]) -> Fault:
    """The fault a journal entry describes, from its kind and params."""
    try:
        fault_cls = registry[record["kind"]]
    except KeyError:
        raise ValueError(f"journal entry of unknown fault kind {record.get('kind')!r}") \
            from None
    return fault_cls(**record.get("params", {}))


def guard(profile: Profile, allow_production: bool) -> None:
    if profile.production and not allow_production:
        raise FaultRefused(
            f"profile {profile.name} is marked production: true - faults are refused unless "
            "the run passes --allow-production explicitly")


# --- the journal ------------------------------------------------------------------------------


@dataclass
class Journal:
    """Every fault, written (atomically) before it is injected and updated when reverted."""

    path: Path
    entries: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def open(cls, path: Path) -> Journal:
        entries: list[dict[str, Any]] = []
        if path.exists():
            try:
                entries = json.loads(path.read_text())["entries"]
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{path}: unreadable game-day journal ({e}); nothing was "
                                 "reverted - inspect it by hand") from None
        return cls(path, entries)

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".journal.")
        with os.fdopen(fd, "w") as f:
            json.dump({"entries": self.entries}, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def add(self, fault: Fault, profile: Profile) -> dict[str, Any]:
        entry = {"id": uuid.uuid4().hex[:12], "kind": fault.kind, "params": fault.params(),
                 "description": fault.description, "profile": profile.source,
                 "status": "injecting", "at": time.time()}
        with self.lock:
            self.entries.append(entry)
            self._save()
        return entry

    def mark(self, entry: dict[str, Any], status: str, error: str | None = None) -> None:
        with self.lock:
            entry["status"] = status
            entry["updated"] = time.time()
            if error:
                entry["error"] = error
            else:
                entry.pop("error", None)
            self._save()

    def pending(self) -> list[dict[str, Any]]:
        return [e for e in self.entries if e["status"] != "reverted"]


# --- inject and always revert -------------------------------------------------------------------


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """Within this block SIGTERM raises Interrupted (once), so `finally` clauses run."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the revert
        raise Interrupted(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait while a revert runs: an impatient second Ctrl-C must not leave
    the fault half reverted."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextlib.contextmanager
def injected(fault: Fault, ctx: Context, journal: Journal,
             on_event: Callable[[str, str], None] | None = None) -> Iterator[Fault]:
    """Inject `fault` for the duration of the block; revert it whatever happens."""
    guard(ctx.profile, ctx.allow_production)
    fault.prepare(ctx)
    fault.check_allowed(ctx)
    entry = journal.add(fault, ctx.profile)
    with sigterm_unwinds():
        try:
            fault.inject(ctx)
            journal.mark(entry, "injected")
            if on_event:
                on_event("injected", fault.description)
            yield fault
        finally:
            with signals_deferred():
                revert_entry(fault, ctx, journal, entry)
            if on_event:
                on_event("reverted", fault.description)


def revert_entry(fault: Fault, ctx: Context, journal: Journal, entry: dict[str, Any],
                 attempts: int = 3) -> None:
    """Revert with a few retries; a revert that keeps failing stays in the journal."""
    error = ""
    for attempt in range(attempts):
        try:
            fault.revert(ctx)
            journal.mark(entry, "reverted")
            return
        except Exception as e:  # keep trying; report precisely if it never works
            error = f"{type(e).__name__}: {e}"
            time.sleep(0.5 * (attempt + 1))
    journal.mark(entry, "revert-failed", error)
    raise RuntimeError(f"could not revert {fault.description}: {error} - it stays in "
                       f"{journal.path}; run `playbook gameday revert`")


def revert_pending(ctx: Context, journal: Journal, registry: Mapping[str, type[Fault]],
                   echo: Callable[[str], None] = print) -> int:
    """`playbook gameday revert`: revert whatever the journal still holds, rebuilding each
    fault through `registry` (kind -> class). Returns the number of failures."""
    failures = 0
    for entry in journal.pending():
        try:
            fault = rebuild(entry, registry)
        except (ValueError, TypeError) as e:
            echo(f"cannot rebuild {entry.get('kind')}: {e}")
            failures += 1
            continue
        try:
            revert_entry(fault, ctx, journal, entry)
            echo(f"reverted: {entry['description']}")
        except RuntimeError as e:
            echo(str(e))
            failures += 1
    return failures
