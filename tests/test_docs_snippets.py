"""Docs that cannot drift: every Python block marked ``<!-- test: run -->`` in README.md and
docs/**/*.md runs here.

A marked block is the fenced ```python block that follows the marker line. The marked blocks of
one file run in order, in one namespace, in a fresh temporary working directory, so a page can
build on its earlier snippets like a tutorial. ``REPO`` (the repository root, a ``Path``) is
defined in that namespace for snippets that read the shipped configs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MARKER = "<!-- test: run -->"
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)


def marked_blocks(text: str) -> list[str]:
    """The code of each ```python block whose opening fence follows a MARKER line (blank lines
    between them allowed)."""
    blocks = []
    for match in re.finditer(re.escape(MARKER), text):
        rest = text[match.end():]
        fence = FENCE.search(rest)
        if fence is None or rest[:fence.start()].strip():
            raise AssertionError(f"{MARKER} at offset {match.start()} is not followed by a "
                                 "```python block")
        blocks.append(fence.group(1))
    return blocks


def pages() -> list[Path]:
    found = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    return [page for page in found if MARKER in page.read_text()]


def test_marked_blocks_finds_exactly_the_marked_fences():
    text = "intro\n```python\nx = 0\n```\n<!-- test: run -->\n\n```python\nx = 1\n```\n```python\ny\n```\n"
    assert marked_blocks(text) == ["x = 1\n"]
    with pytest.raises(AssertionError):
        marked_blocks("<!-- test: run -->\ntext between\n```python\nx\n```\n")


@pytest.mark.parametrize("page", pages(), ids=lambda page: str(page.relative_to(REPO)))
def test_snippets_run(page: Path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": f"snippets_{page.stem}", "REPO": REPO}
    for index, code in enumerate(marked_blocks(page.read_text())):
        try:
            # dont_inherit: run as a user's file would, without this module's __future__ imports
            exec(compile(code, f"{page.relative_to(REPO)}[{index}]", "exec", dont_inherit=True),
                 namespace)
        except Exception as error:
            raise AssertionError(f"{page.relative_to(REPO)}: snippet {index} failed:\n{code}") from error
