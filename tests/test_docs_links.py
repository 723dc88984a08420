"""Every relative link in docs/ and the README reaches a file of the repository, and a link to
a heading (`file.md#heading`) reaches a heading of that file.

Sections get renamed as measurements are added; a link left pointing at the old heading
opens the top of the page on GitHub, with nothing to say it went wrong.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

from tests.test_docs_tables import DOCUMENTS, REPO

_LINK = re.compile(r"\]\(([^)\s]+)\)")
_HEADING = re.compile(r"#{1,6}\s+(.*)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@functools.cache
def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings (outside fenced code)."""
    found, fenced = set(), False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (match := _HEADING.match(line)):
            found.add(slug(match.group(1)))
    return found


def broken_links(document: Path) -> list[str]:
    problems = []
    for number, line in enumerate(document.read_text().splitlines(), start=1):
        for target in _LINK.findall(line):
            if re.match(r"[a-z]+:", target):
                continue  # http:, https:, mailto:
            path, _, fragment = target.partition("#")
            linked = (document.parent / path).resolve() if path else document
            if not linked.exists():
                problems.append(f"line {number}: {target} (no such file)")
            elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
                problems.append(f"line {number}: {target} (no heading #{fragment})")
    return problems


def test_slugs_follow_githubs_rule() -> None:
    assert (
        slug("Seeds: cloze items (measured 2026-12-06)") == "seeds-cloze-items-measured-2026-12-06"
    )
    assert slug("A teacher (distillation)") == "a-teacher-distillation"


def test_a_link_to_a_missing_heading_is_reported(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text(
        "# Real heading\n\n[x](a.md#real-heading) [y](a.md#gone) [z](b.md)\n"
    )
    assert broken_links(tmp_path / "a.md") == [
        "line 3: a.md#gone (no heading #gone)",
        "line 3: b.md (no such file)",
    ]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_reaches_its_file_and_heading(document: Path) -> None:
    assert broken_links(document) == []
