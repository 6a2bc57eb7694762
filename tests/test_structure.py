"""The package's shape a newcomer relies on: subpackages import downwards only, and file formats know no task."""

import ast
import collections
import pathlib

import pytest

pytestmark = pytest.mark.backend_independent

KBERT = pathlib.Path(__file__).resolve().parent.parent / "kbert"


def imports_of(path):
    """Every module `path` imports (absolute names, relative imports resolved), including imports inside
    functions."""
    module = ".".join(path.relative_to(KBERT.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def unit(module):
    """The part of kbert a module belongs to: its subpackage, or the top-level module itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def import_graph():
    """`{unit: {unit it imports}}` over kbert's subpackages and top-level modules (the package's own
    `__init__` left out: it gathers the public names from every floor)."""
    graph = collections.defaultdict(set)
    for path in KBERT.rglob("*.py"):
        source = unit(".".join(path.relative_to(KBERT.parent).with_suffix("").parts))
        if source == "__init__":
            continue
        for name in imports_of(path):
            target = unit(name) if name.startswith("kbert.") else None
            is_unit = target and ((KBERT / target).is_dir() or (KBERT / f"{target}.py").is_file())
            if is_unit and target != source:
                graph[source].add(target)
    return graph


def cycle(graph):
    """One import cycle between units, as a list of names, or None."""
    state = {}

    def visit(node, trail):
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return trail[trail.index(target) :] + [target]
            if target not in state:
                found = visit(target, trail + [target])
                if found:
                    return found
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def test_subpackages_import_downwards_only():
    graph = import_graph()
    assert graph["interop"] and graph["models"], "the import graph came out empty: the test reads nothing"
    found = cycle(graph)
    assert found is None, f"import cycle between kbert's parts: {' -> '.join(found)}"


def test_the_cycle_check_catches_a_cycle():
    found = cycle({"models": {"interop", "text"}, "interop": {"text", "models"}, "text": set()})
    assert found is not None and set(found) == {"models", "interop"}
    assert cycle({"models": {"interop", "text"}, "interop": {"text"}, "text": set()}) is None


def test_interop_imports_no_task_class():
    task_modules = ("kbert.models.tasks", "kbert.models.pretrainer", "kbert.models")
    for path in (KBERT / "interop").rglob("*.py"):
        bad = sorted(name for name in imports_of(path) if name.startswith(task_modules))
        assert not bad, f"{path.name} imports {bad}: kbert.interop keeps formats and tables, never model classes"
