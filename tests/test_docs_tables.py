"""Every Markdown table in docs/ and the README has as many cells in each row as its header.

A figure appended to a row of a table that has no column for it reads as belonging to no run
(or to the wrong one); the renderers drop or misplace it silently.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = sorted([*(REPO / "docs").rglob("*.md"), REPO / "README.md"])
_DELIMITER = re.compile(r"\s*\|(\s*:?-+:?\s*\|)+\s*")


def cells(row: str) -> list[str]:
    """The cells of a table row: split at pipes outside code spans (`\\|` is a literal pipe)."""
    found, cell, in_code = [], "", False
    text = row.strip()
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and text[i + 1 : i + 2] == "|":
            cell += "|"
            i += 2
            continue
        if char == "`":
            in_code = not in_code
        if char == "|" and not in_code:
            found.append(cell)
            cell = ""
        else:
            cell += char
        i += 1
    found.append(cell)
    return found[1:-1]  # outside the outer pipes


def ragged_rows(text: str) -> list[str]:
    """`line N: k cells, the header has h` for each row whose width differs from its header's."""
    lines = text.splitlines()
    problems = []
    i = 0
    while i < len(lines):
        is_header = lines[i].lstrip().startswith("|") and i + 1 < len(lines)
        if not (is_header and _DELIMITER.fullmatch(lines[i + 1])):
            i += 1
            continue
        width = len(cells(lines[i]))
        i += 1
        while i < len(lines) and lines[i].lstrip().startswith("|"):
            if len(cells(lines[i])) != width:
                problems.append(
                    f"line {i + 1}: {len(cells(lines[i]))} cells, the header has {width}"
                )
            i += 1
    return problems


def test_the_check_finds_a_stray_cell_and_a_short_delimiter_row() -> None:
    table = (
        "| | a | b |\n|---|---|---|---|\n| x | 1 | 2 |\n| y | 1 | 2 | **3** |\n| `a|b` | 1 | 2 |\n"
    )
    assert ragged_rows(table) == [
        "line 2: 4 cells, the header has 3",
        "line 4: 4 cells, the header has 3",
    ]
    assert ragged_rows("| a | b |\n|---|---|\n| 1 \\| 2 | 3 |\n") == []


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_row_has_as_many_cells_as_its_header(path: Path) -> None:
    assert ragged_rows(path.read_text()) == []
