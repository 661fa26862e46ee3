"""The documentation site's wiring (mkdocs.yml), checked without building it: every page the
nav names exists (or is one of the pages other branches bring), every tutorial is in the nav
and is a jupytext percent file with code, and ``make docs`` / ``.ci/run`` build with --strict.
The build itself (``make docs``, run by ``.ci/run``) executes the tutorials."""

from pathlib import Path

import pytest

mkdocs_utils = pytest.importorskip("mkdocs.utils")
jupytext = pytest.importorskip("jupytext")

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"


def nav_files(nav) -> list[str]:
    """Every file a mkdocs nav names, in order (entries are 'file', {title: file} or
    {title: [entries]})."""
    found = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        found.extend(nav_files(value) if isinstance(value, list) else [value])
    return found


def site_config() -> dict:
    with open(REPO / "mkdocs.yml") as handle:
        return mkdocs_utils.yaml_load(handle)


def test_nav_files_finds_nested_entries():
    assert nav_files(["a.md", {"B": "b.md"}, {"C": ["c.md", {"D": "d.py"}]}]) == ["a.md", "b.md", "c.md", "d.py"]


def test_every_nav_page_exists():
    missing = [name for name in nav_files(site_config()["nav"]) if not (DOCS / name).is_file()]
    assert not missing, f"mkdocs.yml's nav names pages that do not exist: {missing}"


def test_every_tutorial_is_in_the_nav_and_a_percent_notebook_with_code():
    nav = set(nav_files(site_config()["nav"]))
    tutorials = sorted(DOCS.glob("tutorials/*.py"))
    assert len(tutorials) >= 4
    for path in tutorials:
        name = str(path.relative_to(DOCS))
        assert name in nav, f"{name} is not in mkdocs.yml's nav"
        notebook = jupytext.read(path, fmt="py:percent")
        kinds = [cell.cell_type for cell in notebook.cells]
        assert kinds.count("code") >= 2 and "markdown" in kinds, f"{name}: {kinds}"


def test_make_docs_builds_strictly_and_ci_runs_it():
    makefile = (REPO / "Makefile").read_text()
    assert "\tmkdocs build --strict" in makefile.replace("$(BIN)/", ""), "make docs must build with --strict"
    assert "make docs" in (REPO / ".ci" / "run").read_text().splitlines()
    plugins = {name: options for entry in site_config()["plugins"] if isinstance(entry, dict)
               for name, options in entry.items()}
    assert plugins["mkdocs-jupyter"]["allow_errors"] is False, "a raising tutorial cell must fail the build"
    assert plugins["mkdocs-jupyter"]["cache"] is False, "every build must execute the tutorials"
