"""The house's rules (docs/ARCHITECTURE.md), read from the source: the imports that must never
exist, no import cycle in playbook/, probes that never write, modules of a readable size.

Imports are read with ast from every .py file of the project, function-level ones included
(a lazy import is still an arrow); only those under `if TYPE_CHECKING:` are left out (they
never run)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
TREES = ("playbook", "checks", "gameday", "loadtests", "bench", "tests")
MAX_LINES = 700


def module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    found = {}
    for tree in TREES:
        for path in sorted((ROOT / tree).rglob("*.py")):
            found[module_of(path)] = path
    return found


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _type_checking(child):
            for other in child.orelse:
                yield from _import_nodes(other)
            continue
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child
        yield from _import_nodes(child)


@cache
def imports(name: str) -> frozenset[str]:
    """The modules `name` imports: `from a.b import c` is a.b.c when that is a module of the
    project, else a.b."""
    path = modules()[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        for alias in node.names:
            full = f"{base}.{alias.name}"
            found.add(full if full in modules() else base)
    return frozenset(found)


def within(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def arrows(source: tuple[str, ...], target: tuple[str, ...],
           allowed: tuple[str, ...] = ()) -> list[str]:
    """Every `importer -> imported` from modules under `source` to modules under `target`."""
    return sorted(f"{name} -> {imported}" for name in modules()
                  if within(name, *source) and not within(name, *allowed)
                  for imported in imports(name) if within(imported, *target))


def test_the_import_graph_is_read() -> None:
    """The rules below would pass on nothing: the reader sees the arrows that do exist."""
    assert "playbook.clients" in imports("playbook.plugin")
    assert "playbook.control.kube" in imports("playbook.faults.kube")
    assert "playbook.sandbox.control" in imports("playbook.cli")  # a lazy import
    assert "playbook.probes.kube" not in imports("playbook.control.context")  # TYPE_CHECKING
    assert arrows(("playbook.cli",), ("playbook.sandbox",))


def test_no_import_cycle_in_playbook() -> None:
    graph = {name: sorted(i for i in imports(name) if within(i, "playbook") and i in modules()
                          and i != "playbook")
             for name in modules() if within(name, "playbook")}
    cycles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in graph.get(node, []):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join([*path[path.index(nxt):], nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for name in graph:
        if name not in state:
            visit(name, [name])
    assert not cycles, "import cycles in playbook/: " + "; ".join(cycles)


def test_only_the_cli_and_the_sandbox_import_the_sandbox() -> None:
    """The suite reaches the sandbox over the network, with the same clients and profile
    fields as production."""
    wrong = arrows(("playbook", "checks", "loadtests", "gameday"), ("playbook.sandbox",),
                   allowed=("playbook.sandbox", "playbook.cli"))
    assert not wrong, wrong


def test_the_library_imports_no_suite_and_nothing_imports_tests() -> None:
    assert not arrows(("playbook",), ("checks", "gameday", "loadtests", "tests"))
    wrong = arrows(("playbook", "bench", "checks", "gameday", "loadtests"), ("tests",))
    assert not wrong, wrong


def test_probes_do_not_import_control_and_faults_and_actions_not_each_other() -> None:
    assert not arrows(("playbook.probes",), ("playbook.control",))
    assert not arrows(("playbook.faults",), ("playbook.actions",))
    assert not arrows(("playbook.actions",), ("playbook.faults",))


def test_faults_and_actions_change_systems_only_through_control() -> None:
    """No fault or action holds a control plane's client library itself."""
    wrong = arrows(("playbook.faults", "playbook.actions"), ("kubernetes", "boto3", "botocore"))
    assert not wrong, wrong


# The client libraries' writes: Kubernetes objects (a patch is allowed as a dry run) and AWS.
KUBE_WRITE = re.compile(r"^(create|delete|replace|patch)_\w*(namespaced|node|namespace|"
                        r"custom_object|collection)")
AWS_WRITES = {"stop_db_instance", "start_db_instance", "reboot_db_instance",
              "reboot_cache_cluster", "register_targets", "deregister_targets"}


def test_probes_never_write() -> None:
    """No probe calls a write of a client library (a patch is allowed only as a server-side
    dry run) nor sends a writing HTTP method."""
    found = []
    for name, path in modules().items():
        if not within(name, "playbook.probes"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            verb = func.attr if isinstance(func, ast.Attribute) else ""
            dry_run = any(k.arg == "dry_run" for k in node.keywords)
            if (KUBE_WRITE.match(verb) and not (verb.startswith("patch_") and dry_run)) \
                    or verb in AWS_WRITES:
                found.append(f"{name}:{node.lineno} {verb}")
            methods = [a.value for a in node.args if isinstance(a, ast.Constant)
                       and a.value in ("POST", "PUT", "PATCH", "DELETE")]
            found += [f"{name}:{node.lineno} {m}" for m in methods]
    assert not found, found


def test_no_module_of_the_library_is_over_700_lines() -> None:
    long = {name: n for name, path in modules().items() if within(name, "playbook")
            and (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, long
