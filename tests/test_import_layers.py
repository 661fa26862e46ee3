"""The package's rooms (top-level modules and sub-packages of plateau_lens) import each other
without a circle, counting imports inside functions too, and the two lowest layers of
docs/package-layout.md (tasks, then config) import none of the rooms above them. The order of
the other layers is not asserted here beyond the absence of circles."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "plateau_lens"


def room_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return "__init__" if parts == ("__init__",) else parts[0]


def imported_rooms(path: Path) -> set[str]:
    """The rooms a module imports (absolute ``plateau_lens.x`` or relative ``from ..x``)."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    package = parts[:-1]  # the package a relative import starts from (for __init__.py: itself)
    rooms = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                target = list(package[:len(package) - node.level + 1])
                target += node.module.split(".") if node.module else [node.names[0].name]
            else:
                target = (node.module or "").split(".")
            if target[0] == "plateau_lens" and len(target) > 1:
                rooms.add(target[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "plateau_lens" and len(parts) > 1:
                    rooms.add(parts[1])
    return rooms


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
