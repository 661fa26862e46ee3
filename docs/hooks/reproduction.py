"""mkdocs hook: the reproduction tables come from the registry, never from a hand-kept copy.

A line ``<!-- reproduction-table: STUDY -->`` in a page is replaced, at build time, by
``plateau_lens.reproduce.markdown_table(STUDY)`` (what ``plateau-lens reproduce --list
--markdown`` prints): each entry's id, figure, what it shows, device and what we measured
(``plateau_lens/reproduce/measured.py``). An unknown study is a build error naming the allowed
ones.
"""

from __future__ import annotations

import re

MARKER = re.compile(r"^<!-- reproduction-table: (?P<study>[^ ]+) -->$", re.M)


def render(markdown: str) -> str:
    """``markdown`` with every reproduction-table marker replaced by the registry's table."""
    if not MARKER.search(markdown):
        return markdown
    from plateau_lens.reproduce import STUDIES, markdown_table

    def table(match: re.Match) -> str:
        study = match.group("study")
        if study not in STUDIES:
            raise ValueError(f"reproduction-table study must be one of {sorted(STUDIES)}, "
                             f"got {study!r}")
        return markdown_table(study)

    return MARKER.sub(table, markdown)


def on_page_markdown(markdown: str, **_) -> str:
    return render(markdown)
