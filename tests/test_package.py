"""The package's import surface: exported names resolve, and the command line answers
``--help`` and bad flags without loading torch (the names load on first use)."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import subprocess
import sys

import pytest

PACKAGES = ("plateau_lens", "plateau_lens.config", "plateau_lens.models", "plateau_lens.runs", "plateau_lens.llm",
            "plateau_lens.sweep", "plateau_lens.reproduce", "plateau_lens.development")
HEAVY = ("torch", "transformer_lens", "transformers", "pandas", "matplotlib")


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_resolves(package):
    module = importlib.import_module(package)
    unresolved = [name for name in module.__all__ if getattr(module, name, None) is None]
    assert module.__all__ and not unresolved
    assert set(module.__all__) <= set(dir(module))
    with pytest.raises(AttributeError):
        getattr(module, "no_such_name")


def lazy_map_and_type_checking_imports(source: str) -> tuple[dict, dict]:
    """From a package's ``__init__`` source: the exports dict given to ``lazy_package`` and the
    ``from .module import names`` of its ``if TYPE_CHECKING:`` block, each as {module: {names}}."""
    tree = ast.parse(source)
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
             and getattr(node.func, "id", None) == "lazy_package"]
    assert len(calls) == 1
    exports = ast.literal_eval(calls[0].args[2])
    blocks = [node for node in tree.body if isinstance(node, ast.If)
              and getattr(node.test, "id", None) == "TYPE_CHECKING"]
    assert len(blocks) == 1
    imported: dict[str, set] = {}
    for node in blocks[0].body:
        assert isinstance(node, ast.ImportFrom) and node.level == 1, ast.dump(node)
        imported.setdefault(node.module, set()).update(alias.name for alias in node.names)
    return {module: set(names) for module, names in exports.items()}, imported


@pytest.mark.parametrize("package", PACKAGES)
def test_type_checking_imports_match_the_lazy_names(package):
    """Static tools read the ``TYPE_CHECKING`` block, the package serves the lazy map: the two
    lists of each ``__init__`` name the same names from the same modules."""
    spec = importlib.util.find_spec(package)
    with open(spec.origin, encoding="utf-8") as source:
        exports, imported = lazy_map_and_type_checking_imports(source.read())
    assert exports == imported


def test_reproduce_names_come_with_every_entry_registered():
    from plateau_lens import reproduce

    ids = set(reproduce.table()["id"])
    assert len(ids) > 40 and ids == set(reproduce.REGISTRY)
    for study in reproduce.STUDIES:  # both studies' entry modules were imported
        assert any(entry.study == study for entry in reproduce.REGISTRY.values())


SUBMODULE_PROBE = """
import importlib, pkgutil, sys
package = importlib.import_module(sys.argv[1])
names = [module.name for module in pkgutil.iter_modules(package.__path__)]
missing = [name for name in names if getattr(package, name, None) is None]
print(len(names), missing)
"""


@pytest.mark.parametrize("package", PACKAGES)
def test_submodules_are_attributes_after_a_bare_import(package):
    """``import plateau_lens as pl; pl.analysis.wide(...)`` (the README's use): in a fresh
    interpreter, where nothing else has imported the submodule yet."""
    result = subprocess.run([sys.executable, "-c", SUBMODULE_PROBE, package],
                            capture_output=True, text=True, timeout=300)
    count, missing = result.stdout.split(" ", 1)
    assert int(count) >= 2 and missing.strip() == "[]", result.stdout + result.stderr


PROBE = """
import sys
from plateau_lens.cli import main
try:
    status = main(sys.argv[1:])
except SystemExit as stop:
    status = stop.code
print(status, [m for m in {heavy!r} if m in sys.modules])
"""


@pytest.mark.parametrize("argv, status", [
    (["--help"], 0), (["sweep", "--help"], 0), (["reproduce", "--help"], 0),
    (["llm", "--help"], 0), (["train", "--no-such-flag"], 2),
])
def test_cli_answers_help_and_bad_flags_without_loading_torch(argv, status):
    """A fresh interpreter: after the parser has answered, none of the heavy libraries is
    imported (they took ~9 s of every ``plateau-lens --help``)."""
    result = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *argv],
                            capture_output=True, text=True, timeout=120)
    assert result.stdout.strip().splitlines()[-1] == f"{status} []", result.stdout + result.stderr
