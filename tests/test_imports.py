"""No import cycles among kaggletts' modules, counting the imports inside functions (which
can hide one), and every module importable on its own: the first of the package imported,
before kaggletts/__init__.py has imported the rest in its own order."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import kaggletts

PACKAGE = Path(kaggletts.__file__).parent


def module_names() -> dict[str, Path]:
    names = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def imported_by(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The kaggletts modules `name` imports anywhere in its code, the imports under
    `if TYPE_CHECKING:` aside (they never run)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package[: len(package) - node.level + 1]
                    base = ".".join([*parent, base] if base else parent)
                found.update(
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                    for alias in node.names
                )
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    visit([child])

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return {module for module in found if module in known and module != name}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph`, as the modules along it, or None."""
    done: set[str] = set()
    path: list[str] = []

    def walk(module: str) -> list[str] | None:
        if module in path:
            return path[path.index(module) :] + [module]
        if module in done:
            return None
        path.append(module)
        for target in sorted(graph[module]):
            if (cycle := walk(target)) is not None:
                return cycle
        path.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        if (cycle := walk(module)) is not None:
            return cycle
    return None


def test_no_module_imports_itself_round_about():
    known = module_names()
    graph = {name: imported_by(name, path, known) for name, path in known.items()}
    assert graph["kaggletts.api"] >= {"kaggletts.jobs", "kaggletts.result"}, "the graph is read"
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


# Each module imported first: `kaggletts` stands for the package without running its
# __init__.py, which would import most modules in an order of its own first.
ALONE = """
import importlib, json, sys, traceback, types
names, folder = json.load(sys.stdin)
sys.argv = ["probe"]
failed = {}
for name in names:
    for loaded in [m for m in sys.modules if m == "kaggletts" or m.startswith("kaggletts.")]:
        del sys.modules[loaded]
    package = types.ModuleType("kaggletts")
    package.__path__ = [folder]
    sys.modules["kaggletts"] = package
    try:
        importlib.import_module(name)
    except Exception:
        failed[name] = traceback.format_exc(limit=-3)
print(json.dumps(failed))
"""


def test_every_module_imports_alone():
    # A __main__ module runs its command when imported.
    names = [
        name for name in module_names() if name.partition(".")[2] and not name.endswith(".__main__")
    ]
    done = subprocess.run(
        [sys.executable, "-c", ALONE],
        input=json.dumps([names, str(PACKAGE)]),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    failed = json.loads(done.stdout.strip().splitlines()[-1])
    assert not failed, "\n".join(f"{name}:\n{error}" for name, error in failed.items())
