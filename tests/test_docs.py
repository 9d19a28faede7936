"""The design notes the code cites are in the repository, with the sections it cites."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [*ROOT.glob("awf_sim/**/*.py"), *ROOT.glob("awf_deploy/**/*.py")]


def _cited(pattern: str) -> set[str]:
    found: set[str] = set()
    for path in SOURCES:
        found.update(re.findall(pattern, path.read_text(encoding="utf-8")))
    return found


def _headings(note: str) -> str:
    return "\n".join(
        line for line in (ROOT / "docs" / note).read_text().splitlines() if line.startswith("#")
    )


def test_every_cited_note_exists() -> None:
    for note in _cited(r"docs/([\w-]+\.md)"):
        assert (ROOT / "docs" / note).is_file(), note


def test_every_cited_section_exists() -> None:
    for note, pattern in (
        ("semantics.md", r"SEMANTICS §(\d+(?:\.\d+)?)"),
        ("contract.md", r"DESIGN §(\d+)"),
    ):
        headings = _headings(note)
        for section in _cited(pattern):
            assert re.search(rf"^#+ {re.escape(section)}\.? ", headings, re.M), (note, section)


def test_no_code_points_outside_the_repository() -> None:
    assert _cited(r"shared/[\w/.-]+") == set()
