"""The package's rooms (top-level modules and sub-packages of plateau_lens) import each other
without a circle, counting imports inside functions too, and so do the modules inside each
room; the two lowest layers of docs/package-layout.md (tasks, then config) import none of the
rooms above them. The order of the other layers is not asserted here beyond the absence of
circles."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "plateau_lens"


def room_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return "__init__" if parts == ("__init__",) else parts[0]


def imported_modules(path: Path) -> set[str]:
    """The modules of the package a module imports, as dotted names below ``plateau_lens``
    (``from .x import y`` is ``x.y`` where that is a module, else ``x``)."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    package = parts[:-1]  # a relative import starts from the module's package
    found = set()

    def module_of(dotted: list[str]) -> str | None:
        if dotted[:1] != ["plateau_lens"] or len(dotted) < 2:
            return None
        for end in range(len(dotted), 1, -1):
            base = PACKAGE.parent.joinpath(*dotted[:end])
            if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
                return ".".join(dotted[1:end])
        return None

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                start = list(package[:len(package) - node.level + 1])
                start += node.module.split(".") if node.module else []
            else:
                start = (node.module or "").split(".")
            for alias in node.names:
                found.add(module_of(start + [alias.name]))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                found.add(module_of(alias.name.split(".")))
    return found - {None}


def imported_rooms(path: Path) -> set[str]:
    """The rooms a module imports (absolute ``plateau_lens.x`` or relative ``from ..x``)."""
    return {module.split(".")[0] for module in imported_modules(path)}


def room_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        room = room_of(path)
        graph.setdefault(room, set()).update(imported_rooms(path) - {room})
    return graph


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(room: str) -> list[str] | None:
        state[room] = 1
        stack.append(room)
        for target in sorted(graph.get(room, ())):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state and (circle := visit(target)):
                return circle
        stack.pop()
        state[room] = 2
        return None

    for room in sorted(graph):
        if room not in state and (circle := visit(room)):
            return circle
    return None


def test_the_finder_sees_a_circle():
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_rooms_are_read_from_relative_and_function_level_imports():
    graph = room_graph()
    assert {"tasks", "errors"} <= graph["config"]            # config validates [task] with the tasks
    assert "config" in graph["models"] and "runs" in graph["training"]


def test_no_room_imports_in_a_circle():
    assert find_circle(room_graph()) is None


def test_the_lower_layers_import_nothing_above_them():
    graph = room_graph()
    above = {"models", "runs", "training", "tracking", "analysis", "sweep", "reproduce", "cli",
             "development", "llm"}
    assert not graph["tasks"] & (above | {"config"}), graph["tasks"]
    assert not graph["config"] & above, graph["config"]


def test_no_module_of_a_room_imports_another_of_it_in_a_circle():
    """Inside each room too, modules import each other without a circle (tasks/base.py and
    tasks/protocol.py did, through a function-level import). A package's ``__init__``
    gathering its modules is not a circle with them."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        graph[name] = imported_modules(path) - {name}
    packages = {name.removesuffix(".__init__") for name in graph if name.endswith("__init__")}
    within = {name: {target.removesuffix(".__init__") for target in targets
                     if target not in packages and room_of(PACKAGE / (target.replace(".", "/") + ".py"))
                     == name.split(".")[0]}
              for name, targets in graph.items() if not name.endswith("__init__")}
    assert "tasks.capabilities" in within["tasks.base"]
    assert find_circle(within) is None
