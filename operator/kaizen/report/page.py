"""A self-contained HTML page: inline style, every picture embedded (and saved beside it).

The page needs nothing but itself: no script, no stylesheet or font from the network, the
PNGs inlined as data URIs, so it can be mailed, attached to a ticket or opened from a volume.
Every value from an artifact is escaped.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path
from typing import Any

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 72rem; padding: 0 1rem; color: #1b1b1b; line-height: 1.45; }
h1 { margin-bottom: .2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
.meta { color: #555; } .muted { color: #777; font-size: .9em; }
.badge { display: inline-block; padding: .15rem .6rem; border-radius: .8rem; color: white;
         font-weight: 600; }
.Promote, .Promoted { background: #2ca02c; } .Reject, .Rejected { background: #d62728; }
.Inconclusive { background: #ff7f0e; } .other { background: #777; }
table { border-collapse: collapse; margin: .6rem 0; font-size: .92em; }
th, td { border: 1px solid #ddd; padding: .25rem .55rem; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.bad td { background: #fdecea; } tr.warn td { background: #fff4e5; } tr.good td { background: #eaf6ea; }
figure { margin: 1rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
details { margin: .4rem 0; } code { background: #f4f4f4; padding: 0 .2rem; }
"""

BADGES = ("Promote", "Reject", "Inconclusive", "Promoted", "Rejected")


def esc(value: Any) -> str:
    """Text for HTML."""
    return escape("" if value is None else str(value))


def badge(text: str | None) -> str:
    """A coloured verdict."""
    label = text or "pending"
    kind = label if label in BADGES else "other"
    return f'<span class="badge {kind}">{esc(label)}</span>'


def pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def points(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:+.1f}"


def interval(ci: Sequence[float] | None, scale: float = 100.0, signed: bool = False) -> str:
    if ci is None:
        return ""
    low, high = ci
    fmt = "+.1f" if signed else ".1f"
    return f"[{scale * low:{fmt}}, {scale * high:{fmt}}]"


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    numeric: Sequence[int] = (),
    classes: Sequence[str] | None = None,
) -> str:
    """An HTML table; cells are escaped unless they are `Raw`."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for index, row in enumerate(rows):
        cells = []
        for column, cell in enumerate(row):
            text = cell.html if isinstance(cell, Raw) else esc(cell)
            kind = ' class="num"' if column in numeric else ""
            cells.append(f"<td{kind}>{text}</td>")
        css = f' class="{classes[index]}"' if classes and classes[index] else ""
        body.append(f"<tr{css}>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


class Raw:
    """Markup that a table cell takes as it is (already escaped)."""

    def __init__(self, html: str) -> None:
        self.html = html


def figure(path: Path, caption: str) -> str:
    """A PNG embedded as a data URI, with its file name for the copy beside the page."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{esc(caption)}">'
        f'<figcaption class="muted">{esc(caption)} (<code>{esc(path.name)}</code>)</figcaption></figure>'
    )


def page(title: str, body: Sequence[str]) -> str:
    """The whole document."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
