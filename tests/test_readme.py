"""The README is a front door, and the reproduction tables have one source of truth.

The tables of ``docs/reproduction.md`` are generated at build time by the mkdocs hook
``docs/hooks/reproduction.py`` from the registry (``plateau-lens reproduce --list --markdown``);
no page keeps a copy by hand.
"""

import importlib.util
import re
from pathlib import Path

import pytest

from plateau_lens.reproduce import REGISTRY, STUDIES, markdown_table

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
REPRODUCTION = REPO / "docs" / "reproduction.md"


def load_hook():
    spec = importlib.util.spec_from_file_location("reproduction_hook",
                                                  REPO / "docs" / "hooks" / "reproduction.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("study", sorted(STUDIES))
def test_reproduction_page_renders_the_registry_table(study):
    rendered = load_hook().render(REPRODUCTION.read_text())
    assert markdown_table(study) in rendered, f"docs/reproduction.md has no table for {study}"


def test_every_entry_is_on_the_rendered_page_once():
    rendered = load_hook().render(REPRODUCTION.read_text())
    for entry_id in REGISTRY:
        assert len(re.findall(rf"^\| `{re.escape(entry_id)}` \|", rendered, re.M)) == 1, entry_id


def test_no_page_keeps_a_hand_made_reproduction_table():
    pages = [README, *sorted((REPO / "docs").rglob("*.md"))]
    for page in pages:
        rows = [line for line in page.read_text().splitlines()
                if re.match(r"^\| `(mc|lp)-[a-z0-9-]+` \|", line)]
        assert not rows, f"{page.relative_to(REPO)} keeps registry rows by hand: {rows[:2]}"


def test_unknown_study_is_a_clear_build_error():
    with pytest.raises(ValueError, match="must be one of .*matrix-completion"):
        load_hook().render("<!-- reproduction-table: matrix-complet -->\n")


def test_readme_is_a_front_door():
    text = README.read_text()
    assert len(text.splitlines()) <= 150, "README.md must stay at most 150 lines: move reference to docs/"
    assert "\n## Guides\n" in text, "README.md keeps its ## Guides heading (one line per docs page)"
