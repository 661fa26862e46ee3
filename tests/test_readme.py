"""The README's reproduction tables are the registry's (``reproduce --list --markdown``)."""

from pathlib import Path

import pytest

from plateau_lens.reproduce import STUDIES, markdown_table

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.parametrize("study", sorted(STUDIES))
def test_readme_has_the_registry_table(study):
    assert markdown_table(study) in README.read_text(), (
        f"README's {study} table is stale: paste `plateau-lens reproduce --list --markdown`")
