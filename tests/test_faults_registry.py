"""The explicit table of fault kinds that `playbook gameday revert` rebuilds faults from: every
Fault subclass under playbook/faults/ must be in it (a fault missing there would survive a
SIGKILLed game day silently), under its own kind, and no two faults may share a kind."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import playbook.faults
from playbook.faults.base import Fault, rebuild
from playbook.faults.registry import FAULTS, REGISTRY

pytestmark = pytest.mark.unit


def fault_classes() -> list[type[Fault]]:
    """Every concrete Fault subclass defined in a module of the playbook.faults package."""
    found = []
    for info in pkgutil.walk_packages(playbook.faults.__path__, "playbook.faults."):
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if (issubclass(obj, Fault) and obj is not Fault and obj.__module__ == module.__name__
                    and not inspect.isabstract(obj)):
                found.append(obj)
    return found


def test_every_fault_class_is_registered_under_its_kind() -> None:
    classes = fault_classes()
    assert len(classes) >= 12
    missing = [f"{c.__module__}.{c.__name__}" for c in classes if REGISTRY.get(c.kind) is not c]
    assert not missing, f"not in playbook/faults/registry.py FAULTS: {', '.join(missing)}"
    assert len(REGISTRY) == len(FAULTS), "two faults share a kind"


def test_a_journal_entry_is_rebuilt_and_an_unknown_kind_is_a_sentence() -> None:
    fault = rebuild({"kind": "kube-scaled-to-zero", "params": {"previous": 3}}, REGISTRY)
    assert fault.description == "deployment scaled from 3 to 0 replicas"
    with pytest.raises(ValueError, match="journal entry of unknown fault kind 'gone'"):
        rebuild({"kind": "gone"}, REGISTRY)
